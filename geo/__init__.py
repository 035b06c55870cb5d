"""Geometry of the QPV: contours (CRS, repair, areas, centroids) and their loading into DuckDB.

The files (official contours, list of QPV) are read by :mod:`pipelines.sources.sig_ville`,
which calls :mod:`geo.contours` for the geometry; geo imports nothing from pipelines. The contours
module (geopandas, pyogrio, pyproj: about 75 MiB) is imported on first use, so that
``geo.points`` (the point-in-QPV assignment) does not pay for it.
"""

from typing import Any

__all__ = ["ContoursError", "to_duckdb", "with_measures"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from geo import contours

        return getattr(contours, name)
    raise AttributeError(f"module 'geo' has no attribute {name!r}")
