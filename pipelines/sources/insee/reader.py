"""Reader of the INSEE QPV indicator bases (and any wide table keyed by QPV codes).

One call reads one file (CSV of any usual dialect, or XLSX) into a long table: one row per
territory x variable, with the published value, a secret flag and the file/line it came from.
Nothing is dropped silently: cells and rows that cannot be read go to ``rejects`` with their
reason, and ``report`` counts rows read = loaded + rejected.

The base of a value (``source``) is the one the file name or a parameter gives, else the one
base publishing the variable's name (:mod:`.dictionary`, which reports ambiguous names and
files reaching no indicator). The millésime: a column, else a parameter, else the file name.

Memory (:func:`read_insee_file`): a CSV is read from disk again at each pass and its values,
rejects and row keys are spilled to disk by batches (:mod:`pipelines.lib.spill`), so that the
peak memory stays within :data:`MEMORY_FACTOR` x the file size above a constant
(docs/donnees-brutes.md); the result is the one a reading in memory gives, row for row.

Why this module is long: the reading of a base is one sequence of passes over the same rows
(header and sample, column kinds, row keys and duplicates, values) sharing the same decisions
(code column, decimal mark, millésime column, kinds); split across modules, a pass could drift
from the others and values would land under another variable or territory.
"""

from __future__ import annotations

import pickle
import re
import tempfile
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.lib.cells import (
    SECRET_MARKERS,
    cell_str,
    decimal_mark,
    normalise_header,
    number_or_none,
)
from pipelines.lib.codes import COMMUNE, EPCI, FRANCE_CODES, QPV_LIKE, geographie_of
from pipelines.lib.files import TABLE_SUFFIXES, list_files, years_in_name
from pipelines.lib.raw_schemas import ANOMALY_COLUMNS, RAW_TABLES, REJECT_COLUMNS, Reject
from pipelines.lib.spill import SpilledTable, SpillWriter
from pipelines.lib.tables import IngestionError, Scorer, check_unique_header, read_tables
from pipelines.sources.insee.dictionary import (
    VariableDictionary,
    default_dictionary,
    dictionary_anomalies,
    resolve_bases,
)
from pipelines.sources.insee.parameters import MILLESIME_COLUMNS, year_of

# Where a value comes from and what it is about: the key of every long indicator table (INSEE
# bases here, local providers in pipelines/sources/indicateurs, and their raw tables).
KEY_COLUMNS = [
    "source",
    "millesime",
    "fichier",
    "feuille",
    "ligne",
    "type_territoire",
    "code_territoire",
    "libelle_territoire",
    "geographie",
    "variable",
    "variable_fichier",
]
LONG_COLUMNS = [*KEY_COLUMNS, "valeur", "valeur_texte", "secret", "marqueur_secret"]

# Columns that hold labels, not indicators (compared after normalise_header).
LABEL_COLUMNS = {"LIBGEO", "LIB_QP", "LIBQP", "NOM_QP", "LIBELLE", "LIBELLE_QP", "NOM", "QUARTIER"}
TEXT_COLUMNS = {"LIB_COM", "LIBCOM", "COMMUNE", "COMMUNE_QP", "LIB_EPCI", "LIB_DEP", "LIB_REG"}
_GENERIC_TOKENS = {"BASE", "QPV", "QP", "INSEE", "DONNEES", "GEO", "COG", "FICHIER", "DATA", "CSV"}
_AGGREGATE = re.compile(r"ensemble|total|tous les quartiers|france des qp", re.IGNORECASE)


class InseeFile:
    """What one file gave: long values, rejects and counts.

    The values and rejects are on disk (:class:`~pipelines.lib.spill.SpilledTable`,
    ``values_table`` / ``rejects_table``), read into pandas only when :attr:`values` or
    :attr:`rejects` is asked for; ``combos`` holds their distinct (source, variable,
    millésime)."""

    def __init__(
        self,
        path: Path,
        source: str,
        millesime: int | None,  # None when a column gives several millésimes (see millesimes)
        values_table: SpilledTable,
        rejects_table: SpilledTable,
        report: dict,
        anomalies: pd.DataFrame,
        millesimes: list[int],
        combos: pd.DataFrame,
    ) -> None:
        self.path = path
        self.source = source
        self.millesime = millesime
        self.values_table = values_table
        self.rejects_table = rejects_table
        self.report = report
        self.anomalies = anomalies
        self.millesimes = millesimes
        self.combos = combos

    @property
    def values(self) -> pd.DataFrame:
        return self.values_table.to_pandas()

    @property
    def rejects(self) -> pd.DataFrame:
        return self.rejects_table.to_pandas()


def source_of(path: Path) -> str:
    """The base a file belongs to, from its name: ``IPRO_2022.csv`` -> ``IPRO``."""
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", path.stem.upper()) if t]
    for token in tokens:
        if token.isalpha() and len(token) >= 3 and token not in _GENERIC_TOKENS:
            return token
    named = [t for t in tokens if not t.isdigit()]
    return "_".join(named) or path.stem.upper()


