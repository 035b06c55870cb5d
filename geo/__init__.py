"""Geography of the QPV: official contours, list of QPV and their loading into DuckDB.

The contours reader (geopandas, pyogrio, pyproj: about 75 MiB) is imported on first use, so
that ``geo.points`` (the point-in-QPV assignment) does not pay for it.
"""

from typing import Any

__all__ = ["ContoursError", "ContoursResult", "read_contours", "read_liste_qpv", "to_duckdb"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from geo import contours

        return getattr(contours, name)
    raise AttributeError(f"module 'geo' has no attribute {name!r}")
