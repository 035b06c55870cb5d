"""Reader of the INSEE QPV indicator bases (and any wide table keyed by QPV codes).

One call reads one file (CSV of any usual dialect, or XLSX) into a long table: one row per
territory x variable, with the published value, a secret flag and the file/line it came from.
Nothing is dropped silently: cells and rows that cannot be read go to ``rejects`` with their
reason, and ``report`` counts rows read = loaded + rejected.

The base of a value (``source``) is the one the file name or a parameter gives, else the one
base publishing the variable's name (:mod:`.dictionary`, which reports ambiguous names and
files reaching no indicator). The millésime: a column, else a parameter, else the file name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from pipelines.lib.raw_schemas import ANOMALY_COLUMNS, REJECT_COLUMNS, Reject
from pipelines.lib.tables import IngestionError, Scorer, check_unique_header, read_tables
from pipelines.sources.insee.dictionary import (
    VariableDictionary,
    default_dictionary,
    dictionary_anomalies,
    resolve_bases,
)
from pipelines.sources.insee.parameters import millesime_column, year_of

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


@dataclass
class InseeFile:
    """What one file gave: long values, rejects and counts."""

    path: Path
    source: str
    millesime: int | None  # None when a column gives several millésimes (see millesimes)
    values: pd.DataFrame
    rejects: pd.DataFrame
    report: dict = field(default_factory=dict)
    anomalies: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ANOMALY_COLUMNS))
    millesimes: list[int] = field(default_factory=list)


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


def _find_code_column(columns: list[list[str]]) -> int:
    """Index of the column whose values are QPV codes (whatever its name)."""
    best, best_hits = -1, 0
    for j, values in enumerate(columns):
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


def read_insee_file(
    path: Path,
    source: str | None = None,
    millesime: int | None = None,
    dictionary: VariableDictionary | None = None,
) -> InseeFile:
    """Read one INSEE-style file into long values. Raises IngestionError if unreadable.

    ``source`` (the base) and ``millesime`` are parameters that win over the file name; a
    millésime column wins over both (it gives each row's year)."""
    path = Path(path)
    millesime = millesime or millesime_from_name(path.name)
    source = (source or source_of(path)).strip().upper()
    dictionary = dictionary if dictionary is not None else default_dictionary()
    found = [
        t
        for t in read_tables(path, _header_scorer(), HEADER_SCAN, lookahead=CODE_LOOKAHEAD)
        if t.header_index is not None
    ]
    if not found:
        if path.suffix.lower() in {".xlsx", ".xlsm"}:
            raise IngestionError(f"{path}: aucune feuille ne contient de codes QPV")
        raise IngestionError(
            f"{path}: aucune colonne ne contient de codes QPV (QPxxxxxx / QNxxxxxx)"
        )
    tables = []
    for t in found:
        header = _texts(t.header, t.format)
        check_unique_header(header, normalise_header, t.where())
        rows = [(r.line, _texts(r.cells, t.format)) for r in t.data if not r.blank]
        misshapen = {r.line: t.field_count_error(r) for r in t.data if not r.blank}
        tables.append((t.sheet, header, rows, {k: v for k, v in misshapen.items() if v}))
    year_cols = [millesime_column(header, rows) for _, header, rows, _ in tables]
    if millesime is None and any(c is None for c in year_cols):
        raise IngestionError(
            f"{path}: millésime introuvable : l'écrire dans le nom du fichier (année sur 4 "
            "chiffres, ex. IPRO_2022.csv), dans une colonne « millesime » ou « annee », ou dans "
            f"le fichier de paramètres {path.stem}.yml à côté (millesime: 2022)"
        )
    # the decimal mark of the file, from its cells where it cannot be a thousands separator
    decimal = decimal_mark(c for _, _, rows, _ in tables for _, cells in rows[:200] for c in cells)

    acc: dict[str, list] = {}
    rejects: list[dict] = []

    def reject(sheet: str | None, line: int, column: str | None, value, motif: str) -> None:
        rejects.append(Reject("insee", str(path), sheet, line, column, value, motif).as_dict())

    read = loaded = rejected = 0
    territories: dict[tuple[str, str, str | None, int], tuple[int, str | None, int]] = {}
    # variables published in several sheets of a workbook: their values must agree
    shared = _shared_variables([header for _, header, _, _ in tables])
    across: dict[tuple[str, str, int, str], tuple[int, str | None, str]] = {}
    number_vars: dict[str, str] = {}  # numeric variables: normalised name -> header as written
    for (sheet, header, rows, misshapen), year_col in zip(tables, year_cols, strict=True):
        where = f"{path}{f' [{sheet}]' if sheet else ''}"
        width = max([len(header)] + [len(r) for _, r in rows])
        raw_names = header + [""] * (width - len(header))
        padded = [r + [""] * (width - len(r)) for _, r in rows]
        lines = [line for line, _ in rows]
        columns = (
            [list(c) for c in zip(*padded, strict=True)] if padded else [[] for _ in raw_names]
        )
        try:
            code_col = _find_code_column(columns)
        except IngestionError as err:
            raise IngestionError(f"{where}: {err}") from None
        names = _unique_names(raw_names)
        label_col = _label_column(names, code_col)
        kinds = _column_kinds(names, columns, label_col, decimal)
        if year_col is not None:
            kinds[year_col] = "skip"  # the row's millésime, not a variable

        keep_rows: list[int] = []
        row_kind: list[str] = []
        row_code: list[str] = []
        row_year: list[int] = []
        for i, row in enumerate(padded):
            read += 1
            # a CSV row whose field count differs from the header's (cut, or with an extra
            # separator): its values would land under the wrong variables
            if lines[i] in misshapen:
                rejected += 1
                reject(sheet, lines[i], None, ";".join(rows[i][1])[-80:], misshapen[lines[i]])
                continue
            kind, code = _territory(row[code_col], row)
            if kind is None:
                rejected += 1
                reject(
                    sheet,
                    lines[i],
                    _name(raw_names, code_col),
                    row[code_col],
                    "code territoire non reconnu (ni QPV, commune, EPCI)",
                )
                continue
            year = millesime
            if year_col is not None:
                year = year_of(row[year_col])
                if year is None:
                    rejected += 1
                    reject(
                        sheet,
                        lines[i],
                        _name(raw_names, year_col),
                        row[year_col],
                        "millésime illisible (année sur 4 chiffres attendue)",
                    )
                    continue
            # one row per territory (and millésime): a second row for the same code is
            # refused, unless it repeats the first one exactly (then rejected as a duplicate)
            digest = hash(tuple(c.strip() for j, c in enumerate(row) if j != code_col))
            first = territories.get((kind, code, sheet, year))
            if first is not None:
                if first[2] != digest:
                    sheet_first = f" [{first[1]}]" if first[1] else ""
                    sheet_now = f" [{sheet}]" if sheet else ""
                    raise IngestionError(
                        f"{path}: {code} a deux lignes aux valeurs différentes : ligne "
                        f"{first[0]}{sheet_first} et ligne {lines[i]}{sheet_now} : garder une "
                        "seule ligne par territoire"
                    )
                rejected += 1
                reject(
                    sheet,
                    lines[i],
                    _name(raw_names, code_col),
                    row[code_col],
                    f"doublon : même ligne que la ligne {first[0]} (ignorée)",
                )
                continue
            territories[(kind, code, sheet, year)] = (lines[i], sheet, digest)
            loaded += 1
            keep_rows.append(i)
            row_kind.append(kind)
            row_code.append(code)
            row_year.append(year)
        if not keep_rows:
            continue
        labels = (
            [padded[i][label_col].strip() or None for i in keep_rows]
            if label_col is not None
            else [None] * len(keep_rows)
        )
        out_lines = [lines[i] for i in keep_rows]
        out_geo = [
            geographie_of(c) if k == "qpv" else None
            for k, c in zip(row_kind, row_code, strict=True)
        ]
        for j, name in enumerate(names):
            if j == code_col or kinds[j] == "skip":
                continue
            cells = [columns[j][i].strip() for i in keep_rows]
            n = len(cells)
            if kinds[j] == "number":
                number_vars.setdefault(name, raw_names[j])
            if kinds[j] == "text":
                valeur: list = [None] * n
                texte: list = [c or None for c in cells]
                secret = [False] * n
                marqueur: list = [None] * n
                bad: list[int] = []
            else:
                lowered = [c.lower() for c in cells]
                secret = [c in SECRET_MARKERS for c in lowered]
                valeur = [
                    None if sec else number_or_none(c, decimal)
                    for c, sec in zip(cells, secret, strict=True)
                ]
                texte = [None] * n
                marqueur = [
                    (lo or "vide") if sec else None for lo, sec in zip(lowered, secret, strict=True)
                ]
                bad = [k for k in range(n) if not secret[k] and valeur[k] is None]
                for k in bad:
                    reject(sheet, out_lines[k], raw_names[j], cells[k], "valeur non numérique")
            block = {
                "millesime": row_year,
                "ligne": out_lines,
                "type_territoire": row_kind,
                "code_territoire": row_code,
                "libelle_territoire": labels,
                "geographie": out_geo,
                "variable": [name] * n,
                "variable_fichier": [raw_names[j]] * n,
                "valeur": valeur,
                "valeur_texte": texte,
                "secret": secret,
                "marqueur_secret": marqueur,
            }
            if name in shared:
                for k in range(n):
                    key = (row_kind[k], row_code[k], row_year[k], name)
                    other = across.setdefault(key, (out_lines[k], sheet, cells[k]))
                    if other[2] != cells[k]:
                        raise IngestionError(
                            f"{path}: {row_code[k]}, {raw_names[j]} : deux valeurs différentes, "
                            f"« {other[2]} » (feuille {other[1]}, ligne {other[0]}) et "
                            f"« {cells[k]} » (feuille {sheet}, ligne {out_lines[k]})"
                        )
            if bad:
                good = sorted(set(range(n)).difference(bad))
                block = {key: [vals[i] for i in good] for key, vals in block.items()}
            for key, vals in block.items():
                acc.setdefault(key, []).extend(vals)
    frame = pd.DataFrame({key: acc.get(key, []) for key in ["millesime", *LONG_COLUMNS[4:]]})
    frame.insert(0, "source", source)
    frame.insert(2, "fichier", str(path))
    frame.insert(3, "feuille", tables[0][0] if len(tables) == 1 else None)
    frame["millesime"] = frame["millesime"].astype("int32")
    bases = resolve_bases(frame, source, number_vars, dictionary)
    anomalies = dictionary_anomalies(path, frame, source, number_vars, bases, dictionary)
    millesimes = sorted({int(y) for y in frame["millesime"].unique()})
    frame["ligne"] = frame["ligne"].astype("int64")
    frame["valeur"] = frame["valeur"].astype("float64")
    frame["secret"] = frame["secret"].astype(bool)
    report = {
        "fichier": str(path),
        "source": source,
        "millesime": millesimes[0] if len(millesimes) == 1 else millesime,
        "millesimes": millesimes,
        "base_nommee": source in dictionary.bases,
        "variables_reconnues": bases.recognised,
        "variables_ambigues": bases.ambiguous,
        "variables_indicateur": bases.reaching,
        "lignes_lues": read,
        "lignes_chargees": loaded,
        "lignes_rejetees": rejected,
        "valeurs": len(frame),
        "valeurs_secretes": int(frame["secret"].sum()) if len(frame) else 0,
        "cellules_rejetees": len(rejects) - rejected,
    }
    return InseeFile(
        path,
        source,
        report["millesime"],
        frame,
        pd.DataFrame(rejects, columns=REJECT_COLUMNS),
        report,
        pd.DataFrame(anomalies, columns=ANOMALY_COLUMNS),
        millesimes,
    )


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


def _column_kinds(
    names: list[str], columns: list[list[str]], label_col: int | None, decimal: str
) -> list[str]:
    """'number', 'text' or 'skip' (an unnamed column with no value: trailing ``;;;``)."""
    kinds = []
    for j, name in enumerate(names):
        values = [v.strip() for v in columns[j] if v.strip()]
        if name.startswith("COLONNE_") and not values:
            kinds.append("skip")
        elif j == label_col or name in TEXT_COLUMNS:
            kinds.append("text")
        else:
            sample = [v for v in values[:2000] if v.lower() not in SECRET_MARKERS]
            numeric = sum(1 for v in sample if number_or_none(v, decimal) is not None)
            other = len(sample) - numeric
            kinds.append("text" if other and numeric < other else "number")
    return kinds


def list_insee_files(insee_dir: Path) -> list[Path]:
    """Files of ``raw/insee/`` that are INSEE-style bases, sorted by name."""
    return list_files(insee_dir, TABLE_SUFFIXES)


def millesime_from_name(name: str) -> int | None:
    """The millésime of a base from its file name: the last 4-digit year
    (``IPRO_2022.csv`` -> 2022, ``base-ipro-qpv-2023-geo2024.xlsx`` -> 2024)."""
    years = years_in_name(name)
    return years[-1] if years else None
