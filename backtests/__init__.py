"""Backtests: recorded history replayed through the dataflow with a model, and what that
model would have done."""
