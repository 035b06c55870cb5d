"""The compiled kernel of the point-in-QPV assignment: a DuckDB extension built from C here.

Why: DuckDB's own ``SPATIAL_JOIN`` calls ``ST_Intersects`` on each (point, candidate polygon)
pair, and the project's SQL path (grid + hash join + list lambdas, :mod:`geo.points`) pays per
row for the hash join and the list functions. Both stay well above the floor (reading the
points). The kernel does the same work as the SQL path (same grid, same arithmetic in the same
order) as a DuckDB scalar function written against DuckDB's stable C extension API: it runs on
DuckDB's vectors in DuckDB's threads, with no Python in the loop, inside the one streaming
``COPY`` that reads and writes the points.

* :func:`extension_path` compiles ``geo/noyau/qpv_noyau.c`` with the machine's C compiler
  (``cc``, or ``$CC``), for this processor (``-march=native``, else portable), once per source,
  DuckDB version and processor, into the user's cache (``$OBSERVATOIRE_CACHE`` or
  ``~/.cache/observatoire-qpv``), and appends DuckDB's extension footer (unsigned, C API
  ``v1.2.0``).
* :func:`connect` opens a new in-memory DuckDB connection (``allow_unsigned_extensions``)
  with the kernel loaded on one index file; it returns None, with the reason logged, when no
  compiler is available or the extension does not load: :mod:`geo.points` then uses its SQL
  path, which gives the same answers. ``OBSERVATOIRE_NOYAU=0`` forces the SQL path.
* :func:`write_index_file` writes a grid (``geo.points._Grid``) in the kernel's binary format.

The headers ``geo/noyau/duckdb.h`` and ``duckdb_extension.h`` come from the DuckDB 1.5.5
source distribution (MIT licence, ``geo/noyau/LICENSE-duckdb``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import shapely

logger = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).parent / "noyau"
SOURCE = SOURCE_DIR / "qpv_noyau.c"
MAGIC = b"QPVNOY04"
_OUTSIDE = np.iinfo(np.int32).min
C_API_VERSION = "v1.2.0"
_HEADER_COUNT = 64
_LEVELS_AT = 24

_CACHE: dict[str, Path | None] = {}
_LOAD_LOCK = threading.Lock()
_FAILURE: dict[str, str] = {}


class NoyauIndisponible(RuntimeError):
    """The kernel cannot be built or loaded here (the reason is in the message)."""


def _platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    system = platform.system().lower()
    return f"{'osx' if system == 'darwin' else system}_{arch}"


def _cpu_signature() -> str:
    """What the compiled code may assume of this processor (it is built for it: ``-march=native``).

    Model and instruction-set flags on Linux, the processor name elsewhere: part of the cache
    key, so that a cache folder shared by different machines never hands one a binary built for
    instructions it lacks.
    """
    try:
        model = flags = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            name = name.strip()
            if name in ("model name", "CPU part") and not model:
                model = value.strip()
            elif name in ("flags", "Features") and not flags:
                flags = value.strip()
            if model and flags:
                break
        if model or flags:
            return f"{model}|{flags}"
    except OSError:
        pass
    return f"{platform.processor()}|{platform.machine()}"


def _footer(extension_version: str) -> bytes:
    """DuckDB's 534-byte extension footer (8 fields of 32 bytes in reverse, unsigned)."""

    def field(text: str) -> bytes:
        raw = text.encode("ascii")[:32]
        return raw + b"\0" * (32 - len(raw))

    fields = ["4", _platform(), C_API_VERSION, extension_version, "C_STRUCT", "", "", ""]
    prefix = b"\x00\x93\x04\x10duckdb_signature\x80\x04"
    return prefix + b"".join(field(f) for f in reversed(fields)) + b"\0" * 256


def cache_dir() -> Path:
    base = os.environ.get("OBSERVATOIRE_CACHE")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "observatoire-qpv"


