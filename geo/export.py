"""Exports of the QPV dimension for GIS users: GeoParquet, GeoPackage and GeoJSON.

:func:`export_dim_qpv` writes ``dim_qpv.parquet``, ``dim_qpv.gpkg`` and ``dim_qpv.geojson`` from
``marts.dim_qpv`` (geometry column ``geom``, WGS84 longitude/latitude), each one opening in QGIS
with no CRS dialog:

* GeoParquet 1.1 written by geopandas, with the ``geo`` metadata carrying the CRS as PROJJSON
  (``OGC:CRS84``: WGS84 in longitude/latitude order, the GeoParquet default made explicit;
  DuckDB's ``COPY ... (FORMAT parquet)`` writes a ``geo`` metadata without any ``crs``), plus the
  bounding box and geometry types;
* GeoPackage with the layer's ``srs_id`` = 4326 (EPSG:4326 registered in
  ``gpkg_spatial_ref_sys``);
* GeoJSON following RFC 7946 (WGS84 longitude/latitude, no ``crs`` member, counter-clockwise
  exterior rings), written by :func:`to_rfc7946` with all the digits of the coordinates, so
  that the repaired geometries stay valid and unchanged.

Rows without geometry (QPV only known from the INSEE bases) are kept with a null geometry.
Each file is written beside its target and renamed into place once complete.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo.points import quote_ident, quote_relation

logger = logging.getLogger(__name__)

#: CRS written in the GeoParquet and GeoJSON files (WGS84, longitude first).
CRS_LONLAT = "OGC:CRS84"
#: CRS of the GeoPackage layer (srs_id 4326).
CRS_GPKG = "EPSG:4326"
FORMATS = ("parquet", "gpkg", "geojson")


def relation_sql(table: str | tuple[str, ...]) -> str:
    """A table as quoted SQL: ``"marts"."dim_qpv"`` for ``marts.dim_qpv`` (split on dots) or
    for ``("marts", "dim_qpv")`` (parts as they are: a name may hold a dot, a quote, a space)."""
    if isinstance(table, str):
        return quote_relation(table)
    if not table or not all(table):
        raise ValueError(f"Nom de table invalide : {table!r}")
    return ".".join(quote_ident(part) for part in table)


def dim_qpv_frame(
    con: Any, table: str | tuple[str, ...] = "marts.dim_qpv", geometry: str = "geom"
) -> gpd.GeoDataFrame:
    """The mart as a GeoDataFrame (CRS ``OGC:CRS84``), attributes typed for every writer.

    The table name reaches SQL quoted (:func:`relation_sql`), never as it is."""
    relation = relation_sql(table)
    columns = [
        (r[0], r[1])
        for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()  # noqa: S608
    ]
    select = []
    for name, kind in columns:
        quoted = quote_ident(name)
        if name == geometry:
            select.append(f"ST_AsWKB({quoted}) AS {quoted}")
        elif kind.upper().startswith(("HUGEINT", "DECIMAL", "UBIGINT")):
            select.append(f"CAST({quoted} AS DOUBLE) AS {quoted}")
        elif kind.upper().startswith(("DATE", "TIMESTAMP", "TIME", "INTERVAL", "UUID")) or (
            kind.upper().endswith("[]") or kind.upper().startswith(("STRUCT", "MAP", "LIST"))
        ):
            select.append(f"CAST({quoted} AS VARCHAR) AS {quoted}")
        else:
            select.append(quoted)
    frame = con.execute(f"SELECT {', '.join(select)} FROM {relation} ORDER BY 1").df()  # noqa: S608
    wkb = frame.pop(geometry)
    geoms = shapely.from_wkb(
        np.array([None if v is None or v is pd.NA else bytes(v) for v in wkb], dtype=object)
    )
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=CRS_LONLAT), crs=CRS_LONLAT)


def _for_ogr(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Attribute types GDAL writes without loss: nullable integers and booleans kept (a
    BOOLEAN column with NULLs comes from DuckDB as objects: written as a GeoPackage BOOLEAN, not
    as text), no other objects."""
    out = gdf.copy()
    for col in out.columns:
        if col == out.geometry.name:
            continue
        series = out[col]
        if isinstance(series.dtype, pd.BooleanDtype):
            continue
        if series.dtype == object:
            present = series.dropna()
            if len(present) and all(isinstance(v, bool | np.bool_) for v in present):
                out[col] = series.astype("boolean")
            else:
                out[col] = series.where(series.notna(), None)
    return out


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def to_rfc7946(gdf: gpd.GeoDataFrame) -> str:
    """A GeoJSON FeatureCollection text following RFC 7946.

    WGS84 longitude/latitude (reprojected if needed), no ``crs`` member, exterior rings
    counter-clockwise and holes clockwise, coordinates with all their digits (written by
    shapely, not by GDAL, whose GeoJSON writer rewrites some self-touching repaired rings).
    """
    if gdf.crs is not None and not gdf.crs.equals(CRS_LONLAT, ignore_axis_order=True):
        gdf = gdf.to_crs(CRS_LONLAT)
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    oriented = geoms.copy()
    oriented[present] = shapely.orient_polygons(geoms[present], exterior_cw=False)
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    records = gdf[columns].to_dict(orient="records")
    features = []
    for record, geom, ok in zip(records, oriented, present, strict=True):
        geometry = shapely.to_geojson(geom) if ok else "null"
        properties = json.dumps(
            {k: _json_value(v) for k, v in record.items()}, ensure_ascii=False, allow_nan=False
        )
        features.append(
            f'{{"type": "Feature", "properties": {properties}, "geometry": {geometry}}}'
        )
    return '{"type": "FeatureCollection", "features": [\n' + ",\n".join(features) + "\n]}\n"


