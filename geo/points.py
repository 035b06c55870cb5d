"""Point-in-QPV: assign geocoded records to the QPV containing them, in DuckDB spatial.

Entry points:

* :func:`build_index` reads the QPV polygons of one geography (2015 or 2024) from a DuckDB
  table or view (``code_qpv``, ``geom`` in WGS84, optional ``geographie``) and builds the
  *grille QPV*, a grid index held in a DuckDB table (temporary, or persisted and reopened
  with :func:`open_index`).
* :func:`read_points` opens a CSV (``;`` or ``,``, decimal point or comma) or Parquet file as a
  DuckDB view, and finds its identifier and coordinate columns.
* :func:`assign_points` gives every record a status and, when it falls in a QPV, its code:
  one streaming DuckDB query (read, validate, assign, write). For WGS84 input it runs the
  compiled kernel (:mod:`geo.noyau`, a DuckDB extension built from C on first use); otherwise,
  or when the kernel cannot be built, the SQL path below. Both give the same rows.

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
  all of them, and a point closer than :data:`TOLERANCE_DEG` to an edge of its cell is
  re-tested against the original polygon.

How the grid works (why it is faster than DuckDB's ``SPATIAL_JOIN``; figures in
``docs/geographie.md``): DuckDB's spatial join spends its time in the refine step,
``ST_Intersects`` costing about 2 µs per call whatever the polygon. Here, cells of ``2^-k``
degree at a few levels ``k`` (default 7, 9, 11, i.e. about 870 m, 220 m and 54 m in latitude)
are classified once per set of polygons: a cell is *resolved* when its closed square is in the
interior of exactly one QPV and touches no other, absent from the index when it touches no
QPV, otherwise subdivided down to the last level, where it keeps the edges of its QPV rings
clipped to the cell (Sutherland-Hodgman; five edges on average). The index is flattened to the
last level: every record is looked up with a single hash join on an integer cell key; the few
per cent in unresolved cells get a crossing-number test on their cell's edges (arithmetic in a
DuckDB lambda, no geometry object), and those within :data:`TOLERANCE_DEG` of an edge are
re-tested exactly with ``ST_Intersects`` (DuckDB spatial) on the original polygons, held in a
session variable. Everything is one streaming query: memory does not depend on the number of
records.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely

logger = logging.getLogger(__name__)

STATUTS = ("dans_qpv", "hors_qpv", "coordonnees_invalides", "lon_lat_inverses")

#: Columns added by the assignment (the last five with ``with_details``).
OUTPUT_COLUMNS = [
    "statut",
    "code_qpv",
    "nb_qpv",
    "motif",
    "code_qpv_apres_inversion",
    "lon_wgs84",
    "lat_wgs84",
    "geographie_qpv",
]

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

#: Options of the assignment's Parquet output. Parquet format 2 data pages encode integers
#: (``id``) as DELTA_BINARY_PACKED: at 10 M points the file is 6 MiB instead of 44 MiB, and the
#: write about 0.15 s faster than format 1 (snappy), 0.25 s faster than zstd. Read by DuckDB
#: and pyarrow (pandas, geopandas).
PARQUET_OPTIONS = "(FORMAT parquet, COMPRESSION snappy, PARQUET_VERSION v2)"


def _parquet_options(source: PointsSource, keep: Sequence[str]) -> str:
    """:data:`PARQUET_OPTIONS`, without dictionary encoding when no kept column is text.

    The ENUM columns (``statut``, ``code_qpv``) are always written with their dictionary; for
    numbers (identifiers, mostly distinct) DuckDB's dictionary trial is wasted work: about
    0.05 s at 10 M points. A kept text column (a commune name...) keeps it.
    """
    if any(source.types.get(c, "VARCHAR").upper().startswith("VARCHAR") for c in keep):
        return PARQUET_OPTIONS
    return PARQUET_OPTIONS[:-1] + ", DICTIONARY_SIZE_LIMIT 0)"


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
# Grid index: construction (numpy + shapely)
# --------------------------------------------------------------------------------------------


def _cell_key(ix: np.ndarray, iy: np.ndarray, k: int) -> np.ndarray:
    """Integer key of cell (ix, iy) of level k (same formula as :func:`_sql_key`)."""
    return (ix + (180 << k)) * (1 << (k + 9)) + (iy + (90 << k))


def _sql_key(ix: str, iy: str, k: int) -> str:
    return f"(({ix} + {180 << k}) * {1 << (k + 9)} + ({iy} + {90 << k}))"


def _sql_key_double(lon: str, lat: str, k: int) -> str:
    """SQL of the cell key computed in DOUBLE (exact: integers below 2**53), cast once."""
    f = float(1 << k)
    m = float(1 << (k + 9))
    c = float((180 << k) * (1 << (k + 9)) + (90 << k))
    return f"CAST(floor({lon} * {f!r}) * {m!r} + floor({lat} * {f!r}) + {c!r} AS BIGINT)"


def _part_cell(pid: np.ndarray, ix: np.ndarray, iy: np.ndarray, k: int) -> np.ndarray:
    """Unique int64 code of a (polygon, cell) pair."""
    return pid.astype(np.int64) * (1 << (2 * (k + 9))) + _cell_key(ix, iy, k)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each (s, c)."""
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = np.repeat(starts.astype(np.int64) - np.cumsum(counts) + counts, counts)
    return shift + np.arange(total, dtype=np.int64)


@dataclass
class _Rings:
    """Rings as flat vertex arrays (open rings: the closing vertex is not repeated).

    Rings are grouped by ``owner`` (ascending); the vertices of ring r are
    ``x[start[r]:start[r] + count[r]]``.
    """

    x: np.ndarray
    y: np.ndarray
    start: np.ndarray
    count: np.ndarray
    owner: np.ndarray

    @classmethod
    def of_parts(cls, parts: np.ndarray) -> _Rings:
        rings, owner = shapely.get_rings(parts, return_index=True)
        coords, ring_of = shapely.get_coordinates(rings, return_index=True)
        count_closed = np.bincount(ring_of, minlength=len(rings))
        start_closed = np.cumsum(count_closed) - count_closed
        keep = np.ones(len(coords), dtype=bool)
        keep[start_closed + count_closed - 1] = False  # drop the closing vertex
        return cls(
            x=coords[keep, 0].copy(),
            y=coords[keep, 1].copy(),
            start=start_closed - np.arange(len(rings)),
            count=count_closed - 1,
            owner=owner.astype(np.int64),
        )

    def for_rows(self, parent: np.ndarray) -> _Rings:
        """Copy of the rings of ``parent[i]``, owned by row i."""
        lo = np.searchsorted(self.owner, parent, side="left")
        hi = np.searchsorted(self.owner, parent, side="right")
        ring_idx = _ranges(lo, hi - lo)
        owner = np.repeat(np.arange(len(parent), dtype=np.int64), hi - lo)
        counts = self.count[ring_idx]
        vertex_idx = _ranges(self.start[ring_idx], counts)
        return _Rings(
            x=self.x[vertex_idx],
            y=self.y[vertex_idx],
            start=np.cumsum(counts) - counts,
            count=counts,
            owner=owner,
        )


