"""Read programmation exports (Dauphin, GISPRO, local Excel tables) of any layout.

A programmation file lists the actions funded in a year. Real exports differ by territory and by
year: separator, encoding, header wording, title rows above the header, one row per action ×
financeur ("long" format, a ``Financeur`` column) or one row per action with a pair of columns per
financeur ("wide" format, ``État (BOP 147) - demandé`` / ``Montant accordé Région``). This module
finds the header row by scoring rows against the header aliases of ``entetes_alias.csv`` (data, not
code), maps each column to a field, and returns one row per action × financeur with every line of
every file either loaded or rejected with its reason (file, line, column).

This module finds and maps the tables (shared with the bilans, :mod:`pipelines.sources.bilans`);
their lines are read column by column by :mod:`.columns`; the tables themselves are read by
:mod:`pipelines.lib.tables` (encoding, CSV dialect, XLSX, the header detector, which gets its
score from the aliases here).
Cells are parsed by :mod:`.cells`; the programmation rows and anomalies are made by :mod:`.rules`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.lib.cells import cell_text, fold
from pipelines.lib.tables import IngestionError, Scorer, named_header
from pipelines.lib.tables import read_tables as read_raw_tables

ALIASES_FILE = Path(__file__).with_name("entetes_alias.csv")
HEADER_SCAN_ROWS = 20
FILE_COLUMNS = ["fichier", "feuille", "format", "lignes_lues", "lignes_chargees", "lignes_rejetees"]
AMOUNT_MEASURES = ("montant_demande", "montant_accorde")
#: Fields that may never come from two columns (a second one would be silently ignored).
AMOUNT_FIELDS = {*AMOUNT_MEASURES, "cout_total", "total_demande", "total_accorde"}

# Words dropped when comparing headers: "Numéro de dossier" matches "Numéro dossier".
_STOP_WORDS = {"de", "du", "des", "la", "le", "les", "l", "d", "en", "a", "au", "aux", "et"}
_SEPARATORS = re.compile(r"\s+[-–—:/|]\s+|\s*[:|]\s*")


class SuiviError(IngestionError):
    """A programmation or bilan file cannot be read at all; the message names the file."""


@dataclass
class SuiviResult:
    """Parsed rows, rejected lines, kept-but-reported anomalies and one summary per file."""

    rows: pd.DataFrame
    rejects: pd.DataFrame
    anomalies: pd.DataFrame
    files: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Header aliases
# --------------------------------------------------------------------------------------------


def header_key(text: Any) -> str:
    """Comparison key of a header: case, accents, spaces, punctuation and stop words ignored."""
    if text is None:
        return ""
    return _header_key(str(text))


@functools.lru_cache(maxsize=65536)
def _header_key(text: str) -> str:
    words = fold(text).split()
    kept = [w for w in words if w not in _STOP_WORDS]
    return " ".join(kept or words)


#: A cell longer than this is never taken for a header alias while looking for the header row
#: (the longest alias of entetes_alias.csv has 45 characters): long data cells and whole lines
#: read with another separator are not folded for nothing (:func:`_scan_key`).
HEADER_CELL_MAX = 150


def _scan_key(cell: Any) -> str:
    """:func:`header_key` of a cell seen while looking for the header row ("" when too long)."""
    if isinstance(cell, str) and len(cell) > HEADER_CELL_MAX:
        return ""
    return header_key(cell)


def load_aliases(extra_aliases: Path | None = None) -> dict[str, str]:
    """Header key -> field name, from ``entetes_alias.csv`` then the user's extra file.

    The extra file has the same two columns (``alias,champ``) and wins over the shipped one.
    """
    aliases: dict[str, str] = {}
    for path in [ALIASES_FILE, extra_aliases]:
        if path is None:
            continue
        try:
            [table] = read_raw_tables(Path(path), named_header({"alias", "champ"}, fold), 5)[:1]
        except (IngestionError, OSError, ValueError) as err:
            raise SuiviError(f"{path}: fichier d'alias d'en-têtes illisible ({err})") from None
        columns = {fold(str(c)): j for j, c in enumerate(table.header) if c is not None}
        if not {"alias", "champ"} <= set(columns):
            raise SuiviError(f"{path}: colonnes attendues « alias » et « champ »")
        a, c = columns["alias"], columns["champ"]
        for row in table.data:
            alias = row.cells[a] if a < len(row.cells) else None
            champ = row.cells[c] if c < len(row.cells) else None
            key = header_key(alias)
            if key and champ:
                aliases[key] = champ.strip()
    return aliases


@dataclass
class ColumnMap:
    """Which column holds which field, plus the wide-format financeur columns."""

    fields: dict[str, int]
    wide: list[tuple[str, str, int]]  # (financeur label as written, measure field, column)
    others: list[int]
    score: int
    #: (what, first column, second column) of a field or financeur × measure read twice
    duplicates: list[tuple[str, int, int]] = field(default_factory=list)


def split_wide_header(header: str, aliases: dict[str, str]) -> tuple[str, str] | None:
    """``'État (BOP 147) - demandé'`` -> ``('État (BOP 147)', 'montant_demande')``.

    Recognises ``<financeur> - <measure>``, ``<measure> - <financeur>``, ``<measure> <financeur>``
    and ``<financeur> <measure>`` where the measure is an alias of an amount requested/granted.
    """
    text = " ".join(str(header).split())
    if not text or len(text) > 120:
        return None
    if not _measure_words(aliases) & set(header_key(text).split()):
        return None  # no word of an amount alias: cannot be a "<financeur> - <measure>" header
    candidates: list[tuple[str, str]] = []
    parts = _SEPARATORS.split(text, maxsplit=1)
    if len(parts) == 2:
        candidates += [(parts[0], parts[1]), (parts[1], parts[0])]
    words = text.split(" ")
    for cut in range(1, len(words)):
        head, tail = " ".join(words[:cut]), " ".join(words[cut:])
        candidates += [(head, tail), (tail, head)]
    for label, measure in candidates:
        champ = aliases.get(header_key(measure))
        label = label.strip(" -–—:/|").strip()
        if label.startswith("(") and label.endswith(")"):
            label = label[1:-1].strip()
        if champ in AMOUNT_MEASURES and label and not aliases.get(header_key(label)):
            return label, champ
    return None


#: aliases dict -> (the same dict, the words of its amount aliases): computed once per dict, not
#: once per header cell (the header scorer tries every cell of the first rows of every file)
_MEASURE_WORDS: dict[int, tuple[dict[str, str], frozenset[str], int]] = {}


def _measure_words(aliases: dict[str, str]) -> frozenset[str]:
    """The words of the aliases of an amount requested/granted."""
    cached = _MEASURE_WORDS.get(id(aliases))
    if cached is not None and cached[0] is aliases and cached[2] == len(aliases):
        return cached[1]
    words = frozenset(
        word for key, champ in aliases.items() if champ in AMOUNT_MEASURES for word in key.split()
    )
    if len(_MEASURE_WORDS) > 64:
        _MEASURE_WORDS.clear()
    _MEASURE_WORDS[id(aliases)] = (aliases, words, len(aliases))
    return words


def map_columns(header: list[Any], aliases: dict[str, str], wanted: set[str]) -> ColumnMap:
    """Map header cells to fields; unknown columns are kept as ``others``."""
    fields: dict[str, int] = {}
    keys: dict[str, str] = {}
    wide: list[tuple[str, str, int]] = []
    wide_seen: dict[tuple[str, str], int] = {}
    duplicates: list[tuple[str, int, int]] = []
    others: list[int] = []
    for idx, cell in enumerate(header):
        key = header_key(cell)
        if not key:
            others.append(idx)
            continue
        champ = aliases.get(key)
        if champ in wanted and champ not in fields:
            fields[champ] = idx
            keys[champ] = key
            continue
        if champ in wanted and (champ in AMOUNT_FIELDS or keys[champ] == key):
            duplicates.append((cell_text(cell) or champ, fields[champ], idx))
        if "montant_demande" in wanted and champ is None:
            split = split_wide_header(str(cell), aliases)
            if split is not None:
                pair = (header_key(split[0]), split[1])
                if pair in wide_seen:
                    duplicates.append((cell_text(cell) or split[0], wide_seen[pair], idx))
                wide_seen.setdefault(pair, idx)
                wide.append((split[0], split[1], idx))
                continue
        others.append(idx)
    score = len(fields) + (1 if wide else 0) + min(len(wide), 4)
    return ColumnMap(fields=fields, wide=wide, others=others, score=score, duplicates=duplicates)


def _header_ok(cmap: ColumnMap) -> bool:
    identified = "dossier" in cmap.fields or "intitule" in cmap.fields
    return identified and len(cmap.fields) + (1 if cmap.wide else 0) >= 2


# --------------------------------------------------------------------------------------------
# Reading raw tables (CSV of any dialect, XLSX any sheet)
# --------------------------------------------------------------------------------------------


@dataclass
class RawTable:
    """The header and data lines of one CSV file or one XLSX sheet."""

    path: Path
    feuille: str | None
    format: str
    header: list[Any]
    header_line: int
    cmap: ColumnMap
    rows: list[tuple[int, list[Any]]]


def read_tables(path: Path, aliases: dict[str, str], wanted: set[str]) -> list[RawTable]:
    """Every table of a file whose header row (within the first 20 rows) maps to known fields.

    Raises SuiviError for a missing, unreadable or empty file, an unsupported format, or a file
    where no header row can be found.
    """
    path = Path(path)
    try:
        tables = read_raw_tables(
            path, _header_scorer(aliases, wanted), HEADER_SCAN_ROWS, lookahead=5, label=path.name
        )
    except IngestionError as err:
        raise SuiviError(str(err)) from None
    if (
        tables
        and tables[0].format == "xlsx"
        and not any(dedup_key(row.cells) for table in tables for row in table.rows)
    ):
        raise SuiviError(f"{path.name}: fichier vide (aucune cellule remplie)")
    found = []
    for table in tables:
        if table.header_index is None:
            continue
        header = _merged_rows([r.cells for r in table.rows], table.header_index, aliases)[-1]
        cmap = map_columns(header, aliases, wanted)
        where = path.name + (f", feuille « {table.sheet} »" if table.sheet else "")
        for what, first, second in cmap.duplicates:
            raise SuiviError(
                f"{where}: deux colonnes « {what} » (colonnes {_position(first)} et "
                f"{_position(second)}, ligne d'en-tête {table.header_line}): une seule serait "
                "lue; supprimer ou renommer l'une des deux avant de relancer"
            )
        if "montant_demande" in wanted and not (
            set(cmap.fields) & set(AMOUNT_MEASURES) or cmap.wide
        ):
            raise SuiviError(
                f"{where}: aucune colonne de montant reconnue dans la ligne d'en-tête "
                f"{table.header_line} (attendu par exemple « Montant demandé », « Montant "
                "accordé », ou « <financeur> - Demandé » / un en-tête sur deux lignes avec les "
                "financeurs au-dessus de « Demandé | Accordé »); compléter les alias avec "
                "referentiels/entetes_alias.csv si besoin"
            )
        found.append(
            RawTable(
                path,
                table.sheet,
                table.format,
                header,
                table.header_line or 0,
                cmap,
                [(row.line, row.cells) for row in table.data],
            )
        )
    if not found:
        raise SuiviError(
            f"{path.name}: aucune ligne d'en-tête reconnue dans les {HEADER_SCAN_ROWS} premières "
            "lignes (colonnes attendues par exemple « N° dossier », « Intitulé de l'action », "
            "« Montant demandé »); compléter les alias avec extra_aliases si besoin"
        )
    return found


def _position(idx: int) -> str:
    """``5 (E)``: a 0-based column index as its number and spreadsheet letter."""
    letters, number = "", idx + 1
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return f"{idx + 1} ({letters})"


def _merged_rows(
    rows: Sequence[Sequence[Any]], upto: int, aliases: dict[str, str]
) -> list[list[Any]]:
    """Rows 0..upto with their group row merged in (see :func:`_with_group_row`): a two-row
    header (financeurs in merged cells above « Demandé | Accordé ») becomes one row of
    ``<financeur> - <measure>`` columns."""
    merged: list[list[Any]] = []
    for k in range(upto + 1):
        merged.append(_with_group_row(list(rows[k]), merged[-1] if merged else None, aliases))
    return merged


def _header_scorer(aliases: dict[str, str], wanted: set[str]) -> Scorer:
    """The header is the row (merged with the group row above it) that maps to the most fields,
    naming at least the dossier or the action and one more field."""
    cache: dict[str, Any] = {"rows": None, "merged": []}
    identifying = {"dossier", "intitule"} & wanted

    def score(rows: Sequence[Sequence[Any]], k: int) -> float | None:
        if cache["rows"] is not rows:
            cache["rows"], cache["merged"] = rows, []
        merged = cache["merged"]
        while len(merged) <= k:
            above = merged[-1] if merged else None
            merged.append(_with_group_row(list(rows[len(merged)]), above, aliases))
        # a header names the dossier or the action (see _header_ok): a row without a cell of
        # theirs is not mapped (most rows scored are data lines, whose cells would each be
        # tried as a « <financeur> - <measure> » header)
        if not any(aliases.get(_scan_key(cell)) in identifying for cell in merged[k]):
            return None
        cmap = map_columns(merged[k], aliases, wanted)
        return cmap.score if _header_ok(cmap) else None

    return score


def _with_group_row(
    cells: list[Any], above: list[Any] | None, aliases: dict[str, str]
) -> list[Any]:
    """Prefix repeated amount headers with the group label written above them (merged cells
    keep their text in their first column only, hence the look to the left)."""
    measures = [i for i, c in enumerate(cells) if aliases.get(_scan_key(c)) in AMOUNT_MEASURES]
    if above is None or len(measures) < 2:
        return cells
    if any(aliases.get(_scan_key(c)) == "financeur" for c in cells):
        return cells  # long layout: the amounts belong to the « Financeur » column
    if len(measures) == 2 and not any(cell_text(c) for c in above[: len(cells)]):
        return cells
    merged = list(cells)
    # cells merged vertically over the two rows keep their text in the upper row only
    for idx in range(len(merged)):
        if cell_text(merged[idx]) is None and idx < len(above) and cell_text(above[idx]):
            merged[idx] = above[idx]
    for idx in measures:
        label = None
        for back in range(idx, max(-1, idx - 3), -1):
            if back != idx and back not in measures:
                break
            text = cell_text(above[back]) if back < len(above) else None
            if text:
                label = text
                break
        if label:
            merged[idx] = f"{label} - {cell_text(cells[idx])}"
    return merged


def dedup_key(cells: list[Any]) -> tuple[str, ...]:
    """Exact-duplicate key of a line: its cells as trimmed text, trailing empties ignored."""
    texts = [cell_text(c) or "" for c in cells]
    while texts and texts[-1] == "":
        texts.pop()
    return tuple(texts)


def file_label(path: Path) -> str:
    return path.name


def frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records, columns=columns)
