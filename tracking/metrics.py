"""Prometheus metrics of the collector (module-level; small, fixed label sets)."""

from prometheus_client import Counter, Histogram

EVENTS = Counter(
    "dbl_collector_events_total", "Events received, by outcome and channel.", ["outcome", "channel"]
)
REJECTIONS = Counter(
    "dbl_collector_rejections_total", "Requests or events refused, by reason.", ["reason"]
)
REQUEST_SECONDS = Histogram(
    "dbl_collector_request_seconds", "Time to answer a tracking request.", ["endpoint"]
)
PRODUCE_SECONDS = Histogram(
    "dbl_collector_produce_seconds", "Time from produce to broker acknowledgement."
)
MACHINES = Counter(
    "dbl_collector_machine_events_total",
    "Events recognised as machine traffic (stored marked, never scored), by reason.",
    ["reason"],
)