def _clip_halfplane(
    x: np.ndarray, y: np.ndarray, ring: np.ndarray, axis: int, keep_greater: bool, bound
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Sutherland-Hodgman pass: keep the side ``coord >= bound`` (or ``<=``) of each ring.

    ``ring`` gives the ring of each vertex (rings are contiguous blocks), ``bound`` the bound of
    each ring. The new vertices lie on the bound exactly (their other coordinate is rounded).
    """
    n = len(x)
    if n == 0:
        return x, y, ring
    b = bound[ring]
    v = x if axis == 0 else y
    inside = v >= b if keep_greater else v <= b
    first = np.ones(n, dtype=bool)
    first[1:] = ring[1:] != ring[:-1]
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], n) - 1
    prev = np.arange(n) - 1
    prev[starts] = ends
    cross = inside != inside[prev]
    count = cross.astype(np.int64) + inside
    offset = np.cumsum(count) - count
    out_x = np.empty(int(count.sum()))
    out_y = np.empty_like(out_x)
    ci = np.flatnonzero(cross)
    p = prev[ci]
    t = (b[ci] - v[p]) / (v[ci] - v[p])
    xi = x[p] + t * (x[ci] - x[p])
    yi = y[p] + t * (y[ci] - y[p])
    if axis == 0:
        xi = b[ci]
    else:
        yi = b[ci]
    out_x[offset[ci]] = xi
    out_y[offset[ci]] = yi
    ii = np.flatnonzero(inside)
    out_x[offset[ii] + cross[ii]] = x[ii]
    out_y[offset[ii] + cross[ii]] = y[ii]
    return out_x, out_y, np.repeat(ring, count)


def _clip_rings(rings: _Rings, x0, y0, x1, y1) -> _Rings:
    """Clip each ring to the rectangle of its owner (bounds indexed by owner row).

    Sutherland-Hodgman: exact for the region inside the rectangle, with possible zero-width
    edges along the rectangle's border (points there are re-tested, see module docstring).
    """
    ring_id = np.repeat(np.arange(len(rings.count)), rings.count)
    x, y = rings.x, rings.y
    owner = rings.owner
    for axis, greater, bound in ((0, True, x0), (0, False, x1), (1, True, y0), (1, False, y1)):
        x, y, ring_id = _clip_halfplane(x, y, ring_id, axis, greater, bound[owner])
    counts = np.bincount(ring_id, minlength=len(rings.count))
    keep_ring = counts >= 3
    keep_vertex = keep_ring[ring_id]
    counts = counts[keep_ring]
    return _Rings(
        x=x[keep_vertex],
        y=y[keep_vertex],
        start=np.cumsum(counts) - counts,
        count=counts,
        owner=owner[keep_ring],
    )


def _boundary_cells(rings: _Rings, k: int) -> np.ndarray:
    """(polygon, cell) codes of every level-k cell that a polygon's boundary may touch.

    Each ring edge is cut into sub-segments no longer than a cell; every cell meeting the
    bounding box of a sub-segment, grown by a tiny margin, is marked. A cell that is not marked
    is therefore entirely inside or entirely outside the polygon, whatever the rounding.
    """
    f = float(1 << k)
    n = len(rings.x)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    nxt = np.arange(1, n + 1)
    last = rings.start + rings.count - 1
    nxt[last] = rings.start
    x0, y0, x1, y1 = rings.x, rings.y, rings.x[nxt], rings.y[nxt]
    seg_part = np.repeat(rings.owner, rings.count)
    pieces = np.maximum(np.ceil(np.maximum(np.abs(x1 - x0), np.abs(y1 - y0)) * f), 1)
    pieces = pieces.astype(np.int64)
    seg = np.repeat(np.arange(n), pieces)
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
    """Whether the centre of each cell is inside its polygon (prepared point-in-polygon)."""
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


def _per_cell(
    cell: np.ndarray, code: np.ndarray, boundary: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sorted distinct cells with the min / max code and whether any row is a boundary row."""
    if not len(cell):
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty, np.empty(0, dtype=bool)
    order = np.argsort(cell, kind="stable")
    sorted_cells = cell[order]
    starts = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]])
    codes = code[order]
    return (
        sorted_cells[starts],
        np.minimum.reduceat(codes, starts),
        np.maximum.reduceat(codes, starts),
        np.add.reduceat(boundary[order].astype(np.int64), starts) > 0,
    )


@dataclass
class _Grid:
    """The grid of one polygon set, flattened to its last level ``k``.

    Resolved cells (inside exactly one QPV, touching no other): ``keys`` / ``codes``.
    Unresolved cells: one row per (cell, polygon) in ``cand_*`` (``cand_full`` when the cell is
    entirely inside the polygon) and the clipped ring edges of the other rows in ``edge_*``
    (``edge_row`` indexes the candidate rows).
    """

    k: int
    codes: list[str]
    parts: np.ndarray
    part_code: np.ndarray
    keys: np.ndarray
    key_codes: np.ndarray
    cand_key: np.ndarray
    cand_code: np.ndarray
    cand_part: np.ndarray
    cand_full: np.ndarray
    edge_row: np.ndarray
    edge_x1: np.ndarray
    edge_y1: np.ndarray
    edge_x2: np.ndarray
    edge_y2: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)
    #: Per level ``(k, cell keys, values)``: value >= 0 resolved (code index), -1 subdivided,
    #: <= -2 unresolved cell of the last level (``-2 - j``, j-th distinct ``cand_key``).
    #: Cells absent touch no QPV. Used by the compiled kernel (:mod:`geo.noyau`).
    level_tables: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)
    tolerance: float = TOLERANCE_DEG

    def edge_columns(self) -> tuple[np.ndarray, ...]:
        """Per edge: x1, y1, y2, inverse slope k = dx / dy and horizontal tolerance tx."""
        dx = self.edge_x2 - self.edge_x1
        dy = self.edge_y2 - self.edge_y1
        sloped = dy != 0
        inverse_slope = np.zeros(len(dx))
        inverse_slope[sloped] = dx[sloped] / dy[sloped]
        # A point at horizontal distance h from the edge's line is at distance h * |dy| / length
        # from it: within the tolerance when h < tol * length / |dy|.
        tol_x = np.zeros(len(dx))
        tol_x[sloped] = self.tolerance * np.hypot(dx[sloped], dy[sloped]) / np.abs(dy[sloped])
        return self.edge_x1, self.edge_y1, self.edge_y2, inverse_slope, tol_x


