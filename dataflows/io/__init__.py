"""The dataflow's ends: the events source, the Kafka and Redis sinks, its metrics."""
