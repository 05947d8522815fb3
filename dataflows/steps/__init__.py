"""The per-key logic of the dataflow's stateful steps (Bytewax `StatefulBatchLogic`s);
`dataflows/flow.py` wires them together. The rules they apply are the pure modules one
level up."""
