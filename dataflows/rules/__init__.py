"""Pure rules: scoring, identity, merges and forgets, trust, alerts, accounts. No I/O."""
