"""Source referentiels."""
