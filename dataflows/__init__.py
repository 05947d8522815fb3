"""The Bytewax dataflow and the pure identity and scoring logic it calls."""