def _build_grid(codes: Sequence[str], geoms: Sequence[Any], levels: Sequence[int]) -> _Grid:
    """Build the grid of a set of (code, polygon) in lon/lat degrees."""
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
    kf = levels[-1]
    if len(parts) >= 1 << (63 - 2 * (kf + 9)):
        raise ValueError(f"trop de polygones ({len(parts)}) pour le niveau {kf}")
    shapely.prepare(parts)
    stats: dict[str, Any] = {"qpv": len(unique_codes), "polygones": len(parts)}
    part_rings = _Rings.of_parts(parts)

    boundary_fine = _boundary_cells(part_rings, kf)
    fine_mod = 1 << (2 * (kf + 9))
    bf_pid = boundary_fine // fine_mod
    bf_key = boundary_fine % fine_mod
    bf_x = bf_key // (1 << (kf + 9)) - (180 << kf)
    bf_y = bf_key % (1 << (kf + 9)) - (90 << kf)

    # Level-0 rows: every cell of each polygon's bounding box.
    k0 = levels[0]
    f0 = float(1 << k0)
    bounds = shapely.bounds(parts) if len(parts) else np.empty((0, 4))
    xa = np.floor(bounds[:, 0] * f0).astype(np.int64)
    xb = np.floor(bounds[:, 2] * f0).astype(np.int64)
    ya = np.floor(bounds[:, 1] * f0).astype(np.int64)
    yb = np.floor(bounds[:, 3] * f0).astype(np.int64)
    nx, ny = xb - xa + 1, yb - ya + 1
    count = nx * ny
    pid = np.repeat(np.arange(len(parts), dtype=np.int64), count)
    j = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    ix = xa[pid] + j % nx[pid]
    iy = ya[pid] + j // nx[pid]
    known_inside = np.zeros(len(pid), dtype=bool)
    parent = pid.copy()  # rows whose rings are clipped: the polygon itself at level 0
    parent_rings = part_rings

    resolved_keys: list[np.ndarray] = []
    resolved_codes: list[np.ndarray] = []
    level_cells: list[tuple[int, np.ndarray, np.ndarray]] = []
    pip_tests = 0
    for li, k in enumerate(levels):
        f = float(1 << k)
        shift = kf - k
        boundary_k = np.unique(_part_cell(bf_pid, bf_x >> shift, bf_y >> shift, k))
        boundary = ~known_inside & np.isin(_part_cell(pid, ix, iy, k), boundary_k)
        need = ~boundary & ~known_inside
        inside = known_inside.copy()
        inside[need] = _centres_inside(parts, pid[need], ix[need], iy[need], k)
        pip_tests += int(need.sum())
        keep = inside | boundary
        pid, ix, iy, inside, boundary, parent = (
            a[keep] for a in (pid, ix, iy, inside, boundary, parent)
        )
        cell = _cell_key(ix, iy, k)
        cells, cmin, cmax, anyb = _per_cell(cell, part_code[pid], boundary)
        resolved = (cmin == cmax) & ~anyb
        level_cells.append((k, cells, np.where(resolved, cmin, -1)))
        # Resolved cells, flattened to the last level.
        r = 1 << shift
        res_cells = cells[resolved]
        rx = res_cells // (1 << (k + 9)) - (180 << k)
        ry = res_cells % (1 << (k + 9)) - (90 << k)
        dx = np.tile(np.repeat(np.arange(r), r), len(res_cells))
        dy = np.tile(np.tile(np.arange(r), r), len(res_cells))
        resolved_keys.append(
            _cell_key(np.repeat(rx * r, r * r) + dx, np.repeat(ry * r, r * r) + dy, kf)
        )
        resolved_codes.append(np.repeat(cmin[resolved], r * r))
        stats[f"cellules_n{k}"] = len(cells)
        stats[f"cellules_n{k}_resolues"] = int(resolved.sum())
        # Rows of unresolved cells go on; the boundary ones get their rings clipped to the cell.
        rows = np.isin(cell, cells[~resolved])
        pid, ix, iy, inside, boundary, parent = (
            a[rows] for a in (pid, ix, iy, inside, boundary, parent)
        )
        bidx = np.flatnonzero(boundary)
        rings = parent_rings.for_rows(parent[bidx])
        bx0, by0 = ix[bidx] / f, iy[bidx] / f
        rings = _clip_rings(rings, bx0, by0, bx0 + 1 / f, by0 + 1 / f)
        rings.owner = bidx[rings.owner]  # owner: index of the row at this level
        if li + 1 < len(levels):
            r = 1 << (levels[li + 1] - k)
            n = len(pid)
            dx = np.tile(np.repeat(np.arange(r), r), n)
            dy = np.tile(np.tile(np.arange(r), r), n)
            parent = np.repeat(np.arange(n, dtype=np.int64), r * r)
            pid = np.repeat(pid, r * r)
            ix = np.repeat(ix * r, r * r) + dx
            iy = np.repeat(iy * r, r * r) + dy
            known_inside = np.repeat(inside, r * r)
            parent_rings = rings
    # Last level: candidates of unresolved cells, sorted by cell, code, polygon.
    cell = _cell_key(ix, iy, kf)
    order = np.lexsort((pid, part_code[pid], cell))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    # Edges of the clipped rings (closing edge included).
    n = len(rings.x)
    nxt = np.arange(1, n + 1)
    if len(rings.count):
        nxt[rings.start + rings.count - 1] = rings.start
    edge_row = rank[np.repeat(rings.owner, rings.count)]
    edge_order = np.argsort(edge_row, kind="stable")
    # Kernel tables: the last level's unresolved cells point to their candidates.
    distinct_cells = np.unique(cell)
    k_last, last_cells, last_values = level_cells[-1]
    unresolved = last_values < 0
    last_values = last_values.copy()
    last_values[unresolved] = -2 - np.searchsorted(distinct_cells, last_cells[unresolved])
    level_cells[-1] = (k_last, last_cells, last_values)
    stats["tests_centre"] = pip_tests
    stats["cellules_non_resolues"] = int(len(np.unique(cell)))
    stats["candidats"] = len(order)
    stats["aretes"] = n
    return _Grid(
        k=kf,
        codes=unique_codes,
        parts=parts,
        part_code=part_code,
        keys=np.concatenate(resolved_keys) if resolved_keys else np.empty(0, np.int64),
        key_codes=np.concatenate(resolved_codes) if resolved_codes else np.empty(0, np.int64),
        cand_key=cell[order],
        cand_code=part_code[pid][order],
        cand_part=pid[order],
        cand_full=~boundary[order],
        edge_row=edge_row[edge_order],
        edge_x1=rings.x[edge_order],
        edge_y1=rings.y[edge_order],
        edge_x2=rings.x[nxt][edge_order],
        edge_y2=rings.y[nxt][edge_order],
        stats=stats,
        level_tables=[(k, c, v.astype(np.int32)) for k, c, v in level_cells],
    )


# --------------------------------------------------------------------------------------------
# Grid index in DuckDB
# --------------------------------------------------------------------------------------------


@dataclass
class GrilleQpv:
    """The grid index of one set of QPV polygons, in a table of a DuckDB connection.

    Attributes:
        table: table ``(cle, code_qpv, pleins, candidats, aretes)``, one row per last-level cell
            touching a QPV (a temporary table unless built with ``persist``).
        level: last grid level ``k`` (cells of ``2**-k`` degree).
        geographie: generation of the polygons used ('2015' or '2024'; None if unknown).
        source: table or view the polygons were read from.
        codes: QPV codes of the index (sorted).
        stats: counts (QPV, polygons, cells, candidates, edges) and build time in seconds.

    The original polygons (one row per part, for the exact re-test) are in ``<table>_polygones``.
    """

    table: str
    level: int
    geographie: str | None
    source: str
    codes: list[str] = field(repr=False)
    stats: dict[str, Any] = field(repr=False)
    #: File of the compiled kernel's index (:mod:`geo.noyau`), None when not written.
    noyau: str | None = None


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_relation(name: str) -> str:
    parts = name.split(".")
    if not all(parts):
        raise ValueError(f"Nom de table invalide : {name!r}")
    return ".".join(_quote_ident(p) for p in parts)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _columns_of(con: Any, relation_sql: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()]


