"""Column-wise reading of the data lines of a programmation or bilan table.

The row-wise loop (one Python call per cell: 6 M cell-text calls for 500,000 lines) is replaced by
work on whole columns: each column is factorised and its parser called once per distinct value,
then the results are spread back to the lines. The parsers are the same functions as before
(:mod:`.cells`), called in the same order of fields, so a line is rejected for the same first
unreadable cell, with the same message, as when it was read cell by cell.

:class:`TableColumns` holds the candidate lines of one table (blank lines and exact duplicates
removed) and the first error of each line; :func:`run_tables_columns` reads every file and calls a
source's ``build(view)`` on each table.

Why this module is long: the column-wise reading is one mechanism (the distinct values of a
column, the first error of each line, the flags, the loop over the files) whose parts share
the line positions of one table; split, each part would need the others' internals. Its fast
paths (a short text column factorised in Python, a table without blank or repeated lines kept
without copy) are here too, next to the general code they must match.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.lib.amounts import amount_problem, parse_amounts
from pipelines.lib.cells import cell_text
from pipelines.sources.programmations.cells import territory_from_path, year_from_path
from pipelines.sources.programmations.reader import (
    RawTable,
    file_label,
    load_aliases,
    read_tables,
)

_SEPARATOR = "\x1f"  # never in a cell text (cell_text folds it away as white space)
#: Columns up to this length are factorised in Python (see :meth:`Distinct._small`).
_SMALL = 20_000


class Distinct:
    """The distinct values of an array and, for each value, the index of its distinct value.

    Values of different types that compare equal (``1``, ``1.0``, ``True``) are kept apart, and
    missing values (None, NaN) are kept one by one, as they are: a parser sees every distinct
    cell exactly as written.
    """

    def __init__(self, values: pd.Series | np.ndarray | list[Any]) -> None:
        array = np.asarray(values, dtype=object)
        if len(array) == 0:
            self.index = np.zeros(0, dtype=np.intp)
            self.values = np.zeros(0, dtype=object)
            return
        if len(array) <= _SMALL and self._small(array):
            return
        plain = pd.api.types.infer_dtype(array, skipna=True) in {"string", "empty"}
        keys = array
        if not plain:  # tag each value with its type: 1, 1.0 and True must not be merged
            keys = np.empty(len(array), dtype=object)
            keys[:] = [(type(v), v) for v in array]
        codes, uniques = pd.factorize(keys, use_na_sentinel=True)
        missing = np.flatnonzero(codes < 0)
        self.values = np.empty(len(uniques) + len(missing), dtype=object)
        self.values[: len(uniques)] = uniques if plain else [key[1] for key in uniques]
        self.values[len(uniques) :] = array[missing]
        codes = codes.astype(np.intp, copy=True)
        codes[missing] = len(uniques) + np.arange(len(missing))
        self.index = codes

    def _small(self, array: np.ndarray) -> bool:
        """The same as pandas' factorize for a short array of texts and Nones (its fixed cost
        is most of the time of a file's column): values in order of first appearance, then each
        None on its own. False (nothing set) when a value is neither a text nor None."""
        lookup: dict[str, int] = {}
        uniques: list[str] = []
        missing: list[int] = []
        codes: list[int] = []
        for i, value in enumerate(array.tolist()):
            if value is None:
                missing.append(i)
                codes.append(-1)
                continue
            if type(value) is not str:
                return False
            code = lookup.get(value)
            if code is None:
                code = lookup[value] = len(uniques)
                uniques.append(value)
            codes.append(code)
        self.values = np.empty(len(uniques) + len(missing), dtype=object)
        self.values[: len(uniques)] = uniques
        index = np.array(codes, dtype=np.intp)
        index[missing] = len(uniques) + np.arange(len(missing))
        self.index = index
        return True

    def map(self, fn: Callable[[Any], Any]) -> np.ndarray:
        """``fn`` of every value, called once per distinct value."""
        return self.spread(_apply(fn, self.values))

    def map_pair(self, fn: Callable[[Any], tuple[Any, ...]], width: int = 2) -> list[np.ndarray]:
        """The ``width`` parts of a function returning a tuple, each spread to every value."""
        results = [fn(v) for v in self.values]
        parts = []
        for k in range(width):
            part = np.empty(len(results), dtype=object)
            part[:] = [r[k] for r in results]
            parts.append(self.spread(part))
        return parts

    def subset(self, mask: np.ndarray) -> Distinct:
        """The same distinct values for the values of ``mask`` only."""
        part = Distinct([])
        part.values, part.index = self.values, self.index[mask]
        return part

    def spread(self, results: np.ndarray) -> np.ndarray:
        """Results computed on the distinct values, given back to every value."""
        return results[self.index]


def _apply(fn: Callable[[Any], Any], values: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = [fn(v) for v in values]
    return out


def map_values(values: pd.Series | np.ndarray | list[Any], fn: Callable[[Any], Any]) -> np.ndarray:
    """``fn`` applied to every value, called once per distinct value (see :class:`Distinct`)."""
    return Distinct(values).map(fn)


def _guarded(parser: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, str | None]]:
    def call(value: Any) -> tuple[Any, str | None]:
        try:
            return parser(value), None
        except ValueError as err:
            return None, str(err)

    return call


class TableColumns:
    """The candidate data lines of one table, column by column, with the first error of each.

    ``cells`` is an object frame (one column per header position, padded); ``lines`` the physical
    line of each candidate. Parsing a column records, for each line not yet in error, the column,
    raw value and reason of its failure: the first failure of a line is the one reported.
    """

    def __init__(
        self,
        tables: list[RawTable],
        cells: pd.DataFrame,
        lines: np.ndarray,
        table_of: np.ndarray | None = None,
    ) -> None:
        #: the tables whose lines these are (one header: the first table's), in file order
        self.tables = tables
        self.table = tables[0]
        self.cells = cells
        self.lines = lines
        #: index in ``tables`` of each line's table
        self.table_of = np.zeros(len(lines), dtype=np.intp) if table_of is None else table_of
        n = len(lines)
        self.error = np.zeros(n, dtype=bool)
        self.error_column = np.full(n, None, dtype=object)
        self.error_value = np.full(n, None, dtype=object)
        self.error_reason = np.full(n, None, dtype=object)
        self._texts: dict[int, np.ndarray] = {}
        self._distinct: dict[int, Distinct] = {}
        #: cells kept but reported: (lines, anomaly type, column, raw values, reasons)
        self.flags: list[tuple[np.ndarray, str, str, np.ndarray, np.ndarray | str]] = []

    def __len__(self) -> int:
        return len(self.lines)

    def per_line(self, of_table: Callable[[RawTable], Any]) -> np.ndarray:
        """``of_table`` of each line's table (called once per table)."""
        values = np.empty(len(self.tables), dtype=object)
        values[:] = [of_table(table) for table in self.tables]
        return values[self.table_of]

    def file_names(self) -> np.ndarray:
        """The file name of each line."""
        return self.per_line(lambda table: table.path.name)

    def sheets(self) -> np.ndarray:
        """The sheet of each line (None for a CSV)."""
        return self.per_line(lambda table: table.feuille)

    def column_name(self, idx: int) -> str:
        header = self.table.header
        name = cell_text(header[idx]) if idx < len(header) else None
        return name or f"colonne {idx + 1}"

    def index_of(self, champ: str) -> int | None:
        return self.table.cmap.fields.get(champ)

    def has(self, champ: str) -> bool:
        return champ in self.table.cmap.fields

    def raw_at(self, idx: int) -> np.ndarray:
        return self.cells[idx].to_numpy(dtype=object)

    def raw(self, champ: str) -> np.ndarray:
        idx = self.index_of(champ)
        if idx is None:
            return np.full(len(self), None, dtype=object)
        return self.raw_at(idx)

    def distinct_at(self, idx: int) -> Distinct:
        if idx not in self._distinct:
            self._distinct[idx] = Distinct(self.raw_at(idx))
        return self._distinct[idx]

    def text_at(self, idx: int) -> np.ndarray:
        if idx not in self._texts:
            self._texts[idx] = self.distinct_at(idx).map(cell_text)
        return self._texts[idx]

    def text(self, champ: str) -> np.ndarray:
        idx = self.index_of(champ)
        if idx is None:
            return np.full(len(self), None, dtype=object)
        return self.text_at(idx)

    def map(self, champ: str, fn: Callable[[Any], Any]) -> np.ndarray:
        """``fn`` of the raw cells of a field (None where the field has no column)."""
        idx = self.index_of(champ)
        if idx is None:
            return np.full(len(self), fn(None), dtype=object)
        return self.distinct_at(idx).map(fn)

    def map_pair(self, champ: str, fn: Callable[[Any], tuple[Any, ...]], width: int = 2):
        idx = self.index_of(champ)
        if idx is None:
            empty = fn(None)
            return [np.full(len(self), empty[k], dtype=object) for k in range(width)]
        return self.distinct_at(idx).map_pair(fn, width)

    def parse_at(self, idx: int, parser: Callable[[Any], Any]) -> np.ndarray:
        """The parsed values of column ``idx``; a failing cell is the line's error (if first)."""
        distinct = self.distinct_at(idx)
        values, reasons = distinct.map_pair(_guarded(parser))
        return self._record(idx, values, reasons)

    def _record(self, idx: int, values: np.ndarray, reasons: np.ndarray) -> np.ndarray:
        failed = pd.notna(reasons)
        if failed.any():
            self.fail(failed, self.column_name(idx), self.raw_at(idx), reasons)
            values = values.copy()
            values[failed] = None
        return values

    def amounts_at(self, idx: int) -> np.ndarray:
        """The amounts of column ``idx`` (:func:`pipelines.lib.amounts.parse_amounts`); an
        unreadable or absurd one (:func:`pipelines.lib.amounts.amount_problem`) is the line's
        error (if first); a negative one is kept and flagged ``montant_negatif``."""
        distinct = self.distinct_at(idx)
        amounts, reasons = parse_amounts(distinct.values)
        for k, amount in enumerate(amounts):
            if reasons[k] is None and (problem := amount_problem(amount)):
                amounts[k], reasons[k] = None, problem
        negative = np.array([a is not None and a < 0 for a in amounts], dtype=bool)
        values = self._record(idx, distinct.spread(amounts), distinct.spread(reasons))
        if negative.any():
            self.flag(
                distinct.spread(negative),
                "montant_negatif",
                idx,
                "montant négatif (remboursement ou annulation ?): ligne gardée, montant compté "
                "tel quel; à vérifier dans le fichier source",
            )
        return values

    def optional(self, champ: str, parser: Callable[[Any], Any], kind: str) -> np.ndarray:
        """An optional field: a cell that does not parse is emptied and flagged (``kind``, with
        the parser's reason), and the line is kept."""
        idx = self.index_of(champ)
        if idx is None:
            return np.full(len(self), None, dtype=object)
        values, reasons = self.distinct_at(idx).map_pair(_guarded(parser))
        failed = pd.notna(reasons)
        if failed.any():
            self.flag(failed, kind, idx, reasons, suffix=": cellule ignorée, ligne gardée")
        return values

    def flag(
        self,
        mask: np.ndarray,
        kind: str,
        idx: int,
        reasons: np.ndarray | str,
        suffix: str = "",
    ) -> None:
        """Report the cells of ``mask`` in column ``idx`` as ``kind`` anomalies."""
        if isinstance(reasons, str):
            text: np.ndarray | str = reasons + suffix
        else:
            text = np.array([None if r is None else f"{r}{suffix}" for r in reasons], dtype=object)
        self.flags.append((mask, kind, self.column_name(idx), self.raw_at(idx), text))

    def flagged(self) -> list[dict[str, Any]]:
        """The flags as ``raw.anomalies`` rows, for the lines not rejected, in line order."""
        found: list[tuple[int, int, dict[str, Any]]] = []
        for order, (mask, kind, column, raws, reasons) in enumerate(self.flags):
            for pos in np.flatnonzero(mask & ~self.error):
                line = int(self.lines[pos])
                reason = reasons if isinstance(reasons, str) else reasons[pos]
                shown = cell_text(raws[pos])
                table = self.tables[self.table_of[pos]]
                where = reject_record("", table, line, column, raws[pos], reason)["motif"]
                found.append(
                    (
                        pos,
                        order,
                        {
                            "type": kind,
                            "fichier": table.path.name,
                            "ligne": line,
                            "dossier": self._dossier(pos),
                            "colonne": column,
                            "valeur_brute": shown,
                            "message": where,
                        },
                    )
                )
        found.sort(key=lambda item: (item[0], item[1]))
        return [item[2] for item in found]

    def _dossier(self, pos: int) -> str | None:
        idx = self.index_of("dossier")
        return None if idx is None else self.text_at(idx)[pos]

    def amounts(self, champ: str) -> np.ndarray:
        idx = self.index_of(champ)
        if idx is None:
            return np.full(len(self), None, dtype=object)
        return self.amounts_at(idx)

    def parse(self, champ: str, parser: Callable[[Any], Any]) -> np.ndarray:
        idx = self.index_of(champ)
        if idx is None:
            return np.full(len(self), None, dtype=object)
        return self.parse_at(idx, parser)

    def fail(
        self,
        mask: np.ndarray,
        column: str | None,
        values: np.ndarray | None,
        reasons: np.ndarray | str,
    ) -> None:
        """Record an error on the lines of ``mask`` that have none yet."""
        new = mask & ~self.error
        if not new.any():
            return
        self.error_column[new] = column
        self.error_value[new] = None if values is None else values[new]
        self.error_reason[new] = reasons if isinstance(reasons, str) else reasons[new]
        self.error |= new

    def others_json(self, exclude: set[int] | None = None) -> np.ndarray:
        """The unmapped columns of each line as JSON ``{"column": "text"}`` (empty ones out);
        ``exclude``: columns a source reads itself (a bilan's declared age bands)."""
        cmap = self.table.cmap
        known = set(cmap.fields.values()) | {w[2] for w in cmap.wide} | (exclude or set())
        others = [idx for idx in range(self.cells.shape[1]) if idx not in known]
        names = [self.column_name(idx) for idx in others]
        n = len(self)
        if len(set(names)) != len(names):  # repeated names: the dict keeps one key per name
            return self._others_by_dict(others, names)
        keys = [json.dumps(name, ensure_ascii=False) + ": " for name in names]
        parts: list[np.ndarray] = []
        for idx, key in zip(others, keys, strict=True):
            parts.append(
                self.distinct_at(idx).map(
                    lambda v, key=key: None if (t := cell_text(v)) is None else key + _json_text(t)
                )
            )
        out = np.empty(n, dtype=object)
        for i in range(n):
            kept = [p[i] for p in parts if p[i] is not None]
            out[i] = "{" + ", ".join(kept) + "}"
        return out

    def _others_by_dict(self, others: list[int], names: list[str]) -> np.ndarray:
        texts = [self.text_at(idx) for idx in others]
        out = np.empty(len(self), dtype=object)
        for i in range(len(self)):
            extra: dict[str, str] = {}
            for name, column in zip(names, texts, strict=True):
                if column[i] is not None:
                    extra[name] = column[i]
            out[i] = json.dumps(extra, ensure_ascii=False)
        return out

    def context(self) -> tuple[np.ndarray, np.ndarray]:
        """(territoire, annee) of each line: from its columns, else from the file name/folder."""
        from pipelines.sources.programmations.cells import parse_small_int

        territoire = self.text("territoire")
        fallback = self.per_line(lambda table: territory_from_path(table.path))
        territoire = np.where(pd.isna(territoire), fallback, territoire).astype(object)
        file_year = self.per_line(lambda table: year_from_path(table.path))
        if not self.has("annee"):
            return territoire, file_year
        idx = self.table.cmap.fields["annee"]
        annee = self.parse_at(idx, parse_small_int)
        missing = np.array([a is None for a in annee], dtype=bool)
        annee[missing] = file_year[missing]
        bad = (
            np.array([a is not None and not 1900 <= a <= 2100 for a in annee], dtype=bool)
            & ~missing
        )
        self.fail(bad, self.column_name(idx), self.raw_at(idx), "année illisible")
        return territoire, annee


