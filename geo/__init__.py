"""Geography of the QPV: official contours, list of QPV and their loading into DuckDB."""

from geo.contours import (
    ContoursError,
    ContoursResult,
    read_contours,
    read_liste_qpv,
    to_duckdb,
)

__all__ = ["ContoursError", "ContoursResult", "read_contours", "read_liste_qpv", "to_duckdb"]
