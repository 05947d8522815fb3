"""Prometheus metrics of the dataflow (module-level; small, fixed label sets)."""

from prometheus_client import Counter

EVENTS = Counter(
    "dbl_dataflow_events_total", "Events read from the events topic, by outcome.", ["outcome"]
)
IDENTITY_LINKS = Counter(
    "dbl_identity_links_total", "Cookies linked to a contact, by how they were recognised.", ["how"]
)
ALERTS = Counter("dbl_alerts_emitted_total", "Alerts emitted by the dataflow, by kind.", ["kind"])
MACHINE_SIGNALS = Counter(
    "dbl_machine_signals_total", "Signals made by machines (not scored), by reason.", ["reason"]
)

# Bound once: labelling a counter per event costs more than counting.
ACCEPTED = EVENTS.labels("accepted")
REJECTED = EVENTS.labels("rejected")