def extension_path() -> Path:
    """Compiled extension for this source, DuckDB version and processor (built on first use)."""
    import duckdb

    digest = hashlib.sha256()
    for name in ("qpv_noyau.c", "duckdb.h", "duckdb_extension.h"):
        digest.update((SOURCE_DIR / name).read_bytes())
    digest.update(duckdb.__version__.encode())
    digest.update(_platform().encode())
    digest.update(_cpu_signature().encode())
    version = digest.hexdigest()[:12]
    key = version
    if key in _CACHE and _CACHE[key] is not None:
        return _CACHE[key]  # type: ignore[return-value]
    if key in _FAILURE:
        raise NoyauIndisponible(_FAILURE[key])
    # DuckDB derives the entry point from the file name: one folder per version.
    target = cache_dir() / version / "qpv_noyau.duckdb_extension"
    if target.exists():
        _CACHE[key] = target
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        _FAILURE[key] = "pas de compilateur C (cc, gcc ou $CC) pour construire le noyau"
        raise NoyauIndisponible(_FAILURE[key])
    try:
        _compile(compiler, target, version)
    except NoyauIndisponible as err:
        _FAILURE[key] = str(err)
        raise
    except OSError as err:  # cache folder not writable, disk full...
        _FAILURE[key] = f"compilation du noyau impossible : {err}"
        raise NoyauIndisponible(_FAILURE[key]) from None
    logger.info("noyau QPV compilé : %s", target)
    _CACHE[key] = target
    return target


