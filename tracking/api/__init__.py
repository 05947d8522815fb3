"""The collector's endpoint groups; each lists its routes (`routes()`)."""
