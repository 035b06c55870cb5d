"""Source indicateurs."""