def _territory(code: str, row: list[str]) -> tuple[str | None, str | None]:
    """(type_territoire, code_territoire) of a row's key, or (None, None) if unknown."""
    code_u = code.strip().upper()
    if QPV_LIKE.match(code_u) and geographie_of(code_u):
        return "qpv", code_u
    if any(_AGGREGATE.search(cell or "") for cell in row[:4]) and (
        code_u == "" or not re.match(r"^\d", code_u)
    ):
        return "ensemble_qpv", "ENSEMBLE_QPV"
    if COMMUNE.match(code_u):
        return "commune", code_u
    if EPCI.match(code_u):
        return "epci", code_u
    if code_u in FRANCE_CODES:
        return "france", code_u
    return None, None


def _extent(cells: list[str], start: int) -> int:
    """The columns a row fills: ``start`` when its cells from ``start`` on are all blank, else
    1 + the index of its last non-blank cell (one join tells, not a test per cell: a national
    base has hundreds of empty columns ``;;;`` after its named ones)."""
    if len(cells) <= start or not "".join(cells[start:]).strip():
        return start
    filled, blank = start, len(cells)  # cells[filled:] holds a value, cells[blank:] none
    while blank - filled > 1:
        middle = (filled + blank) // 2
        if "".join(cells[middle:]).strip():
            filled = middle
        else:
            blank = middle
    return blank


def _columns(rows: list[list[str]], width: int) -> list[tuple[str, ...]]:
    """The first ``width`` columns of some rows (shorter rows padded with blank cells)."""
    padded = [
        r if len(r) == width else (r[:width] if len(r) > width else r + [""] * (width - len(r)))
        for r in rows
    ]
    return list(zip(*padded, strict=True)) if padded else [() for _ in range(width)]


def _find_code_column(rows: list[list[str]], width: int) -> int:
    """Index of the column (of the first ``width``) whose values, in ``rows``, are QPV codes
    (whatever its name)."""
    filled = 0  # the columns beyond hold no value: no code
    for cells in rows:
        filled = _extent(cells, filled)
    best, best_hits = -1, 0
    for j, values in enumerate(_columns(rows, min(filled, width))):
        if "Q" not in "".join(values[:500]).upper():  # no cell can start with a Q
            continue
        sample = [v.strip().upper() for v in values[:500]]
        if not any(v.startswith("Q") for v in sample):
            continue
        hits = sum(1 for v in sample if QPV_LIKE.match(v))
        if hits > best_hits:
            best, best_hits = j, hits
    if best < 0:
        raise IngestionError("aucune colonne ne contient de codes QPV (QPxxxxxx / QNxxxxxx)")
    return best


def _label_column(names: list[str], code_col: int) -> int | None:
    for j, name in enumerate(names):
        if name in LABEL_COLUMNS:
            return j
    nxt = code_col + 1
    return nxt if nxt < len(names) and names[nxt].startswith("LIB") else None


HEADER_SCAN = 50  # rows where the header may be
CODE_LOOKAHEAD = 50  # rows below a header where the first QPV code must be


def _header_scorer() -> Scorer:
    """The header of an INSEE base: a row without QPV code, with QPV codes in the rows below,
    scored by its number of named cells (neither numbers nor secret markers), so that a title
    or an aggregate row above the first QPV is not taken for it."""
    has_code: dict[int, bool] = {}
    seen: list[object] = [None]

    def coded(rows: Sequence[Sequence[Any]], i: int) -> bool:
        if seen[0] is not rows:
            has_code.clear()
            seen[0] = rows
        if i not in has_code:
            has_code[i] = any(QPV_LIKE.match(cell_str(c).upper()) for c in rows[i])
        return has_code[i]

    def score(rows: Sequence[Sequence[Any]], k: int) -> float | None:
        if coded(rows, k):
            return None
        end = min(len(rows), k + 1 + CODE_LOOKAHEAD)
        if not any(coded(rows, i) for i in range(k + 1, end)):
            return None
        texts = [cell_str(c) for c in rows[k]]
        return sum(
            1 for t in texts if t and t.lower() not in SECRET_MARKERS and number_or_none(t) is None
        )

    return score


def _texts(cells: list[Any], kind: str) -> list[str]:
    """Cells as text: CSV cells already are; XLSX values as written (:func:`cell_str`)."""
    return cells if kind == "csv" else [cell_str(c, strip=False) for c in cells]


#: Peak memory of reading a CSV base, as a multiple of its size, above a constant (see
#: docs/donnees-brutes.md « Mémoire »): the rows are read from disk at each pass, the values
#: and rejects are written to disk by batches (:mod:`pipelines.lib.spill`).
MEMORY_FACTOR = 5
HEAD_ROWS = 500  # rows where the code column is found (the decimal mark: the first 200)
KIND_SAMPLE = 2000  # non-empty values of a column that decide whether it holds numbers
#: Cells (rows x columns read) held at once: the rows are read by chunks of about this many
#: cells, then each chunk is looked at and turned into values column by column (numpy/pandas
#: rather than one Python step per cell), its values appended to the spill as one frame.
CHUNK_CELLS = 100_000

