"""The Bytewax dataflow (`flow.py`), in layers: `rules/` (pure), `ordering/`, `steps/`,
`io/`; `state.py` owns the snapshot format."""