def choose_geographie(con: Any, polygons: str, geographie: str | None) -> str | None:
    """The generation to use: the one asked, else the only one present, else the latest."""
    relation = _quote_relation(polygons)
    columns = {name.lower() for name, _ in _columns_of(con, relation)}
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
    table: str | None = None,
    persist: bool = False,
) -> GrilleQpv:
    """Build the grid index of the QPV polygons of ``polygons`` (``code_qpv``, ``geom`` WGS84).

    When the relation has a ``geographie`` column, one generation is used: ``geographie`` if
    given, else the only one present, else the most recent. Rows without geometry are ignored.
    The index is a temporary table of ``con`` (dropped with the connection), or with
    ``persist`` the regular tables ``table``, ``table_polygones`` and ``table_meta``, which
    :func:`open_index` reopens without rebuilding (e.g. in another process).
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
        raise PointsError(f"Codes QPV en double dans {polygons} (géographie {chosen})")
    geoms = shapely.from_wkb([bytes(r[1]) for r in rows]) if rows else np.empty(0, dtype=object)
    grid = _build_grid(codes, geoms, levels)
    table = table or f"_grille_qpv_{uuid.uuid4().hex[:10]}"
    width = _write_index(con, grid, table, temporary=not persist)
    noyau_file = _write_noyau(con, grid, table, persist)
    stats = dict(grid.stats)
    stats["candidats_par_cellule_max"] = width
    stats["duree_construction_s"] = round(time.perf_counter() - started, 3)
    index = GrilleQpv(
        table=table,
        level=grid.k,
        geographie=chosen,
        source=polygons,
        codes=grid.codes,
        stats=stats,
        noyau=noyau_file,
    )
    if persist:
        _write_index_meta(con, index)
    return index


def _database_file(con: Any) -> Path | None:
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return Path(row[0]) if row and row[0] else None


def _write_noyau(con: Any, grid: _Grid, table: str, persist: bool) -> str | None:
    """Write the kernel's index file; None (logged) when it cannot be written.

    A persisted index keeps it next to the database file (``<base>.<table>.<hash>.noyau``,
    older versions removed); a temporary one in the temporary folder. The name carries a hash
    of the content (see :func:`geo.noyau.write_index_file`).
    """
    from geo import noyau

    if not noyau.enabled():
        return None
    database = _database_file(con) if persist else None
    if database is not None:
        prefix = database.with_name(f"{database.name}.{table}")
    else:
        prefix = Path(tempfile.gettempdir()) / "observatoire-noyau" / "grille"
    try:
        target = noyau.write_index_file(grid, prefix, list(TERRITOIRES_WGS84.values()))
    except OSError as err:
        logger.info("index du noyau QPV non écrit (%s) : chemin SQL", err)
        return None
    if database is not None:
        for old in prefix.parent.glob(f"{prefix.name}.*.noyau"):
            if old != target:
                old.unlink(missing_ok=True)
    return str(target)


def _write_index_meta(con: Any, index: GrilleQpv) -> None:
    import pyarrow as pa

    meta = pa.table(
        {
            "niveau": [index.level],
            "geographie": [index.geographie],
            "source": [index.source],
            "codes": pa.array([index.codes], pa.list_(pa.string())),
            "stats": [json.dumps(index.stats)],
            "noyau": [Path(index.noyau).name if index.noyau else None],
        }
    )
    con.register("_grille_meta", meta)
    try:
        con.execute(
            f"CREATE OR REPLACE TABLE {_quote_relation(index.table + '_meta')} AS "
            "SELECT * FROM _grille_meta"
        )
    finally:
        con.unregister("_grille_meta")


def open_index(con: Any, table: str) -> GrilleQpv:
    """Reopen an index built with ``persist=True`` (in this or another process)."""
    row = con.execute(
        "SELECT niveau, geographie, source, codes, stats, noyau "
        f"FROM {_quote_relation(table + '_meta')}"
    ).fetchone()
    if row is None:
        raise PointsError(f"Index {table} vide ou absent")
    database = _database_file(con)
    noyau_file = None
    if row[5] and database is not None and (database.parent / row[5]).is_file():
        noyau_file = str(database.parent / row[5])
    return GrilleQpv(
        table=table,
        level=int(row[0]),
        geographie=row[1],
        source=row[2],
        codes=list(row[3]),
        stats=json.loads(row[4]),
        noyau=noyau_file,
    )


def enum_type(values: Sequence[str]) -> str:
    """SQL of an anonymous ENUM type over ``values`` (in this order)."""
    return "ENUM(" + ", ".join(_sql_string(v) for v in values) + ")"


def _write_index(con: Any, grid: _Grid, table: str, temporary: bool = True) -> int:
    """Write the index table; returns the number of candidate columns ``c0, c1...``."""
    import pyarrow as pa

    codes = np.asarray(grid.codes, dtype=object)
    code_type = enum_type(grid.codes) if grid.codes else "VARCHAR"
    resolved = pa.table(
        {"cle": grid.keys, "code_qpv": pa.array(codes[grid.key_codes].tolist(), pa.string())}
    )
    first = np.searchsorted(grid.cand_key, grid.cand_key, side="left")
    position = np.arange(len(grid.cand_key)) - first  # index of the candidate in its cell
    if len(position) and position.max() > 62:
        raise PointsError("Plus de 62 polygones QPV se touchent dans une même cellule")
    candidates = pa.table(
        {
            "cle": grid.cand_key,
            "i": position.astype(np.int32),
            "code_qpv": pa.array(codes[grid.cand_code].tolist(), pa.string()),
            "partie": grid.cand_part.astype(np.int32),
            "plein": grid.cand_full,
        }
    )
    _, _, _, inverse_slope, tol_x = grid.edge_columns()
    edges = pa.table(
        {
            "cle": grid.cand_key[grid.edge_row],
            "i": position[grid.edge_row].astype(np.int32),
            "x1": grid.edge_x1,
            "y1": grid.edge_y1,
            "y2": grid.edge_y2,
            "k": inverse_slope,
            "tx": tol_x,
        }
    )
    width = int(position.max()) + 1 if len(position) else 1
    parts = pa.table(
        {
            "partie": np.arange(len(grid.parts), dtype=np.int32),
            "code_qpv": pa.array([grid.codes[c] for c in grid.part_code], pa.string()),
            "wkb": pa.array(shapely.to_wkb(grid.parts).tolist(), pa.binary()),
        }
    )
    polygons_table = (
        _quote_ident(table + "_polygones") if temporary else _quote_relation(table + "_polygones")
    )
    con.register("_grille_parties", parts)
    try:
        con.execute(
            f"CREATE OR REPLACE {'TEMP TABLE' if temporary else 'TABLE'} {polygons_table} AS "
            "SELECT partie, code_qpv, ST_GeomFromWKB(wkb) AS geom, wkb FROM _grille_parties "
            "ORDER BY partie"
        )
    finally:
        con.unregister("_grille_parties")
    con.register("_grille_resolues", resolved)
    con.register("_grille_candidats", candidates)
    con.register("_grille_aretes", edges)
    edge_type = "STRUCT(i INTEGER, x1 DOUBLE, y1 DOUBLE, y2 DOUBLE, k DOUBLE, tx DOUBLE)"
    fixed = ",\n".join(
        f"                    CAST(any_value(code_qpv) FILTER (WHERE i = {j}) AS {code_type})"
        f" AS c{j}"
        for j in range(width)
    )
    nulls = ", ".join(f"CAST(NULL AS {code_type}) AS c{j}" for j in range(width))
    columns = ", ".join(f"c.c{j}" for j in range(width))
    try:
        con.execute(
            f"""
            CREATE OR REPLACE {"TEMP TABLE" if temporary else "TABLE"}
                {_quote_ident(table) if temporary else _quote_relation(table)} AS
            WITH candidats AS (
                SELECT
                    cle,
                    list(partie ORDER BY i) AS parties,
                    coalesce(sum(CASE WHEN plein THEN 1::BIGINT << i END), 0)::BIGINT AS pleins,
{fixed}
                FROM _grille_candidats
                GROUP BY cle
            ),
            aretes AS (
                SELECT
                    cle,
                    list(struct_pack(i := i, x1 := x1, y1 := y1, y2 := y2, k := k, tx := tx))
                        AS aretes
                FROM _grille_aretes
                GROUP BY cle
            )
            SELECT cle, CAST(code_qpv AS {code_type}) AS code_qpv, NULL::BIGINT AS pleins,
                NULL::INTEGER[] AS parties, {nulls}, NULL::{edge_type}[] AS aretes
            FROM _grille_resolues
            UNION ALL
            SELECT c.cle, NULL, c.pleins, c.parties, {columns}, coalesce(a.aretes, [])
            FROM candidats AS c LEFT JOIN aretes AS a ON c.cle = a.cle
            ORDER BY cle
            """
        )
    finally:
        for name in ("_grille_resolues", "_grille_candidats", "_grille_aretes"):
            con.unregister(name)
    return width


def drop_index(con: Any, index: GrilleQpv) -> None:
    """Drop the table(s) of an index."""
    if "." in index.table:
        for suffix in ("", "_polygones", "_meta"):
            con.execute(f"DROP TABLE IF EXISTS {_quote_relation(index.table + suffix)}")
    else:
        for suffix in ("", "_polygones"):
            con.execute(f"DROP TABLE IF EXISTS temp.{_quote_ident(index.table + suffix)}")


def _index_relation(index: GrilleQpv, suffix: str = "") -> str:
    if "." in index.table:
        return _quote_relation(index.table + suffix)
    return f"temp.{_quote_ident(index.table + suffix)}"


# --------------------------------------------------------------------------------------------
# SQL of the assignment
# --------------------------------------------------------------------------------------------


def _sql_number(expr: str, numeric: bool) -> str:
    """SQL turning a raw cell into a DOUBLE (NULL when it is not a number)."""
    if numeric:
        return f"CAST({expr} AS DOUBLE)"
    # Text: blanks dropped (no-break and narrow no-break spaces too); with a decimal comma,
    # dots are thousands separators.
    text = f"regexp_replace(trim(CAST({expr} AS VARCHAR)), '[\\s\\x{{00A0}}\\x{{202F}}]', '', 'g')"
    return (
        f"TRY_CAST(CASE WHEN contains({text}, ',') "
        f"THEN replace(replace({text}, '.', ''), ',', '.') ELSE {text} END AS DOUBLE)"
    )


def _in_boxes(x: str, y: str, boxes: Sequence[tuple[float, float, float, float]]) -> str:
    tests = [
        f"({x} BETWEEN {a!r} AND {c!r} AND {y} BETWEEN {b!r} AND {d!r})" for a, b, c, d in boxes
    ]
    return "(" + " OR ".join(tests) + ")"


#: Coordinate check codes of the SQL (``_etat``).
_OK, _INVERSE, _INVALIDE = 0, 1, 2


def _etat_sql(crs: str) -> str:
    """SQL giving the coordinate check of a row: 0 usable, 1 swapped, 2 invalid.

    The most frequent case (a point in metropolitan France) is tested first.
    """
    missing = "_x IS NULL OR _y IS NULL OR isnan(_x) OR isnan(_y) OR isinf(_x) OR isinf(_y)"
    if crs == WGS84:
        metro = [TERRITOIRES_WGS84["metropole"]]
        boxes = list(TERRITOIRES_WGS84.values())
        return f"""CASE
            WHEN {_in_boxes("_x", "_y", metro)} THEN {_OK}
            WHEN {missing} THEN {_INVALIDE}
            WHEN {_in_boxes("_x", "_y", boxes)} THEN {_OK}
            WHEN _x = 0 AND _y = 0 THEN {_INVALIDE}
            WHEN {_in_boxes("_y", "_x", boxes)} THEN {_INVERSE}
            WHEN abs(_x) > 180 OR abs(_y) > 90 THEN {_INVALIDE}
            ELSE {_OK} END"""
    if crs == LAMBERT93:
        box = [LAMBERT93_ENVELOPPE]
        return f"""CASE
            WHEN {_in_boxes("_x", "_y", box)} THEN {_OK}
            WHEN {missing} THEN {_INVALIDE}
            WHEN {_in_boxes("_y", "_x", box)} THEN {_INVERSE}
            ELSE {_INVALIDE} END"""
    raise PointsError(f"Système de coordonnées non pris en charge : {crs}")


def _motif_sql(crs: str) -> str:
    bornes = (
        "hors des bornes en degrés (longitude -180..180, latitude -90..90)"
        if crs == WGS84
        else "hors de l'emprise du Lambert-93 (France métropolitaine)"
    )
    return f"""CASE
            WHEN _etat = {_OK} THEN NULL
            WHEN _etat = {_INVERSE} THEN 'longitude et latitude (x et y) inversées'
            WHEN _xr IS NULL OR _yr IS NULL OR trim(CAST(_xr AS VARCHAR)) = ''
                OR trim(CAST(_yr AS VARCHAR)) = '' THEN 'coordonnée absente'
            WHEN _x IS NULL OR _y IS NULL OR isnan(_x) OR isnan(_y) OR isinf(_x) OR isinf(_y)
                THEN 'coordonnée non numérique'
            WHEN _x = 0 AND _y = 0 THEN 'coordonnées (0, 0) : échec de géocodage probable'
            ELSE {_sql_string(bornes)} END"""


#: Also re-test the points within the tolerance of their cell's border (not needed: the
#: clipped rings' edges along cell borders are exact and points on a border belong to the cell
#: above / to the right, like the crossing-number convention; kept as a switch for checks).
RETEST_CELL_BORDER = False


def set_polygon_variables(con: Any, index: GrilleQpv) -> tuple[str, str]:
    """Session variables holding the index's original polygons and their codes (by part).

    The exact re-test reads ``getvariable(<polygons>)[part + 1]``: DuckDB evaluates it only for
    the few points within the tolerance of an edge. Needs the spatial extension
    (``ST_Intersects``). Returns the two variable names.
    """
    suffix = uuid.uuid4().hex[:10]
    polygons, codes = f"qpv_polygones_{suffix}", f"qpv_codes_{suffix}"
    relation = _index_relation(index, "_polygones")
    con.execute(f"SET VARIABLE {polygons} = (SELECT list(geom ORDER BY partie) FROM {relation})")
    con.execute(f"SET VARIABLE {codes} = (SELECT list(code_qpv ORDER BY partie) FROM {relation})")
    return polygons, codes


def _load_spatial(con: Any) -> None:
    try:
        con.execute("LOAD spatial")
    except Exception as err:  # noqa: BLE001 - DuckDB raises several error types
        raise PointsError(
            "L'extension DuckDB spatial est nécessaire (ST_Intersects, ST_Transform) : "
            f"l'installer avec pipelines.duckdb_utils.load_spatial ({err})"
        ) from None


def _check_keep(keep: Sequence[str]) -> None:
    """Refuse kept input columns whose names clash with the assignment's output columns."""
    clash = sorted(set(keep) & set(OUTPUT_COLUMNS))
    if clash:
        raise PointsError(
            f"Colonnes d'entrée en conflit avec le résultat de l'affectation : {', '.join(clash)}"
        )


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
    polygon_variables: tuple[str, str] = ("qpv_polygones", "qpv_codes"),
) -> str:
    """SQL assigning each row of ``source_sql`` (a FROM item aliased ``src``) to a QPV.

    ``x_expr`` / ``y_expr`` are SQL expressions over ``src`` giving the raw coordinates
    (numbers, or text when ``numeric`` is false) in ``crs``. Output: the ``keep`` columns, then
    ``statut``, ``code_qpv``, ``nb_qpv`` and, with ``with_details``, ``motif``,
    ``code_qpv_apres_inversion``, ``lon_wgs84``, ``lat_wgs84`` (WGS84 coordinates used, swapped
    back for ``lon_lat_inverses``) and ``geographie_qpv``. The polygon variables must be set on
    the connection (:func:`set_polygon_variables`) and the spatial extension loaded.
    """
    _check_keep(keep)
    k = index.level
    f = float(1 << k)
    tol = TOLERANCE_DEG
    border = tol * f
    code_type = enum_type(index.codes) if index.codes else "VARCHAR"
    statut_type = enum_type(STATUTS)
    kept = "".join(f"src.{_quote_ident(c)}, " for c in keep)
    kept_out = "".join(f"{_quote_ident(c)}, " for c in keep)
    if crs == WGS84:
        lonlat = f"""CASE _etat WHEN {_OK} THEN _x WHEN {_INVERSE} THEN _y END AS _lon,
                CASE _etat WHEN {_OK} THEN _y WHEN {_INVERSE} THEN _x END AS _lat"""
        lonlat_from = "v"
    elif crs == LAMBERT93:
        lonlat = "ST_X(_p) AS _lon, ST_Y(_p) AS _lat"
        lonlat_from = f"""(SELECT *, CASE _etat
                WHEN {_OK} THEN ST_Transform(ST_Point(_x, _y), '{LAMBERT93}', '{WGS84}',
                    always_xy := true)
                WHEN {_INVERSE} THEN ST_Transform(ST_Point(_y, _x), '{LAMBERT93}', '{WGS84}',
                    always_xy := true)
                END AS _p FROM v)"""
    else:
        raise PointsError(f"Système de coordonnées non pris en charge : {crs}")
    key = _sql_key_double("_lon", "_lat", k)
    width = int(index.stats.get("candidats_par_cellule_max", 1))
    # One value per clipped edge: NULL when the point is within the tolerance of the edge (or
    # of one of its ends, in latitude), else the candidate's bit when the half-line from the
    # point towards +longitude crosses the edge (crossing number), else 0. For an edge spanning
    # the point's latitude, x1 + (lat - y1) * k is the longitude of the edge at that latitude
    # (k = dx / dy) and tx the horizontal tolerance (tol * length / |dy|).
    near_end = f"abs(_lat - a.y1) < {tol!r} OR abs(_lat - a.y2) < {tol!r}"
    edge_value = (
        f"a -> CASE WHEN (a.y1 > _lat) = (a.y2 > _lat) THEN "
        f"CASE WHEN {near_end} THEN NULL ELSE 0 END "
        f"WHEN {near_end} THEN NULL "
        "WHEN abs(a.x1 + (_lat - a.y1) * a.k - _lon) < a.tx THEN NULL "
        "WHEN _lon < a.x1 + (_lat - a.y1) * a.k THEN 1::BIGINT << a.i ELSE 0 END"
    )
    cell_border = (
        f"(_lon * {f!r} - floor(_lon * {f!r}) < {border!r} "
        f"OR _lon * {f!r} - floor(_lon * {f!r}) > {1 - border!r} "
        f"OR _lat * {f!r} - floor(_lat * {f!r}) < {border!r} "
        f"OR _lat * {f!r} - floor(_lat * {f!r}) > {1 - border!r})"
    )
    # Candidates are sorted by code: the first bit set gives the smallest code.
    first_code = " ".join(f"WHEN (_masque >> {j}) & 1 = 1 THEN _c{j}" for j in range(width))
    distinct_codes = " + ".join(
        f"CASE WHEN (_masque >> {j}) & 1 = 1 AND "
        + (
            " AND ".join(f"NOT ((_masque >> {i}) & 1 = 1 AND _c{i} = _c{j})" for i in range(j))
            or "true"
        )
        + " THEN 1 ELSE 0 END"
        for j in range(width)
    )
    candidate_cols = ", ".join(f"g.c{j} AS _c{j}" for j in range(width))
    # Exact re-test of each candidate polygon (NULL when absent or not intersecting; list_distinct
    # drops the NULLs).
    var_polygons, var_codes = polygon_variables
    exact = (
        "["
        + ", ".join(
            f"CASE WHEN len(_parties) > {j} AND ST_Intersects("
            f"getvariable('{var_polygons}')[_parties[{j + 1}] + 1], ST_Point(_lon, _lat)) "
            f"THEN getvariable('{var_codes}')[_parties[{j + 1}] + 1] END"
            for j in range(width)
        )
        + "]"
    )
    geographie = "NULL" if index.geographie is None else _sql_string(index.geographie)
    details = (
        f""",
            {_motif_sql(crs)} AS motif,
            CASE WHEN _etat = {_INVERSE} THEN _trouve END AS code_qpv_apres_inversion,
            _lon AS lon_wgs84,
            _lat AS lat_wgs84,
            {geographie} AS geographie_qpv"""
        if with_details
        else ""
    )
    return f"""WITH src0 AS (
            SELECT {kept}{x_expr} AS _xr, {y_expr} AS _yr FROM {source_sql} AS src
        ),
        v AS (
            SELECT *, {_etat_sql(crs)} AS _etat
            FROM (SELECT *, {_sql_number("_xr", numeric)} AS _x,
                {_sql_number("_yr", numeric)} AS _y FROM src0)
        ),
        e AS (SELECT *, {lonlat} FROM {lonlat_from}),
        j AS (
            SELECT e.*, g.code_qpv AS _code, g.pleins AS _pleins, g.parties AS _parties,
                {candidate_cols},
                CASE WHEN g.pleins IS NOT NULL THEN list_transform(g.aretes, {edge_value})
                END AS _valeurs
            FROM e LEFT JOIN {_index_relation(index)} AS g ON g.cle = {key}
        ),
        t AS (
            SELECT *,
                CASE WHEN _pleins IS NOT NULL THEN
                    {"(" + cell_border + ") OR " if RETEST_CELL_BORDER else ""}list_count(_valeurs)
                        < len(_valeurs)
                END AS _proche,
                _pleins | coalesce(list_aggregate(_valeurs, 'bit_xor'), 0) AS _masque
            FROM j
        ),
        r AS (
            SELECT *,
                CASE WHEN _proche THEN list_sort(list_distinct(CAST({exact} AS {code_type}[])))
                END AS _liste
            FROM t
        ),
        s AS (
            SELECT *,
                CASE
                    WHEN _pleins IS NULL THEN _code
                    WHEN _proche THEN _liste[1]
                    ELSE CASE {first_code} END
                END AS _trouve,
                CASE
                    WHEN _pleins IS NULL THEN CAST(_code IS NOT NULL AS INTEGER)
                    WHEN _proche THEN len(_liste)
                    ELSE {distinct_codes}
                END AS _n
            FROM r
        )
        SELECT {kept_out}
            CAST(CASE _etat
                WHEN {_OK} THEN CASE WHEN _trouve IS NOT NULL THEN 'dans_qpv' ELSE 'hors_qpv' END
                WHEN {_INVERSE} THEN 'lon_lat_inverses'
                ELSE 'coordonnees_invalides' END AS {statut_type}) AS statut,
            CASE WHEN _etat = {_OK} THEN _trouve END AS code_qpv,
            CAST(CASE WHEN _etat = {_OK} THEN _n END AS UTINYINT) AS nb_qpv{details}
        FROM s"""