def _compile(compiler: str, target: Path, version: str) -> None:
    """Compile the extension into ``target`` (atomically); NoyauIndisponible on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        library = Path(tmp) / "qpv_noyau.so"
        command = [
            compiler,
            "-O3",
            "-ffp-contract=off",  # no fused multiply-add: the SQL path's arithmetic, bit for bit
            "-fPIC",
            "-shared",
            "-fvisibility=hidden",
            "-I",
            str(SOURCE_DIR),
            "-o",
            str(library),
            str(SOURCE),
            "-lm",
            "-lpthread",
            "-ldl",
        ]
        # Built for this processor (a quarter of the kernel's time: the cell computations
        # vectorise); compilers that do not know the option get the portable build.
        problem = None
        for extra in (["-march=native"], []):
            try:
                done = subprocess.run(
                    command[:1] + extra + command[1:], capture_output=True, text=True, timeout=300
                )
                problem = done.stderr.strip()[-800:] if done.returncode != 0 else None
            except (OSError, subprocess.SubprocessError) as err:
                problem = f"{compiler} : {err}"
            if problem is None:
                break
        if problem is not None:
            raise NoyauIndisponible(f"compilation du noyau impossible : {problem}")
        staged = Path(tmp) / target.name
        staged.write_bytes(library.read_bytes() + _footer(version))
        os.replace(staged, target)  # atomic: concurrent builds are harmless


def enabled() -> bool:
    """Whether the kernel may be used (``OBSERVATOIRE_NOYAU=0`` forces the SQL path)."""
    return os.environ.get("OBSERVATOIRE_NOYAU", "1").strip().lower() not in {"0", "non", "false"}


def connect(index_file: str | Path) -> Any | None:
    """A new in-memory DuckDB connection with the kernel loaded on ``index_file``.

    The kernel's functions carry the index's QPV codes in their ENUM types, fixed when the
    extension is loaded in a database: hence one connection per index. Returns None (the
    reason logged) when the kernel cannot be built or loaded here.
    """
    import duckdb

    if not enabled():
        return None
    try:
        path = extension_path()
    except NoyauIndisponible as err:
        logger.info("noyau QPV indisponible, chemin SQL utilisé : %s", err)
        return None
    geos = geos_library()
    if geos is None:
        logger.info("noyau QPV non chargé, chemin SQL utilisé : bibliothèque GEOS introuvable")
        return None
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    variables = {"QPV_NOYAU_INDEX": str(index_file), "QPV_NOYAU_GEOS": str(geos)}
    # The extension reads the environment while it loads: one load at a time per process.
    with _LOAD_LOCK:
        previous = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        try:
            con.execute(f"LOAD '{path}'")
        except Exception as err:  # noqa: BLE001 - DuckDB raises several error types
            logger.info("noyau QPV non chargé, chemin SQL utilisé : %s", err)
            con.close()
            return None
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    return con


def geos_library() -> Path | None:
    """The GEOS C library shapely uses (its wheel ships it in ``shapely.libs``)."""
    root = Path(shapely.__file__).parent
    for folder in (root.parent / "shapely.libs", root / ".libs", root):
        found = sorted(folder.glob("libgeos_c*.so*")) + sorted(folder.glob("libgeos_c*.dylib"))
        if found:
            return found[0]
    import ctypes.util

    name = ctypes.util.find_library("geos_c")
    return Path(name) if name else None


def _hash_table(keys: np.ndarray, values: np.ndarray) -> tuple[int, np.ndarray]:
    """Open-addressing table (linear probing), the layout of ``lookup`` in the C source.

    One uint64 per slot: ``(key + 1) << 32 | value`` (0: empty), so that a probe reads one
    cache line. At most one eighth full (512 KiB for the 7,380 level-7 cells of the national
    file): the home slot then settles about 9 lookups in 10, which the kernel does without a
    branch (half full, it took 15 % more of the kernel's time). Keys must be below 2**32 - 1
    (first grid level at most 7).
    """
    n = len(keys)
    if n and int(keys.max()) >= (1 << 32) - 1:
        raise ValueError("clés du premier niveau trop grandes pour le noyau (niveau > 7)")
    bits = max(4, int(np.ceil(np.log2(max(n, 1) * 8))))
    size = 1 << bits
    table = np.zeros(size, dtype=np.uint64)
    packed = ((keys.astype(np.uint64) + np.uint64(1)) << np.uint64(32)) | (
        values.astype(np.int32).view(np.uint32).astype(np.uint64)
    )
    with np.errstate(over="ignore"):
        slots = (keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)
    slots = slots.astype(np.int64)
    pending = np.arange(n)
    mask = size - 1
    # Insert in rounds: in each round, each free slot takes at most one pending key.
    while len(pending):
        s = slots[pending]
        free = table[s] == 0
        s_free, first = np.unique(s[free], return_index=True)
        winners = pending[free][first]
        table[s_free] = packed[winners]
        placed = np.zeros(n, dtype=bool)
        placed[winners] = True
        pending = pending[~placed[pending]]
        slots[pending] = (slots[pending] + 1) & mask
    return bits, table


def _decode(keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell coordinates of ``geo.points._cell_key`` keys of level ``k``."""
    width = 1 << (k + 9)
    return keys // width - (180 << k), keys % width - (90 << k)


def _records(grid: Any) -> tuple[np.ndarray, np.ndarray]:
    """Records of the last level's unresolved cells (layout: ``qpv_noyau.c``).

    Returns the records (float64 units) and the offset of each distinct ``cand_key``.
    """
    n_cand = len(grid.cand_key)
    cells, cand_cell = np.unique(grid.cand_key, return_inverse=True)
    edges_per_cand = np.bincount(grid.edge_row, minlength=n_cand).astype(np.int64)
    cand_units = 2 + 5 * edges_per_cand
    before = np.cumsum(cand_units) - cand_units  # units of the previous candidates
    cand_off = before + cand_cell + 1  # plus one header unit per cell so far
    first = np.searchsorted(grid.cand_key, cells)
    cell_off = cand_off[first] - 1 if n_cand else np.empty(0, np.int64)
    total = int(cand_units.sum() + len(cells))
    units = np.zeros(total, dtype=np.float64)
    halves = units.view(np.int32)
    halves[2 * cell_off] = np.diff(np.append(first, n_cand))
    halves[2 * cand_off] = grid.cand_code
    halves[2 * cand_off + 1] = grid.cand_part
    halves[2 * cand_off + 2] = grid.cand_full.astype(np.int32)
    halves[2 * cand_off + 3] = edges_per_cand
    edge_start = np.cumsum(edges_per_cand) - edges_per_cand
    rank = np.arange(len(grid.edge_row)) - edge_start[grid.edge_row]
    base = cand_off[grid.edge_row] + 2 + 5 * rank
    x1, y1, y2, k, tx = grid.edge_columns()
    # k is only used for edges spanning the point's latitude; a horizontal edge (k = 0) keeps
    # dx there instead, from which the kernel gets its other end.
    horizontal = y1 == y2
    k = np.where(horizontal, grid.edge_x2 - grid.edge_x1, k)
    for j, column in enumerate((x1, y1, y2, k, tx)):
        units[base + j] = column
    return units, cell_off


def write_index_file(
    grid: Any, prefix: Path, boxes: list[tuple[float, float, float, float]]
) -> Path:
    """Write ``grid`` (``geo.points._Grid`` with its per-level tables) for the kernel.

    The file is ``<prefix>.<hash of its content>.noyau``: the extension keeps each index file it
    has loaded for the life of the process, so that a name must never be reused for other
    content (and the same contours give the same file, loaded once). ``boxes`` are the WGS84
    envelopes used by the coordinate check, the metropole first. Returns the path.
    """
    from geo.points import _cell_key

    sections: list[np.ndarray] = []
    header = np.zeros(_HEADER_COUNT, dtype=np.int64)
    offset = len(MAGIC) + _HEADER_COUNT * 8

    def add(array: np.ndarray) -> int:
        nonlocal offset
        start = offset
        data = np.ascontiguousarray(array)
        sections.append(data)
        offset += data.nbytes
        pad = (-offset) % 8
        if pad:
            sections.append(np.zeros(pad, dtype=np.uint8))
            offset += pad
        return start

    records, cell_off = _records(grid)
    distinct = np.unique(grid.cand_key)
    levels = grid.level_tables
    header[0] = len(levels)
    parents: np.ndarray | None = None  # subdivided cells of the previous level (sorted keys)
    previous_k = 0
    for i, (k, keys, values) in enumerate(levels):
        values = values.astype(np.int64)
        encoded = values.copy()
        last = i == len(levels) - 1
        if last:
            unresolved = values <= -2
            encoded[unresolved] = -1 - cell_off[np.searchsorted(distinct, keys[unresolved])]
        else:
            subdivided = values == -1
            encoded[subdivided] = -1 - np.arange(int(subdivided.sum()))
        if i == 0:
            bits, table = _hash_table(keys, encoded)
            header[_LEVELS_AT + 2] = add(table)
        else:
            r = 1 << (k - previous_k)
            ix, iy = _decode(keys, k)
            parent_keys = _cell_key(ix >> (k - previous_k), iy >> (k - previous_k), previous_k)
            block = np.searchsorted(parents, parent_keys)
            blocks = np.full(len(parents) * r * r, _OUTSIDE, dtype=np.int32)
            blocks[block * r * r + (ix & (r - 1)) * r + (iy & (r - 1))] = encoded
            bits = 0
            header[_LEVELS_AT + 4 * i + 3] = add(blocks)
        header[_LEVELS_AT + 4 * i] = k
        header[_LEVELS_AT + 4 * i + 1] = bits
        if not last:
            parents = keys[values == -1]
        previous_k = k
    header[1] = len(boxes)
    header[2] = len(distinct)
    header[3] = len(grid.cand_key)
    header[4] = len(grid.edge_x1)
    header[5] = np.array([grid.tolerance], dtype=np.float64).view(np.int64)[0]
    header[6] = add(np.asarray(boxes, dtype=np.float64).reshape(-1))
    header[7] = add(records)
    names = b"".join(code.encode("ascii") + b"\0" for code in grid.codes)
    header[9] = len(grid.codes)
    header[10] = add(np.frombuffer(names, dtype=np.uint8))
    # Original polygon parts (WKB), for the exact re-test of points near an edge.
    wkbs = [bytes(w) for w in shapely.to_wkb(grid.parts)] if len(grid.parts) else []
    sizes = np.array([len(w) for w in wkbs], dtype=np.int64)
    header[11] = len(wkbs)
    header[12] = add(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
    header[13] = add(np.frombuffer(b"".join(wkbs) or b"\0", dtype=np.uint8))
    header[8] = offset
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    staged = prefix.with_name(f"{prefix.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    with open(staged, "wb") as out:
        for chunk in (MAGIC, header.tobytes(), *(data.tobytes() for data in sections)):
            digest.update(chunk)
            out.write(chunk)
    path = prefix.with_name(f"{prefix.name}.{digest.hexdigest()[:16]}.noyau")
    if path.exists():
        staged.unlink()
    else:
        os.replace(staged, path)
    return path
