"""Training: scoring models learned from recorded signals and outcomes (`dbl train`)."""