# --------------------------------------------------------------------------------------------
# Input files
# --------------------------------------------------------------------------------------------


def _normalise_name(name: str) -> str:
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def normalise_crs(crs: str | int | None) -> str | None:
    """'EPSG:4326' / 'EPSG:2154' from the usual spellings (None stays None: detect)."""
    if crs is None:
        return None
    text = re.sub(r"[^a-z0-9]", "", str(crs).lower())
    if text in {"4326", "epsg4326", "wgs84", "ogccrs84", "crs84", "lonlat"}:
        return WGS84
    if text in {"2154", "epsg2154", "l93", "lambert93", "rgf93", "rgf93lambert93"}:
        return LAMBERT93
    raise PointsError(
        f"Système de coordonnées non pris en charge : {crs} (attendu : WGS84 EPSG:4326 ou "
        "Lambert-93 EPSG:2154)"
    )


@dataclass
class PointsSource:
    """A file of records opened in DuckDB, with its recognised columns.

    ``sql`` is a FROM item (``read_csv(...)`` or ``read_parquet(...)``); ``x`` / ``y`` are the
    coordinate columns, ``numeric`` whether they are typed as numbers (else parsed from text),
    ``crs`` the coordinate system (given or detected), ``identifiant`` the identifier column.
    """

    path: Path
    sql: str
    columns: list[str]
    x: str
    y: str
    numeric: bool
    crs: str
    identifiant: str | None
    extra: dict[str, str | None] = field(default_factory=dict)
    #: DuckDB type of each column (as DESCRIBE gives it).
    types: dict[str, str] = field(default_factory=dict)


