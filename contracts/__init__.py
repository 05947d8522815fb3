"""What the parts of DBL agree on: the shapes on its topics and in its read model."""
