"""The `dbl` command: run the whole system, create topics, demo traffic, email links."""
