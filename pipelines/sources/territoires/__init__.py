"""The contracts' territories, as the user declares them in ``data/raw/territoires/<code>/``."""
