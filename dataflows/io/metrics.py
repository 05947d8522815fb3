"""Prometheus metrics of the dataflow (module-level; small, fixed label sets)."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "dbl_dataflow_events_total", "Events read from the events topic, by outcome.", ["outcome"]
)
IDENTITY_LINKS = Counter(
    "dbl_identity_links_total", "Cookies linked to a contact, by how they were recognised.", ["how"]
)
IDENTITY_MERGES = Counter(
    "dbl_identity_merges_total", "Leads folded into another by a trusted merge (CRM, server alias)."
)
FORGETS = Counter(
    "dbl_identity_forgets_total",
    "Leads erased by a trusted forget request (right to be forgotten).",
)
ALERTS = Counter("dbl_alerts_emitted_total", "Alerts emitted by the dataflow, by kind.", ["kind"])
MACHINE_SIGNALS = Counter(
    "dbl_machine_signals_total", "Signals made by machines (not scored), by reason.", ["reason"]
)

# Bound once: labelling a counter per event costs more than counting.
ACCEPTED = EVENTS.labels("accepted")
REJECTED = EVENTS.labels("rejected")
LAG_SECONDS = Histogram(
    "dbl_dataflow_lag_seconds",
    "Processing lag: from the collector's receive time to the lead being scored.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STATE_KEYS = Gauge(
    "dbl_dataflow_state_keys", "Keys held in this process's stateful steps.", ["step"]
)
COOKIES = STATE_KEYS.labels("resolve_identity")
CONTACTS = STATE_KEYS.labels("score")
CONTACT_RECORDS = STATE_KEYS.labels("record_contact")
DUPLICATES = Counter(
    "dbl_dataflow_duplicates_total", "Events dropped because their message id was seen before."
)
REDIS_RETRIES = Counter(
    "dbl_dataflow_redis_retries_total",
    "Profile write batches retried because Redis was unavailable (processing waits).",
)
KAFKA_RETRIES = Counter(
    "dbl_dataflow_kafka_retries_total",
    "Output batches sent again because the broker did not take them (processing waits).",
)
STEP_FAILURES = Counter(
    "dbl_dataflow_step_failures_total",
    "Signals a step's rules raised on: sent to the DLQ with the reason, the worker goes on.",
    ["step"],
)
MODEL_CHANGES = Counter(
    "dbl_model_changes_total",
    "Model markers read from the events topic (one per partition per publication), by version.",
    ["version"],
)
