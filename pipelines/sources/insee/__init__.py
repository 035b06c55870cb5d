"""Source insee."""
