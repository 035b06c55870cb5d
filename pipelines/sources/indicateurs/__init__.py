"""Source indicateurs: local indicator tables (Compas, CAF...) read through mapping files."""
