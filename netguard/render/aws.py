"""aws target (being written)."""
