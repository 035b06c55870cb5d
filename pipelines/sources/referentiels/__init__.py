"""Source referentiels: reference values and the official QPV 2015 <-> 2024 correspondence."""
