"""Source programmations."""
