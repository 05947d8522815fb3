"""Stream order across workers: progress markers, reorder buffers, worker keys, the event
clock, and the `in_stream_order` operator."""
