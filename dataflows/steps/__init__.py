"""The per-key logic of the dataflow's stateful steps, one module per step id;
`dataflows/flow.py` wires them together. The rules they apply are in `dataflows/rules/`."""