def _replace(tmp: Path, target: Path) -> None:
    tmp.replace(target)


def export_dim_qpv(
    con: Any,
    marts_dir: Path | str,
    table: str | tuple[str, ...] = "marts.dim_qpv",
    formats: tuple[str, ...] = FORMATS,
    name: str = "dim_qpv",
) -> dict[str, Path]:
    """Write ``<name>.parquet`` (GeoParquet), ``<name>.gpkg`` and ``<name>.geojson``.

    Returns the path written per format. The spatial extension must be loaded on ``con``.
    """
    out_dir = Path(marts_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gdf = dim_qpv_frame(con, table)
    written: dict[str, Path] = {}
    if "parquet" in formats:
        target = out_dir / f"{name}.parquet"
        tmp = target.with_name(f".{target.name}.tmp")
        gdf.to_parquet(tmp, index=False, compression="zstd", schema_version="1.1.0")
        _replace(tmp, target)
        written["parquet"] = target
    ogr = _for_ogr(gdf) if "gpkg" in formats else None
    if "gpkg" in formats:
        assert ogr is not None
        target = out_dir / f"{name}.gpkg"
        tmp = target.with_name(f".tmp_{target.name}")
        tmp.unlink(missing_ok=True)
        pyogrio.write_dataframe(
            ogr.to_crs(CRS_GPKG), tmp, layer=name, driver="GPKG", promote_to_multi=True
        )
        _replace(tmp, target)
        written["gpkg"] = target
    if "geojson" in formats:
        target = out_dir / f"{name}.geojson"
        tmp = target.with_name(f".tmp_{target.name}")
        tmp.write_text(to_rfc7946(gdf), encoding="utf-8")
        _replace(tmp, target)
        written["geojson"] = target
    logger.info("%s exporté : %s", table, ", ".join(str(p) for p in written.values()))
    return written


def geoparquet_crs(path: Path | str) -> dict:
    """The ``crs`` of the primary column in a GeoParquet file's ``geo`` metadata ({} if none)."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path).metadata or {}
    geo = json.loads(meta.get(b"geo", b"{}"))
    column = geo.get("primary_column")
    return geo.get("columns", {}).get(column, {}).get("crs") or {}