def _find(columns: Sequence[str], names: Sequence[str]) -> str | None:
    by_norm = {_normalise_name(c): c for c in reversed(columns)}
    for name in names:
        if name in by_norm:
            return by_norm[name]
    return None


def read_points(
    con: Any,
    path: Path | str,
    *,
    x: str | None = None,
    y: str | None = None,
    identifiant: str | None = None,
    crs: str | int | None = None,
    extra: dict[str, Sequence[str]] | None = None,
) -> PointsSource:
    """Open a CSV (``;``, ``,`` or tab; decimal point or comma) or Parquet file of records.

    Coordinate columns are found by name (``lon``/``longitude``/``x``..., ``lat``/
    ``latitude``/``y``...) unless given. The CRS is ``crs`` if given, else detected from the
    median absolute values of the first 100,000 rows: both at most 180 gives WGS84 (degrees,
    longitude first), values in the Lambert-93 range (in either order) give EPSG:2154.
    ``extra`` maps an output name to candidate column names (e.g. ``{"type": ["type"]}``).

    Raises:
        PointsError: missing file, unknown format, coordinate columns not found, CRS unknown.
    """
    path = Path(path)
    if not path.is_file():
        raise PointsError(f"Fichier introuvable : {path}")
    suffix = path.suffix.lower()
    literal = _sql_string(str(path))
    if suffix in {".parquet", ".pq", ".geoparquet"}:
        sql = f"read_parquet({literal})"
    elif suffix in {".csv", ".txt", ".tsv"}:
        sql = f"read_csv({literal}, all_varchar = true, header = true)"
        try:
            con.execute(f"DESCRIBE SELECT * FROM {sql}").fetchall()
            con.execute(f"SELECT count(*) FROM {sql}").fetchall()
        except Exception as err:  # noqa: BLE001 - DuckDB raises several error types
            if "unicode" not in str(err).lower() and "utf" not in str(err).lower():
                raise PointsError(f"Lecture impossible de {path.name} : {err}") from None
            logger.warning("%s n'est pas en UTF-8 : lecture en Windows-1252 (latin-1)", path.name)
            sql = f"read_csv({literal}, all_varchar = true, header = true, encoding = 'latin-1')"
    else:
        raise PointsError(
            f"Format non pris en charge pour {path.name} : attendu .csv, .txt, .tsv ou .parquet"
        )
    try:
        described = _columns_of(con, sql)
    except Exception as err:  # noqa: BLE001
        raise PointsError(f"Lecture impossible de {path.name} : {err}") from None
    columns = [name for name, _ in described]
    types = dict(described)
    x_col = x or _find(columns, _X_NAMES)
    y_col = y or _find(columns, _Y_NAMES)
    for given, found, label in ((x, x_col, "x"), (y, y_col, "y")):
        if given is not None and given not in columns:
            raise PointsError(f"Colonne {given} absente de {path.name}")
        if found is None:
            raise PointsError(
                f"Colonne de coordonnée {label} (longitude/x) introuvable dans {path.name} ; "
                f"colonnes présentes : {', '.join(columns)}"
                if label == "x"
                else f"Colonne de coordonnée {label} (latitude/y) introuvable dans {path.name} ; "
                f"colonnes présentes : {', '.join(columns)}"
            )
    assert x_col is not None and y_col is not None
    numeric_types = ("DOUBLE", "FLOAT", "DECIMAL", "INTEGER", "BIGINT", "SMALLINT", "REAL")
    numeric = all(
        types[c].upper().startswith(numeric_types) or types[c].upper().startswith("HUGEINT")
        for c in (x_col, y_col)
    )
    id_col = identifiant or _find(columns, _ID_NAMES)
    extras = {
        name: _find(columns, [_normalise_name(n) for n in names])
        for name, names in (extra or {}).items()
    }
    chosen = normalise_crs(crs) or _detect_crs(con, sql, x_col, y_col, numeric, path.name)
    return PointsSource(
        path=path,
        sql=sql,
        columns=columns,
        x=x_col,
        y=y_col,
        numeric=numeric,
        crs=chosen,
        identifiant=id_col,
        extra=extras,
        types=types,
    )


