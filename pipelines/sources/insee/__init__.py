"""Source insee: the INSEE QPV indicator bases (IPRO, DEMO, REVN...), read into long values."""
