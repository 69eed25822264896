"""Source declarations, the canonical row schema and the loaders that produce it."""