def _detect_crs(con: Any, sql: str, x: str, y: str, numeric: bool, name: str) -> str:
    xs = _sql_number(f"src.{_quote_ident(x)}", numeric)
    ys = _sql_number(f"src.{_quote_ident(y)}", numeric)
    row = con.execute(
        f"""SELECT median(abs(_x)), median(abs(_y)), count(*) FROM (
            SELECT {xs} AS _x, {ys} AS _y FROM (SELECT * FROM {sql} LIMIT 100000) AS src
        ) WHERE _x IS NOT NULL AND _y IS NOT NULL AND NOT isnan(_x) AND NOT isnan(_y)
            AND NOT isinf(_x) AND NOT isinf(_y)"""
    ).fetchone()
    mx, my, n = row
    if not n:
        return WGS84
    if mx <= 180 and my <= 180:
        return WGS84
    low, high = sorted((mx, my))
    x0, y0, x1, y1 = LAMBERT93_ENVELOPPE
    if x0 <= low <= x1 and y0 <= high <= y1:
        return LAMBERT93
    raise PointsError(
        f"Système de coordonnées non reconnu dans {name} (médianes |x| = {mx:g}, |y| = {my:g}) :"
        " indiquez-le (WGS84 EPSG:4326 ou Lambert-93 EPSG:2154)"
    )


# --------------------------------------------------------------------------------------------
# Assignment
# --------------------------------------------------------------------------------------------


@dataclass
class Affectation:
    """Result of :func:`assign_points`.

    Attributes:
        output: the table name or Parquet path written.
        crs: coordinate system of the input.
        geographie: generation of the QPV polygons used.
        comptes: rows per status (``lus`` = all rows, ``dans_qpv``, ``hors_qpv``,
            ``coordonnees_invalides``, ``lon_lat_inverses``) and ``ambigus`` (rows in several
            QPV, given the smallest code).
        duree_s: wall time of the assignment query (read, assign, write).
    """

    output: str
    crs: str
    geographie: str | None
    comptes: dict[str, int]
    duree_s: float
    index: GrilleQpv | None = field(default=None, repr=False)
    #: ``noyau`` (compiled kernel, :mod:`geo.noyau`) or ``sql`` (the SQL path).
    moteur: str = "sql"