VALUE_TYPES = RAW_TABLES["insee_valeurs"]  # the raw table's own columns and types
REJECT_TYPES = [(n, "BIGINT" if n == "ligne" else "VARCHAR") for n in REJECT_COLUMNS]
KEY_TYPES = [
    ("i", "BIGINT"),
    ("line", "BIGINT"),
    ("kind", "VARCHAR"),
    ("code", "VARCHAR"),
    ("year", "INTEGER"),
    ("digest", "BIGINT"),
    ("cell", "VARCHAR"),
]


@dataclass
class _Layout:
    """One table (CSV file or sheet) and what its rows tell before values are read."""

    table: Any  # Table or CsvStream
    sheet: str | None
    header: list[str]
    head: list[tuple[int, list[str]]]  # the first HEAD_ROWS non-blank rows (line, texts)
    width: int = 0
    filled: set[int] = field(default_factory=set)  # columns with at least one value
    seen: dict[int, int] = field(default_factory=dict)  # non-empty values looked at
    numeric: dict[int, int] = field(default_factory=dict)
    other: dict[int, int] = field(default_factory=dict)
    year_col: int | None = None
    extent: int = 0  # columns beyond are blank in every (well-shaped) row

    def rows(self):
        """(line, texts, misshapen reason) of every non-blank data row, from the table again."""
        table = self.table
        if table.format != "csv":
            for r in table.data:
                if not r.blank:
                    yield r.line, _texts(r.cells, table.format), table.field_count_error(r)
            return
        expected = len(table.header)
        for r in table.data:  # CSV cells are text: blank when their join is
            cells = r.cells
            if cells and (cells[0].strip() or "".join(cells).strip()):
                misshapen = table.field_count_error(r) if len(cells) != expected else None
                yield r.line, cells, misshapen


def _layout(table: Any) -> _Layout:
    header = _texts(table.header, table.format)
    check_unique_header(header, normalise_header, table.where())
    head = []
    for line, cells, _ in _Layout(table, table.sheet, header, []).rows():
        head.append((line, cells))
        if len(head) >= HEAD_ROWS:
            break
    return _Layout(table, table.sheet, header, head)


def _year_candidates(header: list[str]) -> list[int]:
    """Columns whose name is one of a millésime column (their values decide: :func:`_scan`)."""
    return [j for j, raw in enumerate(header) if normalise_header(raw) in MILLESIME_COLUMNS]


def _scan(layout: _Layout, parsed: _Parsed, on_row=None) -> None:
    """One pass over the rows: width, filled columns, number counts of each column's first
    KIND_SAMPLE non-empty values, and the millésime column (first 200 values all years); the
    rows by chunks of about :data:`CHUNK_CELLS` cells, each looked at column by column.
    ``on_row(i, line, cells, misshapen, extent)`` is called for every row on the way (the
    rows' keys, when no millésime column is to be found first)."""
    candidates: dict[int, list[str]] = {j: [] for j in _year_candidates(layout.header)}
    width = len(layout.header)
    extent = 0
    chunk: list[list[str]] = []
    cells_held = 0
    for i, (line, cells, misshapen) in enumerate(layout.rows()):
        if not misshapen:  # else rejected when read: its extra field is no column (COLONNE_<n>)
            width = max(width, len(cells))
            extent = _extent(cells, extent)
            chunk.append(cells[:extent])  # the cells beyond are blank
            cells_held += extent
            if cells_held >= CHUNK_CELLS:
                _scan_chunk(layout, chunk, extent, candidates, parsed)
                chunk, cells_held = [], 0
        if on_row is not None:
            on_row(i, line, cells, misshapen, extent)
    if chunk:
        _scan_chunk(layout, chunk, extent, candidates, parsed)
    layout.width = width
    layout.extent = extent
    layout.year_col = next(
        (
            j
            for j, values in candidates.items()
            if values and all(year_of(v) is not None for v in values)
        ),
        None,
    )


def _scan_chunk(
    layout: _Layout,
    rows: list[list[str]],
    extent: int,
    candidates: dict[int, list[str]],
    parsed: _Parsed,
) -> None:
    """:func:`_scan` on some rows, column by column (each column's values in row order)."""
    for j, column in enumerate(_columns(rows, extent)):
        values = [v for v in map(str.strip, column) if v]
        if not values:
            continue
        layout.filled.add(j)
        if j in candidates and len(candidates[j]) < 200:
            candidates[j].extend(values[: 200 - len(candidates[j])])
        seen = layout.seen.get(j, 0)
        if seen >= KIND_SAMPLE:
            continue
        sample = values[: KIND_SAMPLE - seen]
        layout.seen[j] = seen + len(sample)
        for value, n in Counter(sample).items():
            got = parsed[value]
            if got[1]:  # a secret marker
                continue
            if got[0] is not None:
                layout.numeric[j] = layout.numeric.get(j, 0) + n
            else:
                layout.other[j] = layout.other.get(j, 0) + n


