"""The collector: the Segment-compatible HTTP API, the event envelope and the Kafka producer."""