def _json_text(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _dedup_keys(texts: list[np.ndarray]) -> np.ndarray:
    """Exact-duplicate key of each line: its cells as trimmed text, trailing empties ignored."""
    n = len(texts[0]) if texts else 0
    out = np.empty(n, dtype=object)
    filled = [np.where(pd.isna(t), "", t) for t in texts]
    for i, row in enumerate(zip(*filled, strict=True)):
        out[i] = _SEPARATOR.join(row).rstrip(_SEPARATOR)
    return out


def _cells_frame(rows: list[tuple[int, list[Any]]], width: int) -> pd.DataFrame:
    """The cells of the lines as an object frame of ``width`` columns (short lines padded with
    None), built as one 2-D block (a frame from a list of lists checks every column)."""
    block = np.empty((len(rows), width), dtype=object)
    for i, (_, cells) in enumerate(rows):
        block[i, : len(cells)] = cells
    return pd.DataFrame(block, columns=range(width), copy=False)


def _first_of_same(keys: np.ndarray, table_of: np.ndarray) -> np.ndarray:
    """For each line, the position of the first line of the same table with the same key
    (its own position when it is first)."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.intp)
    codes, uniques = pd.factorize(keys)
    combined = table_of.astype(np.int64) * max(len(uniques), 1) + codes
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    return first[inverse]


Build = Callable[[TableColumns], pd.DataFrame]
#: Consecutive tables with the same header are read together up to this many lines (each
#: column parser is then called once per distinct value of the group, not of each file).
GROUP_LINES = 100_000


def _table_groups(paths: list[Path], aliases: dict[str, str], wanted: set[str]):
    """The tables of the files, in order, as runs of consecutive tables of the same format and
    header (so the same column map) of at most GROUP_LINES lines (a longer table is alone)."""
    group: list[RawTable] = []
    size = 0
    shape: tuple[Any, ...] | None = None
    for path in paths:
        for table in read_tables(Path(path), aliases, wanted):
            this = (table.format, tuple(table.header))
            if group and (this != shape or size + len(table.rows) > GROUP_LINES):
                yield group
                group, size = [], 0
            group.append(table)
            size += len(table.rows)
            shape = this
    if group:
        yield group


def run_tables_columns(
    paths: list[Path],
    extra_aliases: Path | None,
    wanted: set[str],
    source: str,
    build: Build,
) -> tuple[list[pd.DataFrame], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Read every file and call ``build`` on the candidate lines of runs of tables sharing
    their header (:func:`_table_groups`).

    ``build`` returns the output rows of the lines not in error, with a ``_position`` column
    (index of the candidate line) to keep them in file order; lines it marks in error are
    rejected. Blank lines are not data; an exact duplicate (same cells as an earlier line of the
    same table) is rejected as « doublon de la ligne N ». Returns (row frames, rejects, the
    flagged cells of the lines kept as anomalies, files).
    """
    aliases = load_aliases(extra_aliases)
    frames: list[pd.DataFrame] = []
    rejects: list[dict[str, Any]] = []
    anomalies: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    for tables in _table_groups(paths, aliases, wanted):
        rows = [row for table in tables for row in table.rows]
        sizes = [len(table.rows) for table in tables]
        width = max([len(tables[0].header), *(len(c) for _, c in rows)], default=0)
        all_cells = _cells_frame(rows, width)
        all_lines = np.array([line for line, _ in rows], dtype=np.int64)
        all_tables = np.repeat(np.arange(len(tables), dtype=np.intp), sizes)
        del rows
        distinct = [Distinct(all_cells[j].to_numpy(dtype=object)) for j in range(width)]
        texts = [d.map(cell_text) for d in distinct]
        keys = _dedup_keys(texts) if width else np.full(len(all_lines), "", dtype=object)
        data = keys != ""
        keys, lines, table_of = keys[data], all_lines[data], all_tables[data]
        first = _first_of_same(keys, table_of)
        duplicate = first != np.arange(len(first))
        first_line = lines[first]
        group_rejects: list[tuple[int, int, dict[str, Any]]] = []
        for k, line, first in zip(
            table_of[duplicate], lines[duplicate], first_line[duplicate], strict=True
        ):
            record = reject_record(
                source, tables[k], int(line), None, None, f"doublon de la ligne {first}"
            )
            group_rejects.append((int(k), int(line), record))
        kept = data.copy()
        kept[data] = ~duplicate
        if kept.all():  # no blank line, no duplicate: the lines as read (no copy)
            view = TableColumns(tables, all_cells, all_lines, all_tables)
            view._texts = dict(enumerate(texts))
            view._distinct = dict(enumerate(distinct))
        else:
            view = TableColumns(
                tables, all_cells[kept].reset_index(drop=True), all_lines[kept], all_tables[kept]
            )
            for j in range(width):
                view._texts[j] = texts[j][kept]
                view._distinct[j] = distinct[j].subset(kept)
        built = build(view)
        error_positions = np.flatnonzero(view.error)
        for pos in error_positions:
            k = int(view.table_of[pos])
            record = reject_record(
                source,
                tables[k],
                int(view.lines[pos]),
                view.error_column[pos],
                view.error_value[pos],
                view.error_reason[pos],
            )
            group_rejects.append((k, int(view.lines[pos]), record))
        group_rejects.sort(key=lambda item: (item[0], item[1]))
        rejects.extend(record for _, _, record in group_rejects)
        anomalies.extend(view.flagged())
        if len(error_positions):
            built = built[~view.error[built["_position"].to_numpy()]]
        del built["_position"]
        frames.append(built)
        count = len(tables)
        read = np.bincount(table_of, minlength=count)
        rejected = np.bincount(table_of[duplicate], minlength=count) + np.bincount(
            view.table_of[error_positions], minlength=count
        )
        for k, table in enumerate(tables):
            files.append(
                {
                    "fichier": file_label(table.path),
                    "feuille": table.feuille,
                    "format": table.format,
                    "ligne_entete": table.header_line,
                    "lignes_lues": int(read[k]),
                    "lignes_chargees": int(read[k] - rejected[k]),
                    "lignes_rejetees": int(rejected[k]),
                }
            )
    return frames, rejects, anomalies, files


def reject_record(
    source: str, table: RawTable, line: int, colonne: str | None, valeur: Any, motif: str
) -> dict[str, Any]:
    """One ``raw.rejets`` row: file, sheet, line, column, raw value and the full message."""
    where = f"{table.path.name}"
    if table.feuille:
        where += f", feuille « {table.feuille} »"
    where += f", ligne {line}"
    if colonne:
        where += f", colonne « {colonne} »"
    shown = cell_text(valeur)
    message = f"{where}: {motif}" + (f" (valeur « {shown} »)" if shown is not None else "")
    return {
        "source": source,
        "fichier": table.path.name,
        "feuille": table.feuille,
        "ligne": line,
        "colonne": colonne,
        "valeur_brute": shown,
        "motif": message,
    }
