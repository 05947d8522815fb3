"""Alert routing and delivery to reps, and the rep-facing API."""