def assign_points(
    con: Any,
    source: PointsSource | str | Path,
    *,
    index: GrilleQpv | None = None,
    polygons: str = "marts.dim_qpv",
    geographie: str | None = None,
    keep: Sequence[str] | None = None,
    output: str | Path | None = None,
    output_table: str | None = None,
    with_details: bool = True,
    crs: str | int | None = None,
) -> Affectation:
    """Assign every record of ``source`` to the QPV containing it (rules: module docstring).

    ``source`` is a file path (opened with :func:`read_points`) or a :class:`PointsSource`.
    The index is built from ``polygons`` / ``geographie`` unless given. The result goes to a
    Parquet file (``output``) or a table (``output_table``, replaced; ``temp.<name>`` for a
    temporary table); columns: ``keep`` (all the
    input columns by default), then ``statut``, ``code_qpv``, ``nb_qpv`` and with
    ``with_details`` ``motif``, ``code_qpv_apres_inversion``, ``lon``, ``lat``,
    ``geographie_qpv``. One streaming query: memory does not grow with the number of rows.
    """
    if (output is None) == (output_table is None):
        raise ValueError("indiquer soit output (Parquet), soit output_table")
    if not isinstance(source, PointsSource):
        source = read_points(con, source, crs=crs)
    if index is None:
        _load_spatial(con)
        index = build_index(con, polygons, geographie)
    keep = list(source.columns if keep is None else keep)
    if source.crs == WGS84 and index.noyau and Path(index.noyau).is_file():
        from geo import noyau

        kcon = noyau.connect(index.noyau)
        if kcon is not None:
            try:
                return _assign_noyau(
                    con, kcon, source, index, keep, output, output_table, with_details
                )
            finally:
                kcon.close()
    _load_spatial(con)
    variables = set_polygon_variables(con, index)
    sql = assignment_sql(
        index,
        source.sql,
        f"src.{_quote_ident(source.x)}",
        f"src.{_quote_ident(source.y)}",
        numeric=source.numeric,
        crs=source.crs,
        keep=keep,
        with_details=with_details,
        polygon_variables=variables,
    )
    started = time.perf_counter()
    try:
        if output is not None:
            target = Path(output)
            target.parent.mkdir(parents=True, exist_ok=True)
            previous = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[
                0
            ]
            con.execute("SET preserve_insertion_order = false")
            try:
                options = _parquet_options(source, keep)
                con.execute(f"COPY ({sql}) TO {_sql_string(str(target))} {options}")
            finally:
                con.execute(f"SET preserve_insertion_order = {bool(previous)}")
            written = str(target)
            relation = f"read_parquet({_sql_string(written)})"
        else:
            assert output_table is not None
            relation = _create_output_table(con, output_table, keep, with_details, f"({sql})")
            written = output_table
    finally:
        for name in variables:
            con.execute(f"RESET VARIABLE {name}")
    duration = time.perf_counter() - started
    comptes = counts(con, relation)
    return Affectation(
        output=written,
        crs=source.crs,
        geographie=index.geographie,
        comptes=comptes,
        duree_s=round(duration, 3),
        index=index,
    )


def _create_output_table(
    con: Any, output_table: str, keep: list[str], with_details: bool, from_sql: str
) -> str:
    """(Re)create the result table ``output_table`` (``temp.<name>`` for a temporary one) from
    ``from_sql``, ENUM columns as text; returns the relation to read it back."""
    names = [*keep, "statut", "code_qpv", "nb_qpv"]
    if with_details:
        names += OUTPUT_COLUMNS[3:]
    casts = ", ".join(
        f"CAST({_quote_ident(n)} AS VARCHAR) AS {_quote_ident(n)}"
        if n in {"statut", "code_qpv", "code_qpv_apres_inversion"}
        else _quote_ident(n)
        for n in names
    )
    if output_table.lower().startswith("temp."):
        name = _quote_ident(output_table[5:])
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {casts} FROM {from_sql}")
        return f"temp.{name}"
    relation = _quote_relation(output_table)
    con.execute(f"CREATE OR REPLACE TABLE {relation} AS SELECT {casts} FROM {from_sql}")
    return relation


def _assign_noyau(
    con: Any,
    kcon: Any,
    source: PointsSource,
    index: GrilleQpv,
    keep: list[str],
    output: str | Path | None,
    output_table: str | None,
    with_details: bool,
) -> Affectation:
    """The assignment by the compiled kernel (:mod:`geo.noyau`), WGS84 input only.

    One streaming ``COPY`` in the kernel's own connection: read, check, assign in DuckDB's
    threads (``qpv_affecter``, which re-tests the points near an edge exactly with GEOS) and
    write the Parquet file. A table output is loaded from that file. Same columns and answers
    as the SQL path.
    """
    _check_keep(keep)
    kept = "".join(f"src.{_quote_ident(c)}, " for c in keep)
    kept_out = "".join(f"{_quote_ident(c)}, " for c in keep)
    x = _sql_number(f"src.{_quote_ident(source.x)}", source.numeric)
    y = _sql_number(f"src.{_quote_ident(source.y)}", source.numeric)
    geographie = "NULL" if index.geographie is None else _sql_string(index.geographie)
    details = (
        f""",
            {_motif_sql(WGS84)} AS motif,
            _r.code_qpv_apres_inversion AS code_qpv_apres_inversion,
            CASE _etat WHEN {_OK} THEN _x WHEN {_INVERSE} THEN _y END AS lon_wgs84,
            CASE _etat WHEN {_OK} THEN _y WHEN {_INVERSE} THEN _x END AS lat_wgs84,
            {geographie} AS geographie_qpv"""
        if with_details
        else ""
    )
    raw = (
        f"src.{_quote_ident(source.x)} AS _xr, src.{_quote_ident(source.y)} AS _yr, "
        if with_details
        else ""
    )
    if with_details:
        sql = f"""WITH k AS (
            SELECT {kept}{raw}_x, _y, qpv_affecter(_x, _y) AS _r
            FROM (SELECT *, {x} AS _x, {y} AS _y FROM {source.sql} AS src) AS src
        )
        SELECT {kept_out}_r.statut AS statut, _r.code_qpv AS code_qpv,
            _r.nb_qpv AS nb_qpv{details}
        FROM (SELECT *, _r.etat AS _etat FROM k)"""
    else:
        sql = f"""SELECT {kept_out}_r.statut AS statut, _r.code_qpv AS code_qpv,
            _r.nb_qpv AS nb_qpv
        FROM (SELECT {kept}qpv_affecter({x}, {y}) AS _r FROM {source.sql} AS src)"""
    started = time.perf_counter()
    temporary = None
    if output is not None:
        target = Path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
    else:
        folder = Path(tempfile.gettempdir()) / "observatoire-noyau"
        folder.mkdir(parents=True, exist_ok=True)
        target = temporary = folder / f"affectation-{uuid.uuid4().hex[:10]}.parquet"
    try:
        # a file may come out in any order (faster); a table keeps the order of the input
        kcon.execute(f"SET preserve_insertion_order = {output is None}")
        copied = kcon.execute(
            f"COPY ({sql}) TO {_sql_string(str(target))} {_parquet_options(source, keep)}"
        ).fetchone()
        # The kernel counts the rows it answered: no second read of the result for the counts
        # (kept as a check: the counts must add up to the rows written).
        answered = kcon.execute(
            "SELECT " + ", ".join(f"qpv_compte({i})" for i in range(5))
        ).fetchone()
        comptes: dict[str, int] | None = dict(zip((*STATUTS, "ambigus"), answered, strict=True))
        comptes["lus"] = sum(comptes[st] for st in STATUTS)
        if copied is None or comptes["lus"] != int(copied[0]):
            comptes = None
        if output is not None:
            written = str(target)
            relation = f"read_parquet({_sql_string(written)})"
        else:
            assert output_table is not None
            parquet = f"read_parquet({_sql_string(str(target))})"
            relation = _create_output_table(con, output_table, keep, with_details, parquet)
            written = output_table
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
    if comptes is None:
        comptes = counts(con, relation)
    duration = time.perf_counter() - started
    return Affectation(
        output=written,
        crs=source.crs,
        geographie=index.geographie,
        comptes=comptes,
        duree_s=round(duration, 3),
        index=index,
        moteur="noyau",
    )


def counts(con: Any, relation_sql: str) -> dict[str, int]:
    """Rows per status, all rows (``lus``) and ambiguous rows of an assignment result."""
    rows = con.execute(
        f"SELECT CAST(statut AS VARCHAR), count(*), count(*) FILTER (WHERE nb_qpv > 1) "
        f"FROM {relation_sql} GROUP BY ALL"
    ).fetchall()
    out = dict.fromkeys(STATUTS, 0)
    ambigus = 0
    for statut, n, amb in rows:
        out[statut] = int(n)
        ambigus += int(amb)
    out["lus"] = sum(out[s] for s in STATUTS)
    out["ambigus"] = ambigus
    return out