class _Parsed(dict):
    """The cells of a file parsed as in a number column, by their stripped text: (value,
    secret, secret marker, rejected); each text parsed once for the scan and the values
    (cleared past :data:`CHUNK_CELLS` texts)."""

    def __init__(self, decimal: str) -> None:
        super().__init__()
        self.decimal = decimal

    def __missing__(self, cell: str) -> tuple[float | None, bool, str | None, bool]:
        if len(self) >= CHUNK_CELLS:
            self.clear()
        got = self[cell] = _number_cell(cell, self.decimal)
        return got


def _kinds(layout: _Layout, names: list[str], label_col: int | None) -> list[str]:
    """'number', 'text' or 'skip' (an unnamed column with no value: trailing ``;;;``)."""
    kinds = []
    for j, name in enumerate(names):
        if name.startswith("COLONNE_") and j not in layout.filled:
            kinds.append("skip")
        elif j == label_col or name in TEXT_COLUMNS:
            kinds.append("text")
        else:
            numeric, other = layout.numeric.get(j, 0), layout.other.get(j, 0)
            kinds.append("text" if other and numeric < other else "number")
    return kinds


def read_insee_file(
    path: Path,
    source: str | None = None,
    millesime: int | None = None,
    dictionary: VariableDictionary | None = None,
) -> InseeFile:
    """Read one INSEE-style file into long values. Raises IngestionError if unreadable.

    ``source`` (the base) and ``millesime`` are parameters that win over the file name; a
    millésime column wins over both (it gives each row's year).

    Memory: a CSV is read from disk at each pass (header and dialect, a sample for the code
    column, the decimal mark and each column's kind, the rows' keys, the values) and what it
    gives is written to disk by batches, so the reading stays within :data:`MEMORY_FACTOR` x
    the file size above a constant; a workbook's cells are held (at most
    :data:`~pipelines.lib.tables.MAX_XLSX_CELLS`)."""
    path = Path(path)
    millesime = millesime or millesime_from_name(path.name)
    source = (source or source_of(path)).strip().upper()
    dictionary = dictionary if dictionary is not None else default_dictionary()
    found = [
        t
        for t in read_tables(
            path,
            _header_scorer(),
            HEADER_SCAN,
            lookahead=CODE_LOOKAHEAD,
            memory_factor=MEMORY_FACTOR,
            stream=True,
        )
        if t.header_index is not None
    ]
    if not found:
        if path.suffix.lower() in {".xlsx", ".xlsm"}:
            raise IngestionError(f"{path}: aucune feuille ne contient de codes QPV")
        raise IngestionError(
            f"{path}: aucune colonne ne contient de codes QPV (QPxxxxxx / QNxxxxxx)"
        )
    layouts = [_layout(t) for t in found]
    # the decimal mark of the file, from its cells where it cannot be a thousands separator
    decimal = decimal_mark(
        c for lay in layouts for _, cells in lay.head[:200] for c in cells[: _extent(cells, 0)]
    )
    # one CSV without a millésime column to find: the rows' keys are read in the scan's pass
    together = (
        len(layouts) == 1
        and layouts[0].table.format == "csv"
        and not _year_candidates(layouts[0].header)
    )
    parsed = _Parsed(decimal)
    if not together:
        for lay in layouts:
            _scan(lay, parsed)
    if millesime is None and (together or any(lay.year_col is None for lay in layouts)):
        raise IngestionError(
            f"{path}: millésime introuvable : l'écrire dans le nom du fichier (année sur 4 "
            "chiffres, ex. IPRO_2022.csv), dans une colonne « millesime » ou « annee », ou dans "
            f"le fichier de paramètres {path.stem}.yml à côté (millesime: 2022)"
        )

    values = SpillWriter(VALUE_TYPES, order=["_t", "_j", "_i"])
    rejects = SpillWriter(REJECT_TYPES, order=["_t", "_phase", "_j", "_i"])

    def reject(t, phase, j, i, sheet, line, column, value, motif) -> None:
        row = Reject("insee", str(path), sheet, line, column, value, motif).as_dict()
        rejects.append((*row.values(), t, phase, j, i))

    counts = {"read": 0, "loaded": 0, "rejected": 0, "values": 0, "secret": 0}
    # variables published in several sheets of a workbook: their values must agree
    shared = _shared_variables([lay.header for lay in layouts])
    across: dict[tuple[str, str, int, str], tuple[int, str | None, str]] = {}
    number_vars: dict[str, str] = {}  # numeric variables: normalised name -> header as written
    pairs: set[tuple[str, int]] = set()  # (variable, millésime) of the values
    try:
        for t, lay in enumerate(layouts):
            table = _TableRead(path, t, lay, millesime, reject, counts)
            try:
                if together:  # the rows kept on disk as read: the values come from there
                    table.locate(len(lay.header))  # a CSV's well-shaped rows have its width
                    table.stash = _Stash()
                    _scan(lay, parsed, table.key)
                else:
                    table.locate(lay.width)
                    table.read_keys()
                kept = table.kept()
                table.close_keys()
                if kept:
                    table.read_values(source, parsed, values, shared, across, number_vars, pairs)
            finally:
                table.close()
        rejected_total = len(rejects)
        feuille = layouts[0].sheet if len(layouts) == 1 else None
        combos = _combos(pairs)
        combos.insert(0, "source", source)
        bases = resolve_bases(combos, source, number_vars, dictionary)
        values_table = values.finish(
            [name for name in LONG_COLUMNS],
            constants={"fichier": str(path), "feuille": feuille},
            mapped=("source", "variable", bases.recognised),
        )
        rejects_table = rejects.finish()
    except BaseException:
        values.close()
        rejects.close()
        raise
    anomalies = dictionary_anomalies(path, combos, source, number_vars, bases, dictionary)
    millesimes = sorted({int(y) for y in combos["millesime"].unique()})
    report = {
        "fichier": str(path),
        "source": source,
        "millesime": millesimes[0] if len(millesimes) == 1 else millesime,
        "millesimes": millesimes,
        "base_nommee": source in dictionary.bases,
        "variables_reconnues": bases.recognised,
        "variables_ambigues": bases.ambiguous,
        "variables_indicateur": bases.reaching,
        "lignes_lues": counts["read"],
        "lignes_chargees": counts["loaded"],
        "lignes_rejetees": counts["rejected"],
        "valeurs": len(values_table),
        "valeurs_secretes": counts["secret"],
        "cellules_rejetees": rejected_total - counts["rejected"],
    }
    return InseeFile(
        path,
        source,
        report["millesime"],
        values_table,
        rejects_table,
        report,
        pd.DataFrame(anomalies, columns=ANOMALY_COLUMNS),
        millesimes,
        combos,
    )


