"""Source sig_ville."""
