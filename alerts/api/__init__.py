"""The rep service's endpoint groups; each lists its routes (`routes()`)."""