class _TableRead:
    """The reading of one table once its rows were scanned: the rows' keys (one row per
    territory and millésime), then their values, by chunks of rows, column by column."""

    def __init__(self, path, t, lay, millesime, reject, counts) -> None:
        self.path, self.t, self.lay, self.sheet = path, t, lay, lay.sheet
        self.millesime = millesime
        self.reject = reject
        self.counts = counts
        self.keys = SpillWriter(KEY_TYPES)
        self.duplicates = array("q")
        self.stash: _Stash | None = None  # the rows read with their keys, for the values

    def locate(self, width: int) -> None:
        """The code column (IngestionError when none) among the table's ``width`` columns."""
        lay = self.lay
        self.raw_names = lay.header + [""] * (width - len(lay.header))
        try:
            self.code_col = _find_code_column([cells for _, cells in lay.head], width)
        except IngestionError as err:
            where = f"{self.path}{f' [{self.sheet}]' if self.sheet else ''}"
            raise IngestionError(f"{where}: {err}") from None

    def status(self, row, misshapen, year_col):
        """(kind, code, year) of a row, or the reject (column, value, reason) it gets."""
        if misshapen:
            return None, (None, ";".join(row)[-80:], misshapen)
        code_col = self.code_col
        cell = row[code_col] if code_col < len(row) else ""
        kind, code = _territory(cell, row)  # row[:4]: the cells beyond a row's end are blank
        if kind is None:
            reason = "code territoire non reconnu (ni QPV, commune, EPCI)"
            return None, (_name(self.raw_names, code_col), cell, reason)
        year = self.millesime
        if year_col is not None:
            text = row[year_col] if year_col < len(row) else ""
            year = year_of(text)
            if year is None:
                reason = "millésime illisible (année sur 4 chiffres attendue)"
                return None, (_name(self.raw_names, year_col), text, reason)
        return (kind, code, year, cell), None

    def key(self, i, line, row, misshapen, end) -> None:
        """One row's key, kept to find the rows repeating a territory; or its reject. ``end``:
        the row's cells beyond are blank."""
        self.counts["read"] += 1
        got, bad = self.status(row, misshapen, self.lay.year_col)
        if got is None:
            self.counts["rejected"] += 1
            self.reject(self.t, 0, 0, i, self.sheet, line, *bad)
            return
        kind, code, year, cell = got
        # the row's other cells, stripped, without the blank ones that end it
        cells = list(map(str.strip, row[:end]))
        if self.code_col < len(cells):
            del cells[self.code_col]
        while cells and not cells[-1]:
            cells.pop()
        self.keys.append((i, line, kind, code, year, hash(tuple(cells)), cell))
        if self.stash is not None:
            kept = row[:end]
            joined = _SEPARATOR.join(kept)  # one text to keep, unless a cell holds the separator
            if joined.count(_SEPARATOR) != len(kept) - 1:
                joined = kept
            self.stash.add((i, line, kind, code, year, joined), end)

    def read_keys(self) -> None:
        """1. the rows' keys: one row per territory (and millésime)."""
        end = self.lay.extent  # every row's cells beyond are blank
        for i, (line, row, misshapen) in enumerate(self.lay.rows()):
            self.key(i, line, row, misshapen, end)

    def kept(self) -> int:
        """A second row for the same code is refused, unless it repeats the first one exactly
        (then rejected as a duplicate): the rows kept."""
        self.duplicates = _duplicates(
            self.path,
            self.sheet,
            self.keys,
            self.reject,
            self.t,
            self.raw_names,
            self.code_col,
            self.counts,
        )
        kept = len(self.keys) - len(self.duplicates)
        self.counts["loaded"] += kept
        return kept

    def close_keys(self) -> None:
        self.keys.close()

    def close(self) -> None:
        self.keys.close()
        if self.stash is not None:
            self.stash.close()

    def _kept_rows(self, year_col):
        """(index, line, kind, code, year, cells) of the rows with a key, from the table."""
        for i, (line, row, misshapen) in enumerate(self.lay.rows()):
            got, _ = self.status(row, misshapen, year_col)
            if got is not None:
                kind, code, year, _ = got
                yield i, line, kind, code, year, row

    def read_values(self, source, parsed, values, shared, across, number_vars, pairs) -> None:
        """2. the values of the kept rows: by chunks of rows, column by column."""
        lay, code_col, raw_names = self.lay, self.code_col, self.raw_names
        names = _unique_names(raw_names)
        label_col = _label_column(names, code_col)
        kinds = _kinds(lay, names, label_col)
        year_col = lay.year_col
        # the cells read: beyond, no column is named and every cell of every row is blank
        span = max(
            [lay.extent, code_col + 1, *(j + 1 for j, kind in enumerate(kinds) if kind != "skip")]
        )
        if year_col is not None:
            kinds[year_col] = "skip"  # the row's millésime, not a variable
        columns = [
            (j, name, raw_names[j], kinds[j])
            for j, name in enumerate(names)
            if j != code_col and kinds[j] != "skip"
        ]
        conflicts: list[tuple[int, int, str]] = []
        chunk = _Chunk(self.path, source, self.t, self.sheet, parsed, columns, values, self.reject)
        chunk.counts, chunk.pairs = self.counts, pairs
        size = max(1, CHUNK_CELLS // max(1, len(columns)))
        next_duplicate = iter(self.duplicates)
        duplicate = next(next_duplicate, -1)
        rows = iter(self.stash) if self.stash is not None else self._kept_rows(year_col)
        for i, line, kind, code, year, row in rows:
            if i == duplicate:
                duplicate = next(next_duplicate, -1)
                continue
            if isinstance(row, str):
                row = row.split(_SEPARATOR)
            n = len(row)
            padded = row[:span] if n >= span else row + [""] * (span - n)
            label = (padded[label_col].strip() or None) if label_col is not None else None
            geo = geographie_of(code) if kind == "qpv" else None
            chunk.add(i, line, kind, code, year, label, geo, padded)
            if len(chunk.rows) >= size:
                chunk.write(shared, across, conflicts)
        chunk.write(shared, across, conflicts)
        if conflicts:
            raise IngestionError(min(conflicts)[2])
        for _j, name, raw_name, column_kind in columns:
            if column_kind == "number":
                number_vars.setdefault(name, raw_name)


_SEPARATOR = "\x1f"  # between the cells of a row kept on disk (:class:`_Stash`)


class _Stash:
    """Rows kept on disk for a second pass (pickled by chunks of about :data:`CHUNK_CELLS`
    cells), read back in order: the values are read from them rather than from the file again."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile(prefix="observatoire-lecture-")
        self.buffer: list[tuple] = []
        self.held = 0

    def add(self, item: tuple, cells: int) -> None:
        self.buffer.append(item)
        self.held += cells + 6
        if self.held >= CHUNK_CELLS:
            self._dump()

    def _dump(self) -> None:
        if self.buffer:
            pickle.dump(self.buffer, self.file, protocol=pickle.HIGHEST_PROTOCOL)
            self.buffer, self.held = [], 0

    def __iter__(self):
        self._dump()
        self.file.seek(0)
        while True:
            try:
                chunk = pickle.load(self.file)  # noqa: S301 - written just above by this process
            except EOFError:
                return
            yield from chunk

    def close(self) -> None:
        self.file.close()


def _combos(pairs: set[tuple[str, int]]) -> pd.DataFrame:
    """The distinct (variable, millésime) of a file's values, sorted."""
    if not pairs:
        empty = pd.Series([], dtype=object)
        return pd.DataFrame({"variable": empty, "millesime": empty.copy()})
    frame = pd.DataFrame(sorted(pairs), columns=["variable", "millesime"])
    frame["millesime"] = frame["millesime"].astype("int32")
    return frame


class _Chunk:
    """Kept rows of a table, turned into long values column by column when written: each
    column's distinct cells parsed once (numbers, secret markers), the rows' keys repeated
    with numpy, one frame appended to the spill for the whole chunk."""

    def __init__(self, path, source, t, sheet, parsed, columns, values, reject) -> None:
        self.path, self.source, self.t, self.sheet = path, source, t, sheet
        self.parsed = parsed
        self.columns = columns
        self.values = values
        self.reject = reject
        self.counts: dict[str, int] = {}
        self.pairs: set[tuple[str, int]] = set()  # (variable, millésime) written
        self._clear()

    def _clear(self) -> None:
        self.index: list[int] = []
        self.lines: list[int] = []
        self.keys: list[tuple] = []  # (kind, code, year, label, geo)
        self.rows: list[list[str]] = []

    def add(self, i, line, kind, code, year, label, geo, padded) -> None:
        self.index.append(i)
        self.lines.append(line)
        self.keys.append((kind, code, year, label, geo))
        self.rows.append(padded)

    def write(self, shared, across, conflicts) -> None:
        n, m = len(self.rows), len(self.columns)
        if not n or not m:
            self._clear()
            return
        # the cells of every column, one after the other (column c, row r at c * n + r)
        by_column = list(zip(*self.rows, strict=True))
        cells: list[str] = []
        for j, name, raw_name, _ in self.columns:
            column = list(map(str.strip, by_column[j]))
            if name in shared:
                self._shared(name, raw_name, j, column, across, conflicts)
            cells.extend(column)
        codes, uniques = pd.factorize(np.array(cells, dtype=object))
        number = np.repeat(np.array([c[3] == "number" for c in self.columns]), n)
        # each distinct cell parsed once: as a number where a number column has it, else text
        valeurs = np.full(len(uniques), np.nan)
        secrets = np.zeros(len(uniques), dtype=bool)
        markers = np.full(len(uniques), None, dtype=object)
        rejected = np.zeros(len(uniques), dtype=bool)
        texts = np.full(len(uniques), None, dtype=object)
        in_number = np.zeros(len(uniques), dtype=bool)
        in_number[codes[number]] = True
        texts_of = uniques.tolist()
        where = np.flatnonzero(in_number)
        if len(where):
            parsed = self.parsed
            got = [parsed[texts_of[u]] for u in where.tolist()]
            valeurs[where] = np.array([g[0] for g in got], dtype=float)  # None: NaN
            secrets[where] = [g[1] for g in got]
            markers[where] = [g[2] for g in got]
            rejected[where] = [g[3] for g in got]
        where = np.flatnonzero(~in_number)
        if len(where):
            texts[where] = [texts_of[u] or None for u in where.tolist()]
        valeur = np.where(number, valeurs[codes], np.nan)
        secret = number & secrets[codes]
        bad = number & rejected[codes]
        for k in np.flatnonzero(bad).tolist():
            c, r = divmod(k, n)
            j, _, raw_name, _ = self.columns[c]
            line, i = self.lines[r], self.index[r]
            self.reject(
                self.t, 1, j, i, self.sheet, line, raw_name, cells[k], "valeur non numérique"
            )
        keep = ~bad
        self.counts["secret"] += int((secret & keep).sum())
        years = np.array([key[2] for key in self.keys], dtype=np.int64)
        self._pairs(keep.reshape(m, n), years)
        keys = zip(*self.keys, strict=True)
        kinds, codes_t, _, labels, geos = (np.array(v, dtype=object) for v in keys)

        def per_row(array) -> np.ndarray:
            return np.tile(array, m)[keep]

        def per_column(items) -> np.ndarray:
            return np.repeat(np.array(items, dtype=object), n)[keep]

        count = int(keep.sum())
        self.values.append_columns(
            {
                "source": np.full(count, self.source, dtype=object),
                "millesime": per_row(years),
                "fichier": np.full(count, None, dtype=object),
                "feuille": np.full(count, None, dtype=object),
                "ligne": per_row(np.array(self.lines, dtype=np.int64)),
                "type_territoire": per_row(kinds),
                "code_territoire": per_row(codes_t),
                "libelle_territoire": per_row(labels),
                "geographie": per_row(geos),
                "variable": per_column([c[1] for c in self.columns]),
                "variable_fichier": per_column([c[2] for c in self.columns]),
                "valeur": valeur[keep],
                "valeur_texte": np.where(number, None, texts[codes])[keep],
                "secret": secret[keep],
                "marqueur_secret": np.where(number, markers[codes], None)[keep],
                "_t": np.full(count, self.t, dtype=np.int64),
                "_j": np.repeat(np.array([c[0] for c in self.columns], dtype=np.int64), n)[keep],
                "_i": per_row(np.array(self.index, dtype=np.int64)),
            }
        )
        self._clear()

    def _pairs(self, keep, years) -> None:
        """The (variable, millésime) of the values written (``keep``: column x row)."""
        same = bool((years == years[0]).all())
        for c, (_, name, _, _) in enumerate(self.columns):
            if same:
                if keep[c].any():
                    self.pairs.add((name, int(years[0])))
            else:
                self.pairs.update((name, y) for y in np.unique(years[keep[c]]).tolist())

    def _shared(self, name, raw_name, j, cells, across, conflicts) -> None:
        """A variable published in several sheets: its value must be the same in each."""
        for k, cell in enumerate(cells):
            kind, code, year = self.keys[k][:3]
            line = self.lines[k]
            other = across.setdefault((kind, code, year, name), (line, self.sheet, cell))
            if other[2] != cell:
                conflicts.append(
                    (
                        j,
                        self.index[k],
                        f"{self.path}: {code}, {raw_name} : deux valeurs différentes, "
                        f"« {other[2]} » (feuille {other[1]}, ligne {other[0]}) et "
                        f"« {cell} » (feuille {self.sheet}, ligne {line})",
                    )
                )


def _number_cell(cell: str, decimal: str) -> tuple[float | None, bool, str | None, bool]:
    """(value, secret, secret marker, rejected) of a stripped cell of a number column."""
    lowered = cell.lower()
    if lowered in SECRET_MARKERS:
        return None, True, lowered or "vide", False
    valeur = number_or_none(cell, decimal)
    return valeur, False, None, valeur is None


def _duplicates(path, sheet, keys, reject, t, raw_names, code_col, counts) -> array:
    """Rows (their indexes, ascending) repeating an earlier row of the same territory and
    millésime: each rejected as a duplicate when it repeats it exactly; IngestionError (both
    lines) at the first one that differs."""
    found = array("q")
    for i, line, code, cell, first_line, same in _repeats(keys):
        if not same:
            where = f" [{sheet}]" if sheet else ""
            raise IngestionError(
                f"{path}: {code} a deux lignes aux valeurs différentes : ligne "
                f"{first_line}{where} et ligne {line}{where} : garder une seule ligne par "
                "territoire"
            )
        counts["rejected"] += 1
        reject(
            t,
            0,
            0,
            i,
            sheet,
            line,
            _name(raw_names, code_col),
            cell,
            f"doublon : même ligne que la ligne {first_line} (ignorée)",
        )
        found.append(i)
    return found


def _repeats(keys: SpillWriter):
    """(index, line, code, cell, line of the first row of its key, same digest) of each row
    whose key (kind, code, year) an earlier row has, by index: in Python for a small file, by
    the spill database otherwise."""
    if not keys.spilled:
        first: dict[tuple, tuple[int, int]] = {}
        rows = keys.pending
        for i, line, kind, code, year, digest, cell in rows:
            seen = first.setdefault((kind, code, year), (i, line, digest))
            if seen[0] != i:
                yield i, line, code, cell, seen[1], seen[2] == digest
        return
    cursor = keys.cursor(
        """
        SELECT i, line, code, cell, first_line, digest = first_digest
        FROM (
            SELECT *, first_value(i) OVER w AS first_i, first_value(line) OVER w AS first_line,
                first_value(digest) OVER w AS first_digest
            FROM rows WINDOW w AS (PARTITION BY kind, code, year ORDER BY i)
        )
        WHERE i <> first_i ORDER BY i
        """
    )
    while batch := cursor.fetchmany(10_000):
        yield from batch


def _name(names: list[str], j: int) -> str:
    return names[j] if j < len(names) else f"colonne {j + 1}"


def _shared_variables(headers: list[list[str]]) -> set[str]:
    """Normalised names of the value columns found in more than one sheet."""
    counts: dict[str, int] = {}
    for header in headers:
        for name in {normalise_header(h) for h in header if h.strip()}:
            counts[name] = counts.get(name, 0) + 1
    return {n for n, c in counts.items() if c > 1 and n not in LABEL_COLUMNS | TEXT_COLUMNS}


def _unique_names(raw_names: list[str]) -> list[str]:
    """Normalised variable names; unnamed columns become COLONNE_<n>."""
    seen: dict[str, int] = {}
    out = []
    for j, raw in enumerate(raw_names):
        name = normalise_header(raw) or f"COLONNE_{j + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        out.append(name)
    return out


def list_insee_files(insee_dir: Path) -> list[Path]:
    """Files of ``raw/insee/`` that are INSEE-style bases, sorted by name."""
    return list_files(insee_dir, TABLE_SUFFIXES)


def millesime_from_name(name: str) -> int | None:
    """The millésime of a base from its file name: the last 4-digit year
    (``IPRO_2022.csv`` -> 2022, ``base-ipro-qpv-2023-geo2024.xlsx`` -> 2024)."""
    years = years_in_name(name)
    return years[-1] if years else None
