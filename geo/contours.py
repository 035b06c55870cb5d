"""Geometry of the QPV contours: CRS checks, repair, reprojection, areas and centroids.

The files themselves (GeoJSON, GeoPackage, Shapefile, the official ANCT ZIP, the list CSV) are
read by :mod:`pipelines.sources.sig_ville`, which calls this module for everything geometric:

* :func:`layer_crs` refuses a layer without CRS, or whose coordinates do not fit its CRS;
* :func:`repair_layer` repairs invalid geometries (``make_valid``), reprojects to WGS84, keeps
  the polygonal parts, reports what cannot be repaired and how much a repair changed an area;
* :func:`merge_duplicate_codes` unites the features of one layer sharing a code;
* :func:`with_measures` adds areas and centroids computed in a projected CRS (Lambert-93 in the
  metropole, the local UTM zone overseas: :mod:`geo.crs`);
* :func:`to_duckdb` writes contours into a DuckDB table with a GEOMETRY column.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from pyproj import CRS, Transformer

from geo.crs import WGS84, area_crs_for_code, crs_label, is_wgs84_geographic

OUTPUT_COLUMNS = [
    "code_qpv",
    "libelle_qpv",
    "geographie",
    "insee_com",
    "lib_com",
    "surface_km2",
    "crs_surface",
    "centroide_lon",
    "centroide_lat",
    "geometrie_reparee",
    "source_fichier",
    "source_couche",
    "crs_source",
    "geometry",
]
#: Relative area change above which a repair is flagged in the report.
AREA_CHANGE_WARNING = 0.01


class ContoursError(ValueError):
    """Raised when a contours file cannot be read safely (the message is in French)."""


@lru_cache(maxsize=64)
def _transformer(source: str, target: str) -> Transformer:
    return Transformer.from_crs(source, target, always_xy=True)


def _transform(geoms: np.ndarray, source: str, target: str) -> np.ndarray:
    transformer = _transformer(source, target)

    def apply(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, apply)


def polygonal_multipolygons(geoms: np.ndarray) -> np.ndarray:
    """Keep the polygonal parts of each geometry and return MultiPolygons (empty if none).

    Points and lines produced by ``make_valid`` inside GeometryCollections are dropped.
    """
    geoms = np.asarray(geoms, dtype=object)
    out = np.empty(len(geoms), dtype=object)
    out[:] = [shapely.MultiPolygon() for _ in range(len(geoms))]
    present = ~shapely.is_missing(geoms)
    if not present.any():
        return out
    positions = np.flatnonzero(present)
    parts, index = shapely.get_parts(geoms[present], return_index=True)
    # A second pass flattens MultiPolygons that were nested in GeometryCollections.
    parts, index2 = shapely.get_parts(parts, return_index=True)
    index = index[index2]
    keep = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    parts, index = parts[keep], index[keep]
    if len(parts):
        # shapely wants dense indices: a geometry with no polygonal part leaves a gap
        owners, dense = np.unique(index, return_inverse=True)
        multi = shapely.multipolygons(parts, indices=dense)
        out[positions[owners]] = multi
    return out


def _fallback_utm(geom: shapely.Geometry) -> str:
    """WGS 84 / UTM zone of a geometry's centre, for territories without a listed CRS."""
    point = geom.representative_point()
    zone = int((point.x + 180) // 6) % 60 + 1
    return f"EPSG:{(32600 if point.y >= 0 else 32700) + zone}"


def _area_crs(codes: Sequence[str], geoms_wgs84: np.ndarray) -> np.ndarray:
    labels = [
        area_crs_for_code(code) or _fallback_utm(geom)
        for code, geom in zip(codes, geoms_wgs84, strict=True)
    ]
    return np.array(labels, dtype=object)


def _project_by_crs(geoms_wgs84: np.ndarray, crs_labels: np.ndarray) -> np.ndarray:
    projected = np.empty(len(geoms_wgs84), dtype=object)
    for label in pd.unique(crs_labels):
        mask = crs_labels == label
        projected[mask] = _transform(geoms_wgs84[mask], WGS84, label)
    return projected


# --------------------------------------------------------------------------------------------
# One layer
# --------------------------------------------------------------------------------------------


def layer_crs(frame: gpd.GeoDataFrame, where: str) -> tuple[CRS, str, bool]:
    """(CRS, its label, whether it is WGS84 lon/lat) of a layer read from ``where``.

    Raises ContoursError when the layer declares no CRS (a Shapefile without ``.prj``) or when
    its coordinates leave the bounds of a geographic CRS (Lambert-93 coordinates declared as
    WGS84): guessing a CRS would put the QPV in the wrong place.
    """
    if frame.crs is None:
        raise ContoursError(
            f"Système de coordonnées (CRS) absent pour {where} : le fichier ne déclare pas sa "
            "projection (fichier .prj manquant ?). Impossible de deviner le CRS : fournissez le "
            "fichier avec sa projection."
        )
    crs = CRS.from_user_input(frame.crs)
    label = crs_label(crs) or str(crs)
    geoms = np.asarray(frame.geometry.values, dtype=object)
    if crs.is_geographic and len(frame):
        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            raise ContoursError(
                f"Coordonnées incompatibles avec le CRS déclaré ({label}) dans {where} : "
                "des valeurs sortent des bornes en degrés. Le CRS déclaré est probablement faux."
            )
    return crs, label, is_wgs84_geographic(crs)


@dataclass
class RepairedLayer:
    """What :func:`repair_layer` made of a layer's geometries (arrays aligned on its rows)."""

    geometries: np.ndarray  # WGS84 MultiPolygons (repaired where needed)
    loaded: np.ndarray  # usable code and geometry, valid after repair
    repaired: np.ndarray  # repaired and loaded
    invalid: int  # geometries that needed a repair
    rejects: list[tuple[int, str, str, str]] = field(default_factory=list)  # (row, col, raw, why)
    warnings: list[str] = field(default_factory=list)
    max_change: float = 0.0  # largest relative area change caused by a repair


def short_wkt(geom: Any) -> str:
    """A geometry as WKT cut to 120 characters, for reject messages."""
    if geom is None:
        return ""
    return shapely.to_wkt(geom, rounding_precision=6)[:120]


def repair_layer(
    geoms_src: np.ndarray,
    crs: CRS,
    label: str,
    geographic: bool,
    codes: Sequence[str],
    valid_code: np.ndarray,
) -> RepairedLayer:
    """Repair, reproject to WGS84 and keep the polygonal parts of a layer's geometries.

    Rows whose code is not valid (``valid_code`` False) are left aside. A missing or empty
    geometry, or one still invalid or without area after ``make_valid``, is rejected (row index,
    ``geometry``, its WKT, the reason). The area change caused by a repair is measured in the
    projected CRS used for surfaces; above 1 % it is a warning.
    """
    rejects: list[tuple[int, str, str, str]] = []
    missing = shapely.is_missing(geoms_src) | shapely.is_empty(geoms_src)
    for i in np.flatnonzero(valid_code & missing):
        rejects.append((int(i), "geometry", short_wkt(geoms_src[i]), "géométrie absente ou vide"))
    usable = valid_code & ~missing
    invalid_src = usable & ~shapely.is_valid(geoms_src)
    geoms = geoms_src.copy()
    if not geographic:
        geoms[usable] = _transform(
            geoms_src[usable], label if ":" in label else crs.to_wkt(), WGS84
        )
    invalid_wgs84 = usable & ~shapely.is_valid(geoms)
    to_repair = invalid_src | invalid_wgs84
    repaired = geoms.copy()
    if to_repair.any():
        repaired[to_repair] = shapely.make_valid(geoms[to_repair])
    repaired[usable] = polygonal_multipolygons(repaired[usable])

    failed = usable & (shapely.is_empty(repaired) | ~shapely.is_valid(repaired))
    for i in np.flatnonzero(failed):
        if shapely.is_empty(repaired[i]):
            motif = "géométrie sans partie surfacique (vide après réparation)"
        else:
            motif = f"géométrie invalide après réparation : {shapely.is_valid_reason(repaired[i])}"
        rejects.append((int(i), "geometry", short_wkt(geoms_src[i]), f"{codes[i]} : {motif}"))
    failed |= _unmeasurable(repaired, usable & ~failed, codes, geoms_src, rejects)
    loaded = usable & ~failed
    repaired_ok = to_repair & loaded

    warnings: list[str] = []
    max_change = 0.0
    if repaired_ok.any():
        idx = np.flatnonzero(repaired_ok)
        crs_labels = _area_crs([codes[i] for i in idx], repaired[idx])
        before = shapely.area(_project_by_crs(geoms[idx], crs_labels))
        after = shapely.area(_project_by_crs(repaired[idx], crs_labels))
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.where(before > 0, (after - before) / before, np.nan)
        if np.isfinite(change).any():
            max_change = float(np.nanmax(np.abs(change)))
        for i, delta in zip(idx, change, strict=True):
            if np.isfinite(delta) and abs(delta) > AREA_CHANGE_WARNING:
                warnings.append(
                    f"{codes[i]} : la réparation de la géométrie change la surface de "
                    f"{delta * 100:+.2f} %"
                )
    return RepairedLayer(
        geometries=repaired,
        loaded=loaded,
        repaired=repaired_ok,
        invalid=int(to_repair.sum()),
        rejects=rejects,
        warnings=warnings,
        max_change=max_change,
    )


def _unmeasurable(
    geoms_wgs84: np.ndarray,
    candidates: np.ndarray,
    codes: Sequence[str],
    geoms_src: np.ndarray,
    rejects: list[tuple[int, str, str, str]],
) -> np.ndarray:
    """Rows whose polygon the projection used for surfaces cannot hold (a corner on a pole,
    coordinates outside the projection's domain): no finite area or centroid. Each is added to
    ``rejects``; a surface is never computed as NaN or infinite."""
    bad = np.zeros(len(geoms_wgs84), dtype=bool)
    idx = np.flatnonzero(candidates)
    if not len(idx):
        return bad
    labels = _area_crs([codes[i] for i in idx], geoms_wgs84[idx])
    projected = _project_by_crs(geoms_wgs84[idx], labels)
    with np.errstate(invalid="ignore"):
        area = shapely.area(projected)
        corners = shapely.bounds(shapely.centroid(projected))
    wrong = ~np.isfinite(area) | ~np.isfinite(corners).all(axis=1)
    for i, label in zip(idx[wrong], labels[wrong], strict=True):
        rejects.append(
            (
                int(i),
                "geometry",
                short_wkt(geoms_src[i]),
                f"{codes[i]} : coordonnées hors du domaine de la projection {label} (surface "
                "incalculable)",
            )
        )
        bad[i] = True
    return bad


def merge_duplicate_codes(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Merge features sharing a code inside one layer (union of their polygons)."""
    duplicated = frame["code_qpv"].duplicated(keep=False)
    if not duplicated.any():
        return frame, 0
    merged_count = int(frame["code_qpv"].duplicated().sum())
    firsts = frame.drop_duplicates("code_qpv").set_index("code_qpv")
    for code, group in frame[duplicated].groupby("code_qpv", sort=False):
        union = shapely.union_all(np.asarray(group["geometry"].tolist(), dtype=object))
        firsts.at[code, "geometry"] = polygonal_multipolygons(np.array([union], dtype=object))[0]
        firsts.at[code, "geometrie_reparee"] = bool(group["geometrie_reparee"].any())
    return firsts.reset_index(), merged_count


def with_measures(frame: pd.DataFrame) -> gpd.GeoDataFrame:
    """Add surface_km2, crs_surface and the centroid (computed in the projected CRS)."""
    geoms = np.asarray(frame["geometry"].tolist(), dtype=object)
    n = len(frame)
    surface = np.full(n, np.nan)
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    crs_labels = _area_crs(frame["code_qpv"].tolist(), geoms) if n else np.array([], object)
    for label in pd.unique(crs_labels):
        mask = crs_labels == label
        projected = _transform(geoms[mask], WGS84, label)
        surface[mask] = shapely.area(projected) / 1e6
        centroids = shapely.centroid(projected)
        x, y = _transformer(label, WGS84).transform(
            shapely.get_x(centroids), shapely.get_y(centroids)
        )
        lon[mask], lat[mask] = x, y
    out = frame.drop(columns="geometry").assign(
        surface_km2=surface,
        crs_surface=crs_labels,
        centroide_lon=lon,
        centroide_lat=lat,
        geometrie_reparee=frame["geometrie_reparee"].astype(bool),
    )
    text_columns = [
        "code_qpv",
        "libelle_qpv",
        "geographie",
        "insee_com",
        "lib_com",
        "source_fichier",
        "source_couche",
        "crs_source",
    ]
    out[text_columns] = out[text_columns].astype(object)
    gdf = gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84)
    return gdf[OUTPUT_COLUMNS]


def _quote_table(table: str) -> str:
    parts = table.split(".")
    if not all(parts):
        raise ValueError(f"Nom de table invalide : {table!r}")
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


def to_duckdb(gdf: gpd.GeoDataFrame, con: Any, table: str) -> None:
    """Write a GeoDataFrame into ``table`` (replaced) of an open DuckDB connection.

    The geometry goes through WKB and ``ST_GeomFromWKB``: the spatial extension must already be
    loaded on ``con``. Column order is kept; the geometry column keeps its name. The coordinates
    are written as they are (EPSG:4326 lon/lat for :func:`read_contours` output).
    """
    geometry_name = gdf.geometry.name
    frame = pd.DataFrame(gdf.drop(columns=geometry_name))
    frame[geometry_name] = shapely.to_wkb(np.asarray(gdf.geometry.values, dtype=object))
    arrow_table = pa.Table.from_pandas(frame, preserve_index=False)
    view = f"_geo_import_{uuid.uuid4().hex}"
    con.register(view, arrow_table)
    try:
        geom = '"' + geometry_name.replace('"', '""') + '"'
        con.execute(
            f"CREATE OR REPLACE TABLE {_quote_table(table)} AS "
            f"SELECT * REPLACE (ST_GeomFromWKB({geom}) AS {geom}) FROM {view}"
        )
    finally:
        con.unregister(view)
