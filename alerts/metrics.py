"""Prometheus metrics of the dispatcher and rep API (module-level; small label sets)."""

from prometheus_client import Counter, Histogram

DELIVERIES = Counter(
    "dbl_alert_deliveries_total",
    "Alert deliveries, by channel and outcome.",
    ["channel", "outcome"],
)
SUPPRESSED = Counter(
    "dbl_alerts_suppressed_total",
    "Alerts kept from their rep by what the CRM says of the lead, by kind and state.",
    ["kind", "state"],
)
MALFORMED = Counter(
    "dbl_alerts_malformed_total", "Records on the alerts topic that were not alerts."
)
WEBHOOK_SECONDS = Histogram(
    "dbl_webhook_call_seconds", "Time of a successful webhook call, answer included."
)
FEEDBACK = Counter(
    "dbl_alert_feedback_total",
    "Reps' ratings of alerts (a changed rating counts again), by kind, rule and rating.",
    ["kind", "rule", "rating"],
)
