"""Point-in-QPV: assign geocoded records to the QPV containing them, in DuckDB spatial.

Entry points:

* :func:`build_index` reads the QPV polygons of one geography (2015 or 2024) from a DuckDB
  table or view (``code_qpv``, ``geom`` in WGS84, optional ``geographie``) and builds the
  *grille QPV*, a multi-level grid index held in temporary DuckDB tables.
* :func:`read_points` opens a CSV (``;`` or ``,``, decimal point or comma) or Parquet file as a
  DuckDB view, and finds its identifier and coordinate columns.
* :func:`assign_points` gives every record a status and, when it falls in a QPV, its code:
  one streaming DuckDB query (read, validate, assign, write).

Rules (documented in ``docs/geographie.md``):

* Status per record: ``dans_qpv``, ``hors_qpv``, ``coordonnees_invalides`` (missing, not
  numeric, infinite, out of range, or exactly (0, 0), the usual geocoder failure value) and
  ``lon_lat_inverses`` (the coordinates only make sense swapped: for WGS84, ``(lon, lat)`` is in
  no French territory while ``(lat, lon)`` is; for Lambert-93, x is in the range of y and y in
  that of x). A swapped record is not assigned: ``code_qpv`` stays NULL, and the QPV found
  after swapping back is given in ``code_qpv_apres_inversion`` so that the source can be fixed.
* A QPV is a closed set: a point on its boundary is in it (``ST_Intersects`` semantics, not
  ``ST_Contains``). A point in several QPV (on a boundary shared by two QPV, or in two
  overlapping QPV) gets the smallest ``code_qpv`` in alphabetical order; ``nb_qpv`` gives how
  many QPV contain it and those with ``nb_qpv > 1`` are counted as ``ambigus``.
* The answer is exactly the one of ``ST_Intersects(polygon, point)`` against the original
  (repaired) polygons: the grid only decides cells that are provably inside one QPV or outside
  all of them, and a point closer than :data:`TOLERANCE_DEG` to a clipped edge or to a cell
  border is re-tested against the original polygon.

How the grid works (why it is faster than DuckDB's ``SPATIAL_JOIN``; figures in
``docs/geographie.md``): cells of ``2^-k`` degree at a few levels ``k`` (default 7, 9, 11, i.e.
about 780 m, 195 m and 49 m in latitude). A cell is *resolved* when its closed square is in the
interior of exactly one QPV and touches no other (the point gets that code with no geometry
test), or absent from the index when it touches no QPV (the point is outside every QPV).
Other cells are subdivided down to the last level, where each one keeps the list of its QPV
pieces (the QPV polygon clipped to the cell, a handful of vertices). A record is looked up with
one hash join per level on an integer cell key computed from its coordinates, and only the
few per cent of records in unresolved last-level cells are tested against geometry, with small
pieces instead of polygons of up to 2,000 vertices.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

logger = logging.getLogger(__name__)

STATUTS = ("dans_qpv", "hors_qpv", "coordonnees_invalides", "lon_lat_inverses")

#: Grid levels: cells of 2**-k degree.
DEFAULT_LEVELS = (7, 9, 11)

#: Distance (degrees, about 0.1 mm) under which a point is re-tested against the original polygon.
TOLERANCE_DEG = 1e-9

#: Margin (degrees) added around segments when marking the cells they cross.
_SEGMENT_MARGIN = 1e-9

#: Generous envelopes of the French territories (lon min, lat min, lon max, lat max), WGS84.
#: Used only to recognise swapped coordinates, never to reject a valid point.
TERRITOIRES_WGS84: dict[str, tuple[float, float, float, float]] = {
    "metropole": (-5.8, 41.0, 10.0, 51.6),
    "guadeloupe": (-61.9, 15.8, -60.9, 16.6),
    "martinique": (-61.3, 14.3, -60.7, 15.0),
    "guyane": (-54.7, 2.0, -51.5, 5.9),
    "reunion": (55.1, -21.5, 56.0, -20.8),
    "mayotte": (44.9, -13.1, 45.4, -12.5),
    "saint_martin_saint_barthelemy": (-63.2, 17.8, -62.7, 18.2),
    "saint_pierre_et_miquelon": (-56.5, 46.7, -56.0, 47.2),
    "nouvelle_caledonie": (163.5, -22.8, 168.2, -19.5),
    "polynesie": (-155.0, -28.0, -134.0, -7.0),
    "wallis_et_futuna": (-178.3, -14.4, -176.0, -13.2),
}

#: Lambert-93 (EPSG:2154) envelope of metropolitan France and Corsica, metres, with a margin.
LAMBERT93_ENVELOPPE = (0.0, 6_000_000.0, 1_300_000.0, 7_200_000.0)

WGS84 = "EPSG:4326"
LAMBERT93 = "EPSG:2154"

_ID_NAMES = ("identifiant", "id", "id_lieu", "code", "code_lieu", "ref", "reference", "numero")
_X_NAMES = (
    "lon",
    "long",
    "lng",
    "longitude",
    "x",
    "coord_x",
    "coordonnee_x",
    "x_l93",
    "x_lambert93",
    "x_lambert_93",
    "lambert_x",
    "xl93",
)
_Y_NAMES = (
    "lat",
    "latitude",
    "y",
    "coord_y",
    "coordonnee_y",
    "y_l93",
    "y_lambert93",
    "y_lambert_93",
    "lambert_y",
    "yl93",
)


class PointsError(ValueError):
    """An input the assignment cannot use safely (the message is in French)."""


# --------------------------------------------------------------------------------------------
# Grid index
# --------------------------------------------------------------------------------------------


def _cell_key(ix: np.ndarray, iy: np.ndarray, k: int) -> np.ndarray:
    """Integer key of cell (ix, iy) of level k (same formula as :func:`_sql_key`)."""
    return (ix + (180 << k)) * (1 << (k + 9)) + (iy + (90 << k))


def _sql_key(ix: str, iy: str, k: int) -> str:
    return f"(({ix} + {180 << k}) * {1 << (k + 9)} + ({iy} + {90 << k}))"


def _part_cell(pid: np.ndarray, ix: np.ndarray, iy: np.ndarray, k: int) -> np.ndarray:
    """Unique int64 code of a (part, cell) pair."""
    return pid.astype(np.int64) * (1 << (2 * (k + 9))) + _cell_key(ix, iy, k)


def _boundary_cells(parts: np.ndarray, k: int) -> np.ndarray:
    """(part, cell) codes of every level-k cell that a part's boundary may touch (superset).

    Each ring segment is cut into sub-segments no longer than a cell; every cell meeting the
    bounding box of a sub-segment grown by a tiny margin is marked. A cell that is not marked is
    therefore entirely inside or entirely outside the part, whatever the rounding.
    """
    f = float(1 << k)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    if len(coords) < 2:
        return np.empty(0, dtype=np.int64)
    same = ring_of[1:] == ring_of[:-1]
    x0, y0 = coords[:-1, 0][same], coords[:-1, 1][same]
    x1, y1 = coords[1:, 0][same], coords[1:, 1][same]
    seg_part = ring_part[ring_of[:-1][same]]
    pieces = np.maximum(np.ceil(np.maximum(np.abs(x1 - x0), np.abs(y1 - y0)) * f), 1)
    pieces = pieces.astype(np.int64)
    seg = np.repeat(np.arange(len(pieces)), pieces)
    j = np.arange(len(seg)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    t0 = j / pieces[seg]
    t1 = (j + 1) / pieces[seg]
    dx, dy = (x1 - x0)[seg], (y1 - y0)[seg]
    ax, bx = x0[seg] + dx * t0, x0[seg] + dx * t1
    ay, by = y0[seg] + dy * t0, y0[seg] + dy * t1
    pid = seg_part[seg]
    ixa = np.floor((np.minimum(ax, bx) - _SEGMENT_MARGIN) * f).astype(np.int64)
    ixb = np.floor((np.maximum(ax, bx) + _SEGMENT_MARGIN) * f).astype(np.int64)
    iya = np.floor((np.minimum(ay, by) - _SEGMENT_MARGIN) * f).astype(np.int64)
    iyb = np.floor((np.maximum(ay, by) + _SEGMENT_MARGIN) * f).astype(np.int64)
    out = []
    for ddx in range(3):
        for ddy in range(3):
            mask = (ixa + ddx <= ixb) & (iya + ddy <= iyb)
            out.append(_part_cell(pid[mask], ixa[mask] + ddx, iya[mask] + ddy, k))
    return np.unique(np.concatenate(out))


def _centres_inside(
    parts: np.ndarray, pid: np.ndarray, ix: np.ndarray, iy: np.ndarray, k: int
) -> np.ndarray:
    """Whether the centre of each cell is inside its part (prepared point-in-polygon)."""
    result = np.zeros(len(pid), dtype=bool)
    if not len(pid):
        return result
    f = float(1 << k)
    cx = (ix + 0.5) / f
    cy = (iy + 0.5) / f
    order = np.argsort(pid, kind="stable")
    cuts = np.flatnonzero(np.diff(pid[order])) + 1
    for group in np.split(order, cuts):
        result[group] = shapely.contains_xy(parts[pid[group[0]]], cx[group], cy[group])
    return result


def _clip(geoms: np.ndarray, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray):
    """Clip each geometry to its rectangle, valid output.

    GEOS' rectangle clipping is ten times faster than a general intersection but may return an
    invalid polygon (or fail on one): those few are redone with ``intersection``.
    """
    out = np.empty(len(geoms), dtype=object)
    redo = np.zeros(len(geoms), dtype=bool)
    clip = shapely.lib.clip_by_rect
    for i, (geom, a, b, c, d) in enumerate(
        zip(geoms, x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist(), strict=True)
    ):
        try:
            out[i] = clip(geom, a, b, c, d)
        except shapely.errors.GEOSException:
            redo[i] = True
    done = ~redo
    redo[done] = ~shapely.is_valid(out[done].astype(object))
    if redo.any():
        out[redo] = shapely.intersection(
            geoms[redo], shapely.box(x0[redo], y0[redo], x1[redo], y1[redo])
        )
    return out


@dataclass
class _Level:
    k: int
    keys: np.ndarray  # cell keys present (touching at least one QPV)
    codes: np.ndarray  # resolved code index, -1 when the cell must be looked at further


@dataclass
class _Grid:
    codes: list[str]
    parts: np.ndarray
    part_code: np.ndarray
    levels: list[_Level]
    # last level, unresolved cells: one row per (cell, part)
    fine_key: np.ndarray
    fine_code: np.ndarray
    fine_part: np.ndarray
    fine_piece: np.ndarray  # clipped polygon, or None when the whole cell is inside the part
    stats: dict[str, Any] = field(default_factory=dict)


def _build_grid(codes: Sequence[str], geoms: Sequence[Any], levels: Sequence[int]) -> _Grid:
    """Build the multi-level grid of a set of (code, polygon) in lon/lat degrees."""
    levels = tuple(int(k) for k in levels)
    if not levels or list(levels) != sorted(set(levels)) or levels[-1] > 14 or levels[0] < 0:
        raise ValueError(f"niveaux de grille invalides : {levels} (croissants, entre 0 et 14)")
    unique_codes = sorted(set(codes))
    code_index = {c: i for i, c in enumerate(unique_codes)}
    geoms = np.asarray(geoms, dtype=object)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    keep = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    parts, owner = parts[keep], owner[keep]
    part_code = np.array([code_index[codes[i]] for i in owner], dtype=np.int64)
    if len(parts) >= 1 << (63 - 2 * (levels[-1] + 9)):
        raise ValueError(f"trop de polygones ({len(parts)}) pour le niveau {levels[-1]}")
    shapely.prepare(parts)
    stats: dict[str, Any] = {"polygones": len(parts), "qpv": len(unique_codes)}

    kf = levels[-1]
    boundary_fine = _boundary_cells(parts, kf)
    fine_mod = 1 << (2 * (kf + 9))
    bf_pid = boundary_fine // fine_mod
    bf_key = boundary_fine % fine_mod
    bf_x = bf_key // (1 << (kf + 9)) - (180 << kf)
    bf_y = bf_key % (1 << (kf + 9)) - (90 << kf)

    # Level-0 candidates: every cell of each part's bounding box.
    k0 = levels[0]
    f0 = float(1 << k0)
    bounds = shapely.bounds(parts)
    xa = np.floor(bounds[:, 0] * f0).astype(np.int64)
    xb = np.floor(bounds[:, 2] * f0).astype(np.int64)
    ya = np.floor(bounds[:, 1] * f0).astype(np.int64)
    yb = np.floor(bounds[:, 3] * f0).astype(np.int64)
    nx, ny = xb - xa + 1, yb - ya + 1
    count = nx * ny
    pid = np.repeat(np.arange(len(parts), dtype=np.int64), count)
    j = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    ix = xa[pid] + j % nx[pid]
    iy = ya[pid] + j // nx[pid]
    known_inside = np.zeros(len(pid), dtype=bool)
    piece = parts[pid]  # geometry to clip for each row (the part, then the parent's piece)

    out_levels: list[_Level] = []
    pip_tests = 0
    fine = None
    for li, k in enumerate(levels):
        shift = kf - k
        boundary_k = np.unique(_part_cell(bf_pid, bf_x >> shift, bf_y >> shift, k))
        row_code = _part_cell(pid, ix, iy, k)
        boundary = np.isin(row_code, boundary_k, assume_unique=False) & ~known_inside
        need = ~boundary & ~known_inside
        inside = known_inside.copy()
        inside[need] = _centres_inside(parts, pid[need], ix[need], iy[need], k)
        pip_tests += int(need.sum())
        keep = inside | boundary
        pid, ix, iy, inside, boundary = pid[keep], ix[keep], iy[keep], inside[keep], boundary[keep]
        piece = piece[keep]
        # Clip the boundary rows' geometry to their cell (hierarchically, so inputs stay small).
        if boundary.any():
            f = float(1 << k)
            bx, by = ix[boundary] / f, iy[boundary] / f
            clipped = _clip(piece[boundary], bx, by, bx + 1 / f, by + 1 / f)
            piece = piece.copy()
            piece[boundary] = clipped
        piece[inside] = None
        cell = _cell_key(ix, iy, k)
        frame = pd.DataFrame(
            {"cell": cell, "code": part_code[pid], "boundary": boundary}, copy=False
        )
        agg = frame.groupby("cell", sort=True).agg(
            cmin=("code", "min"), cmax=("code", "max"), anyb=("boundary", "any")
        )
        resolved = (agg["cmin"] == agg["cmax"]) & ~agg["anyb"]
        out_levels.append(
            _Level(
                k=k,
                keys=agg.index.to_numpy(np.int64),
                codes=np.where(resolved, agg["cmin"], -1).astype(np.int64),
            )
        )
        unresolved_cells = agg.index.to_numpy()[~resolved.to_numpy()]
        rows = np.isin(cell, unresolved_cells)
        pid, ix, iy, inside, piece = pid[rows], ix[rows], iy[rows], inside[rows], piece[rows]
        stats[f"cellules_n{k}"] = len(agg)
        stats[f"cellules_n{k}_non_resolues"] = len(unresolved_cells)
        if li + 1 < len(levels):
            r = 1 << (levels[li + 1] - k)
            n = len(pid)
            dx = np.tile(np.repeat(np.arange(r), r), n)
            dy = np.tile(np.tile(np.arange(r), r), n)
            pid = np.repeat(pid, r * r)
            ix = np.repeat(ix * r, r * r) + dx
            iy = np.repeat(iy * r, r * r) + dy
            known_inside = np.repeat(inside, r * r)
            piece = np.repeat(piece, r * r)
        else:
            fine = (cell[rows], part_code[pid], pid, piece)
    assert fine is not None
    fine_key, fine_code, fine_part, fine_piece = fine
    has_piece = np.array([p is not None for p in fine_piece], dtype=bool)
    stats["tests_centre"] = pip_tests
    stats["morceaux"] = int(has_piece.sum())
    stats["sommets_morceaux_max"] = (
        int(shapely.get_num_coordinates(fine_piece[has_piece]).max()) if has_piece.any() else 0
    )
    return _Grid(
        codes=unique_codes,
        parts=parts,
        part_code=part_code,
        levels=out_levels,
        fine_key=fine_key,
        fine_code=fine_code,
        fine_part=fine_part,
        fine_piece=fine_piece,
        stats=stats,
    )


# --------------------------------------------------------------------------------------------
# Index in DuckDB
# --------------------------------------------------------------------------------------------


@dataclass
class GrilleQpv:
    """The grid index of one set of QPV polygons, held in temporary tables of a connection.

    Attributes:
        prefix: prefix of the temporary tables (``<prefix>_n<k>`` per level, ``<prefix>_const``).
        levels: grid levels (cells of ``2**-k`` degree).
        geographie: generation of the polygons used ('2015', '2024', or several joined by '+').
        source: table or view the polygons were read from.
        stats: counts (QPV, polygons, cells per level, pieces) and build time in seconds.
    """

    prefix: str
    levels: tuple[int, ...]
    geographie: str | None
    source: str
    stats: dict[str, Any]


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_relation(name: str) -> str:
    parts = name.split(".")
    if not all(parts):
        raise ValueError(f"Nom de table invalide : {name!r}")
    return ".".join(_quote_ident(p) for p in parts)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def choose_geographie(con: Any, polygons: str, geographie: str | None) -> str | None:
    """The generation to use: the one asked, else the only one present, else the latest."""
    relation = _quote_relation(polygons)
    columns = {
        r[0].lower() for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    }
    if "geographie" not in columns:
        return geographie
    present = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT geographie FROM {relation} "
            "WHERE geom IS NOT NULL AND geographie IS NOT NULL ORDER BY 1"
        ).fetchall()
    ]
    if geographie is not None:
        if geographie not in present:
            raise PointsError(
                f"Aucun contour de la géographie {geographie} dans {polygons} "
                f"(géographies présentes : {', '.join(present) or 'aucune'})"
            )
        return geographie
    if len(present) > 1:
        logger.info(
            "%s contient les géographies %s : la plus récente (%s) est utilisée",
            polygons,
            ", ".join(present),
            present[-1],
        )
    return present[-1] if present else None


def build_index(
    con: Any,
    polygons: str = "marts.dim_qpv",
    geographie: str | None = None,
    levels: Sequence[int] = DEFAULT_LEVELS,
    prefix: str | None = None,
) -> GrilleQpv:
    """Build the grid index of the QPV polygons of ``polygons`` (``code_qpv``, ``geom`` WGS84).

    When the relation has a ``geographie`` column, one generation is used: ``geographie`` if
    given, else the only one present, else the most recent. Rows without geometry are ignored.
    The index lives in temporary tables of ``con`` (dropped with the connection).
    """
    started = time.perf_counter()
    relation = _quote_relation(polygons)
    chosen = choose_geographie(con, polygons, geographie)
    where = "geom IS NOT NULL"
    if chosen is not None:
        where += f" AND geographie = {_sql_string(chosen)}"
    rows = con.execute(
        f"SELECT code_qpv, ST_AsWKB(geom) FROM {relation} WHERE {where} ORDER BY code_qpv"
    ).fetchall()
    codes = [r[0] for r in rows]
    if len(set(codes)) != len(codes):
        raise PointsError(f"Codes QPV en double dans {polygons} pour la géographie {chosen}")
    geoms = shapely.from_wkb([bytes(r[1]) for r in rows]) if rows else np.array([], object)
    grid = _build_grid(codes, geoms, levels)
    prefix = prefix or f"_grille_qpv_{uuid.uuid4().hex[:8]}"
    _write_index(con, grid, prefix)
    stats = dict(grid.stats)
    stats["duree_construction_s"] = round(time.perf_counter() - started, 3)
    return GrilleQpv(
        prefix=prefix,
        levels=tuple(level.k for level in grid.levels),
        geographie=chosen,
        source=polygons,
        stats=stats,
    )


def _write_index(con: Any, grid: _Grid, prefix: str) -> None:
    for level in grid.levels[:-1]:
        table = pa.table({"cle": level.keys, "c": level.codes.astype(np.int32)})
        _create_temp(con, f"{prefix}_n{level.k}", table, "cle, c")
    last = grid.levels[-1]
    order = np.lexsort((grid.fine_part, grid.fine_code, grid.fine_key))
    has_piece = np.array([p is not None for p in grid.fine_piece[order]], dtype=bool)
    pieces = grid.fine_piece[order]
    wkb = np.full(len(order), None, dtype=object)
    outline = np.full(len(order), None, dtype=object)
    if has_piece.any():
        wkb[has_piece] = shapely.to_wkb(pieces[has_piece])
        outline[has_piece] = shapely.to_wkb(shapely.boundary(pieces[has_piece]))
    cands = pa.table(
        {
            "cle": grid.fine_key[order],
            "c": grid.fine_code[order].astype(np.int32),
            "partie": grid.fine_part[order].astype(np.int32),
            "morceau": pa.array(wkb, type=pa.binary()),
            "bord": pa.array(outline, type=pa.binary()),
        }
    )
    levels = pa.table({"cle": last.keys, "c": last.codes.astype(np.int32)})
    con.register("_grille_cands", cands)
    con.register("_grille_fin", levels)
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {_quote_ident(prefix + "_n" + str(last.k))} AS
            WITH listes AS (
                SELECT
                    cle,
                    list(
                        struct_pack(
                            c := c,
                            partie := partie,
                            morceau := ST_GeomFromWKB(morceau),
                            bord := ST_GeomFromWKB(bord)
                        )
                        ORDER BY c, partie
                    ) AS candidats
                FROM _grille_cands
                GROUP BY cle
            )
            SELECT f.cle, f.c, listes.candidats
            FROM _grille_fin AS f
            LEFT JOIN listes ON f.cle = listes.cle
            ORDER BY f.cle
            """
        )
    finally:
        con.unregister("_grille_cands")
        con.unregister("_grille_fin")
    parts = pa.table(
        {
            "i": np.arange(len(grid.parts), dtype=np.int32),
            "wkb": pa.array(shapely.to_wkb(grid.parts), type=pa.binary()),
        }
    )
    codes = pa.table({"i": np.arange(len(grid.codes), dtype=np.int32), "code": grid.codes})
    con.register("_grille_parties", parts)
    con.register("_grille_codes", codes)
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {_quote_ident(prefix + "_const")} AS
            SELECT
                (SELECT list(code ORDER BY i) FROM _grille_codes) AS codes,
                (SELECT list(ST_GeomFromWKB(wkb) ORDER BY i) FROM _grille_parties) AS parties
            """
        )
    finally:
        con.unregister("_grille_parties")
        con.unregister("_grille_codes")


def _create_temp(con: Any, name: str, table: pa.Table, columns: str) -> None:
    con.register("_grille_tmp", table)
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_quote_ident(name)} AS "
            f"SELECT {columns} FROM _grille_tmp ORDER BY 1"
        )
    finally:
        con.unregister("_grille_tmp")


def drop_index(con: Any, index: GrilleQpv) -> None:
    """Drop the temporary tables of an index."""
    for k in index.levels:
        con.execute(f"DROP TABLE IF EXISTS temp.{_quote_ident(index.prefix + '_n' + str(k))}")
    con.execute(f"DROP TABLE IF EXISTS temp.{_quote_ident(index.prefix + '_const')}")


# --------------------------------------------------------------------------------------------
# SQL of the assignment
# --------------------------------------------------------------------------------------------


def _sql_number(expr: str, numeric: bool) -> str:
    """SQL turning a raw cell into a DOUBLE (NULL when not a number)."""
    if numeric:
        return f"CAST({expr} AS DOUBLE)"
    # Text: drop blanks (incl. no-break and narrow no-break spaces); with a decimal comma,
    # dots are thousands separators.
    text = f"regexp_replace(trim(CAST({expr} AS VARCHAR)), '[\\s\\x{{00A0}}\\x{{202F}}]', '', 'g')"
    return (
        f"TRY_CAST(CASE WHEN contains({text}, ',') "
        f"THEN replace(replace({text}, '.', ''), ',', '.') ELSE {text} END AS DOUBLE)"
    )


def _in_boxes(x: str, y: str, boxes: Sequence[tuple[float, float, float, float]]) -> str:
    return "(" + " OR ".join(
        f"({x} BETWEEN {a!r} AND {c!r} AND {y} BETWEEN {b!r} AND {d!r})" for a, b, c, d in boxes
    ) + ")"


def _etat_sql(crs: str) -> str:
    """SQL giving the coordinate check of a row: 'ok', 'inverse' or 'invalide'."""
    missing = "_x IS NULL OR _y IS NULL OR isnan(_x) OR isnan(_y) OR isinf(_x) OR isinf(_y)"
    if crs == WGS84:
        boxes = list(TERRITOIRES_WGS84.values())
        return f"""CASE
            WHEN {missing} THEN 'invalide'
            WHEN _x = 0 AND _y = 0 THEN 'invalide'
            WHEN {_in_boxes("_x", "_y", boxes)} THEN 'ok'
            WHEN {_in_boxes("_y", "_x", boxes)} THEN 'inverse'
            WHEN abs(_x) > 180 OR abs(_y) > 90 THEN 'invalide'
            ELSE 'ok' END"""
    if crs == LAMBERT93:
        box = [LAMBERT93_ENVELOPPE]
        return f"""CASE
            WHEN {missing} THEN 'invalide'
            WHEN {_in_boxes("_x", "_y", box)} THEN 'ok'
            WHEN {_in_boxes("_y", "_x", box)} THEN 'inverse'
            ELSE 'invalide' END"""
    raise PointsError(f"Système de coordonnées non pris en charge : {crs}")


def _motif_sql(crs: str) -> str:
    bornes = (
        "hors des bornes en degrés (longitude -180..180, latitude -90..90)"
        if crs == WGS84
        else "hors de l'emprise du Lambert-93 (France métropolitaine)"
    )
    return f"""CASE
        WHEN _etat = 'ok' THEN NULL
        WHEN _etat = 'inverse' THEN 'longitude et latitude (x et y) inversées'
        WHEN _xr IS NULL OR _yr IS NULL OR trim(CAST(_xr AS VARCHAR)) = ''
            OR trim(CAST(_yr AS VARCHAR)) = '' THEN 'coordonnée absente'
        WHEN _x IS NULL OR _y IS NULL OR isnan(_x) OR isnan(_y) OR isinf(_x) OR isinf(_y)
            THEN 'coordonnée non numérique'
        WHEN _x = 0 AND _y = 0 THEN 'coordonnées (0, 0) : échec de géocodage probable'
        ELSE {_sql_string(bornes)} END"""


def assignment_sql(
    index: GrilleQpv,
    source_sql: str,
    x_expr: str,
    y_expr: str,
    *,
    numeric: bool = True,
    crs: str = WGS84,
    keep: Sequence[str] = (),
    with_details: bool = True,
) -> str:
    """SQL assigning each row of ``source_sql`` (a FROM item) to a QPV with ``index``.

    ``x_expr`` / ``y_expr`` are SQL expressions over the source giving the raw coordinates
    (numbers, or text when ``numeric`` is false). Output: the ``keep`` columns, then
    ``statut``, ``code_qpv``, ``nb_qpv`` and, with ``with_details``, ``motif``,
    ``code_qpv_apres_inversion``, ``lon``, ``lat`` (WGS84 coordinates used) and
    ``geographie_qpv``.
    """
    levels = index.levels
    kf = levels[-1]
    prefix = index.prefix
    kept = ", ".join(f"src.{_quote_ident(c)}" for c in keep)
    kept_out = "".join(f"{_quote_ident(c)}, " for c in keep)
    if crs == WGS84:
        lonlat = """CASE _etat WHEN 'ok' THEN _x WHEN 'inverse' THEN _y END AS _lon,
            CASE _etat WHEN 'ok' THEN _y WHEN 'inverse' THEN _x END AS _lat"""
        lonlat_src = "v"
    else:
        lonlat = "ST_X(_p) AS _lon, ST_Y(_p) AS _lat"
        lonlat_src = f"""(SELECT *, CASE _etat
                WHEN 'ok' THEN ST_Transform(ST_Point(_x, _y), '{LAMBERT93}', '{WGS84}',
                    always_xy := true)
                WHEN 'inverse' THEN ST_Transform(ST_Point(_y, _x), '{LAMBERT93}', '{WGS84}',
                    always_xy := true)
                END AS _p FROM v)"""
    ctes = [
        f"""src0 AS (
            SELECT {kept + ", " if kept else ""}{x_expr} AS _xr, {y_expr} AS _yr
            FROM {source_sql} AS src
        )""",
        f"""v AS (
            SELECT *, {_etat_sql(crs)} AS _etat
            FROM (SELECT *, {_sql_number("_xr", numeric)} AS _x,
                {_sql_number("_yr", numeric)} AS _y FROM src0)
        )""",
        f"e AS (SELECT *, {lonlat} FROM {lonlat_src})",
    ]
    previous = "e"
    for i, k in enumerate(levels):
        table = _quote_ident(f"{prefix}_n{k}")
        f = float(1 << k)
        key = _sql_key(f"floor(_lon * {f!r})::BIGINT", f"floor(_lat * {f!r})::BIGINT", k)
        extra = ", n.candidats AS _cands" if k == kf else ""
        if k == kf:
            border = TOLERANCE_DEG * f
            extra += (
                f", (_lon * {f!r} - floor(_lon * {f!r}) < {border!r} "
                f"OR _lon * {f!r} - floor(_lon * {f!r}) > {1 - border!r} "
                f"OR _lat * {f!r} - floor(_lat * {f!r}) < {border!r} "
                f"OR _lat * {f!r} - floor(_lat * {f!r}) > {1 - border!r}) AS _bordure"
            )
        ctes.append(
            f"""j{i} AS (
            SELECT {previous}.*, n.c AS _c{i}{extra}
            FROM {previous} LEFT JOIN temp.{table} AS n ON n.cle = {key}
        )"""
        )
        previous = f"j{i}"
    point = "ST_Point(_lon, _lat)"
    test = (
        f"c -> c.morceau IS NULL OR CASE WHEN _bordure OR ST_DWithin(c.bord, {point}, "
        f"{TOLERANCE_DEG!r}) THEN ST_Intersects(k.parties[c.partie + 1], {point}) "
        f"ELSE ST_Intersects(c.morceau, {point}) END"
    )
    ctes.append(
        f"""m AS (
            SELECT {previous}.*, k.codes AS _codes,
                CASE WHEN _cands IS NOT NULL THEN
                    list_distinct(list_transform(list_filter(_cands, {test}), c -> c.c))
                END AS _trouves
            FROM {previous} CROSS JOIN temp.{_quote_ident(prefix + "_const")} AS k
        )"""
    )
    resolved = ", ".join(f"CASE WHEN _c{i} >= 0 THEN _c{i} END" for i in range(len(levels)))
    ctes.append(
        f"""r AS (
            SELECT *,
                coalesce({resolved}, list_min(_trouves)) AS _c,
                CASE WHEN coalesce({resolved}) IS NOT NULL THEN 1
                    ELSE coalesce(len(_trouves), 0) END AS _n
            FROM m
        )"""
    )
    geographie = "NULL" if index.geographie is None else _sql_string(index.geographie)
    details = (
        f""",
            {_motif_sql(crs)} AS motif,
            CASE WHEN _etat = 'inverse' THEN _codes[_c + 1] END AS code_qpv_apres_inversion,
            _lon AS lon,
            _lat AS lat,
            {geographie} AS geographie_qpv"""
        if with_details
        else ""
    )
    return f"""WITH {", ".join(ctes)}
        SELECT {kept_out}
            CASE _etat
                WHEN 'ok' THEN CASE WHEN _c IS NOT NULL THEN 'dans_qpv' ELSE 'hors_qpv' END
                WHEN 'inverse' THEN 'lon_lat_inverses'
                ELSE 'coordonnees_invalides' END AS statut,
            CASE WHEN _etat = 'ok' THEN _codes[_c + 1] END AS code_qpv,
            CASE WHEN _etat = 'ok' THEN _n END AS nb_qpv{details}
        FROM r"""
