"""Reader of local indicator tables (Compas, CAF, France Travail, ARS extracts...).

Such tables have no public schema: wide CSV/XLSX keyed by a territory code (QPV, IRIS,
commune, EPCI...), one column per indicator, often below a title block, beside a notes sheet.
Each file is read through its provider's mapping file (:mod:`.mapping`, which documents the
format) into long values: one row per territory x column, with indicator, unit and millésime.

Headers are matched without regard to case, accents, spaces and punctuation. Columns neither
mapped nor ignored are kept with ``indicateur`` NULL (never dropped). An XLSX cell formatted as a
percentage (0.35 shown as 35 %) is multiplied by 100 unless the column gives its own ``facteur``.
Cells under secret (blank, ``s``, ``nd``... and the mapping's markers) give NULL with
``secret = true``; rows and cells that cannot be read go to ``rejects`` with their reason.
Text numbers follow the file's decimal mark (:func:`pipelines.lib.cells.parse_number`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.lib.cells import SECRET_MARKERS, cell_str, decimal_mark, fold, parse_number
from pipelines.lib.codes import (
    COMMUNE,
    DEPARTEMENT,
    EPCI,
    FRANCE_CODES,
    IRIS,
    QPV_LIKE,
    REGION,
    geographie_of,
)
from pipelines.lib.raw_schemas import REJECT_COLUMNS, Reject
from pipelines.lib.tables import IngestionError, Scorer, check_unique_header, read_tables
from pipelines.sources.indicateurs.mapping import Mapping
from pipelines.sources.insee.reader import KEY_COLUMNS, millesime_from_name

SOURCE = "indicateurs_locaux"
LONG_COLUMNS = [
    *KEY_COLUMNS,
    "indicateur",
    "unite",
    "facteur",
    "valeur",
    "valeur_fichier",
    "secret",
    "marqueur_secret",
    "mapping",
]

# Values of a "type" column -> project type (compared after fold()).
TYPE_SYNONYMS = {
    "qpv": "qpv",
    "qp": "qpv",
    "quartier": "qpv",
    "quartier prioritaire": "qpv",
    "quartier prioritaire de la politique de la ville": "qpv",
    "iris": "iris",
    "commune": "commune",
    "com": "commune",
    "ville": "commune",
    "epci": "epci",
    "interco": "epci",
    "intercommunalite": "epci",
    "agglomeration": "epci",
    "ept": "epci",
    "departement": "departement",
    "dep": "departement",
    "region": "region",
    "reg": "region",
    "france": "france",
    "france metropolitaine": "france",
    "national": "france",
    "ensemble des qpv": "ensemble_qpv",
    "ensemble des quartiers prioritaires": "ensemble_qpv",
    "ensemble qpv": "ensemble_qpv",
}
_CODE_PATTERNS = {
    "commune": COMMUNE,
    "iris": IRIS,
    "epci": EPCI,
    "departement": DEPARTEMENT,
    "region": REGION,
}
_ENSEMBLE = re.compile(r"ensemble des (quartiers|qpv)|tous les qpv|france des qp", re.IGNORECASE)


@dataclass
class LocalTable:
    """What one file gave: long values, rejects and counts."""

    path: Path
    mapping: Mapping
    values: pd.DataFrame
    rejects: pd.DataFrame
    report: dict = field(default_factory=dict)


# -- reading ---------------------------------------------------------------------------------


HEADER_SCAN = 200  # rows where the header may be
MEMORY_FACTOR = 250  # peak memory of a CSV read into long values, x its size (measured)


@dataclass
class _Cell:
    value: object
    percent: bool = False

    @property
    def text(self) -> str:
        return cell_str(self.value)


@dataclass
class _Table:
    sheet: str | None
    header_line: int
    header: list[str]
    rows: list[tuple[int, list[_Cell]]]
    decimal: str = ","
    misshapen: dict[int, str] = field(default_factory=dict)


def _header_scorer(mapping: Mapping) -> Scorer:
    """The header holds the most columns named by the mapping (it may move). A notes sheet may
    quote one column name: a header names the code column, or two columns."""
    wanted = {fold(c.header) for c in mapping.colonnes}
    wanted |= {fold(h) for h in (mapping.code, mapping.libelle, mapping.type_column) if h}
    needed = 1 if len(mapping.colonnes) == 1 else 2
    code = fold(mapping.code) if mapping.code else None

    def score(rows: Sequence[Sequence[Any]], k: int) -> float | None:
        folded = [fold(t) for t in (cell_str(c) for c in rows[k]) if t]
        if code is not None and code not in folded:
            return None
        value = sum(1 for f in folded if f in wanted)
        return value if value >= needed or mapping.code else None

    return score


def _tables(path: Path, mapping: Mapping) -> list[_Table]:
    """The tables of a file whose header the mapping recognises (sheets: ``feuille`` glob)."""
    feuille = mapping.feuille

    def wanted_sheet(title: str) -> bool:
        return feuille is None or fnmatch.fnmatch(title.lower(), feuille.lower())

    tables = []
    for table in read_tables(
        path,
        _header_scorer(mapping),
        HEADER_SCAN,
        lookahead=5,
        sheets=wanted_sheet,
        formats=True,
        memory_factor=MEMORY_FACTOR,
    ):
        if table.header_index is None:
            continue
        check_unique_header([cell_str(c) for c in table.header], fold, table.where())
        misshapen = {r.line: e for r in table.data if (e := table.field_count_error(r))}
        rows = [
            (
                row.line,
                [
                    _Cell(v, "%" in (row.formats[j] if row.formats else ""))
                    for j, v in enumerate(row.cells)
                ],
            )
            for row in table.data
        ]
        texts = (c for _, cells in rows[:200] for c in cells if isinstance(c.value, str))
        tables.append(
            _Table(
                table.sheet,
                table.header_line or 0,
                [cell_str(c) for c in table.header],
                rows,
                decimal_mark(c.value for c in texts),
                misshapen,
            )
        )
    return tables


def _code_text(cell: _Cell) -> str:
    text = cell.text.strip().upper()
    return text.replace("\u00a0", "").replace(" ", "") if re.match(r"^[\d\s]+$", text) else text


def _classify(
    code: str, kind_text: str | None, label: str | None, mapping: Mapping
) -> tuple[str | None, str | None, str | None]:
    """(type_territoire, code_territoire, motif de rejet)."""
    if kind_text is not None:
        key = fold(kind_text)
        kind = mapping.types.get(key) or TYPE_SYNONYMS.get(key)
        if kind is None:
            return None, None, f"type de territoire « {kind_text} » inconnu (territoire.types)"
    else:
        kind = None
    if kind is None:
        if QPV_LIKE.match(code) and geographie_of(code):
            kind = "qpv"
        elif _ENSEMBLE.search(label or "") or _ENSEMBLE.search(code):
            kind = "ensemble_qpv"
        elif code in FRANCE_CODES:
            kind = "france"
        elif _CODE_PATTERNS["commune"].match(code) or re.match(r"^\d{4}$", code):
            kind = "commune"
        elif _CODE_PATTERNS["epci"].match(code):
            kind = mapping.code_9_chiffres
        else:
            return None, None, "code territoire non reconnu (ni QPV, IRIS, commune, EPCI, France)"
    if kind == "ensemble_qpv":
        return kind, "ENSEMBLE_QPV", None
    if kind == "france":
        return kind, "FRANCE", None
    if kind == "qpv":
        if not (QPV_LIKE.match(code) and geographie_of(code)):
            return None, None, f"code QPV invalide « {code} »"
        return kind, code, None
    if kind in ("commune", "iris") and re.match(r"^\d+$", code):
        code = code.zfill(5 if kind == "commune" else 9)  # leading zero lost by a spreadsheet
    if kind == "departement" and re.match(r"^\d$", code):
        code = code.zfill(2)
    if not _CODE_PATTERNS[kind].match(code):
        return None, None, f"code « {code} » invalide pour un territoire de type {kind}"
    return kind, code, None


def read_local_table(path: Path, mapping: Mapping) -> LocalTable:
    """Read one data file through its mapping into long values. Raises IngestionError."""
    path = Path(path)
    tables = _tables(path, mapping)
    if not tables:
        what = f"feuille « {mapping.feuille} »" if mapping.feuille else "aucune feuille"
        raise IngestionError(
            f"{path}: en-têtes du mapping {mapping.path.name} introuvables ({what}) : vérifier "
            "les noms de colonnes (territoire.code, colonnes)"
        )
    markers = SECRET_MARKERS | mapping.secret
    out: dict[str, list] = {k: [] for k in LONG_COLUMNS}
    rejects: list[dict] = []
    read = loaded = rejected = 0
    seen: dict[tuple, tuple[int, str | None, str]] = {}
    missing_columns: list[str] = []
    unmapped: list[str] = []

    def reject(sheet, line, column, raw, motif):
        rejects.append(Reject(SOURCE, str(path), sheet, line, column, raw, motif).as_dict())

    for table in tables:
        folded = [fold(h) for h in table.header]
        ignored = {fold(i) for i in mapping.ignorer}

        def find(name: str | None, folded: list[str] = folded) -> int | None:
            if not name:
                return None
            key = fold(name)
            return folded.index(key) if key in folded else None

        code_col = find(mapping.code)
        label_col = find(mapping.libelle)
        type_col = find(mapping.type_column)
        for what, name, col in (
            ("territoire.libelle", mapping.libelle, label_col),
            ("territoire.type", mapping.type_column, type_col),
        ):
            if name and col is None:
                raise IngestionError(
                    f"{path}: colonne « {name} » ({what} du mapping {mapping.path.name}) absente "
                    f"de la ligne d'en-tête {table.header_line}"
                )
        # a misshapen row is rejected below: its extra field makes no column (no COLONNE_<n>)
        width = max(
            [len(table.header)] + [len(r) for line, r in table.rows if line not in table.misshapen]
        )
        cells_by_col = [
            [r[j] if j < len(r) else _Cell(None) for _, r in table.rows] for j in range(width)
        ]
        if code_col is None:
            code_col = _guess_code_column(cells_by_col, table.header, mapping)
            if code_col is None and len(tables) > 1:
                reject(
                    table.sheet,
                    table.header_line,
                    None,
                    None,
                    "onglet ignoré : aucune colonne de codes territoire",
                )
                continue
            if code_col is None:
                raise IngestionError(
                    f"{path}: colonne des codes territoire introuvable (préciser territoire.code "
                    f"dans {mapping.path.name})"
                )
        for col in mapping.colonnes:
            if find(col.header) is None and col.header not in missing_columns:
                missing_columns.append(col.header)
                reject(
                    table.sheet,
                    table.header_line,
                    col.header,
                    None,
                    f"colonne du mapping {mapping.path.name} absente du fichier",
                )
        value_cols = []
        for j, name in enumerate(table.header[:width] + [""] * (width - len(table.header))):
            if j in (code_col, label_col, type_col) or fold(name) in ignored:
                continue
            if not name.strip() and not any(c.text for c in cells_by_col[j]):
                continue  # empty trailing column
            spec = mapping.column(name) if name.strip() else None
            if spec is None:
                if not any(c.text for c in cells_by_col[j]):
                    continue
                unmapped.append(name or f"colonne {j + 1}")
            value_cols.append((j, name.strip() or f"COLONNE_{j + 1}", name, spec))
        sheet_year = millesime_from_name(table.sheet or "")
        default_year = mapping.millesime or sheet_year or millesime_from_name(path.name)
        for i, (line, _) in enumerate(table.rows):
            row_cells = [cells_by_col[j][i] for j in range(width)]
            if not any(c.text for c in row_cells):
                continue
            read += 1
            if line in table.misshapen:
                rejected += 1
                reject(table.sheet, line, None, None, table.misshapen[line])
                continue
            code = _code_text(row_cells[code_col])
            label = row_cells[label_col].text or None if label_col is not None else None
            kind_text = row_cells[type_col].text if type_col is not None else None
            if not code and not label:
                rejected += 1
                reject(
                    table.sheet,
                    line,
                    table.header[code_col] if code_col < len(table.header) else None,
                    row_cells[0].text or None,
                    "ligne sans code territoire (note, titre ou total ?)",
                )
                continue
            kind, code_t, motif = _classify(code, kind_text or None, label, mapping)
            if kind is None:
                rejected += 1
                reject(table.sheet, line, table.header[code_col], row_cells[code_col].text, motif)
                continue
            loaded += 1
            for j, variable, raw_name, spec in value_cols:
                cell = row_cells[j]
                year = (spec.millesime if spec and spec.millesime else None) or default_year
                if year is None:
                    raise IngestionError(
                        f"{path}: millésime introuvable : le donner dans {mapping.path.name} "
                        "(millesime: 2022) ou dans le nom de la feuille ou du fichier"
                    )
                key = (kind, code_t, year, fold(variable))
                text = cell.text
                if key in seen:
                    first_line, first_sheet, first_text = seen[key]
                    if first_text != text:
                        where = f" [{table.sheet}]" if table.sheet else ""
                        raise IngestionError(
                            f"{path}{where}: {code_t}, colonne « {raw_name} », millésime {year} : "
                            f"deux valeurs différentes, « {first_text} » (ligne {first_line}"
                            f"{f', feuille {first_sheet}' if first_sheet else ''}) et « {text} » "
                            f"(ligne {line}) : garder une seule ligne par territoire"
                        )
                    reject(
                        table.sheet,
                        line,
                        raw_name,
                        text or None,
                        f"doublon : même valeur qu'à la ligne {first_line} (ignorée)",
                    )
                    continue
                secret = isinstance(cell.value, str | type(None)) and text.lower() in markers
                valeur_fichier = None
                if not secret:
                    if isinstance(cell.value, int | float) and not isinstance(cell.value, bool):
                        valeur_fichier = float(cell.value)
                    else:
                        try:
                            valeur_fichier = parse_number(text, table.decimal)
                        except ValueError:
                            valeur_fichier = None
                    if valeur_fichier is None:
                        reject(table.sheet, line, raw_name, text, "valeur non numérique")
                        continue
                seen[key] = (line, table.sheet, text)
                facteur = (
                    spec.facteur
                    if spec and spec.facteur is not None
                    else (100.0 if cell.percent else 1.0)
                )
                out["source"].append(mapping.fournisseur)
                out["millesime"].append(year)
                out["fichier"].append(str(path))
                out["feuille"].append(table.sheet)
                out["ligne"].append(line)
                out["type_territoire"].append(kind)
                out["code_territoire"].append(code_t)
                out["libelle_territoire"].append(label)
                out["geographie"].append(geographie_of(code_t) if kind == "qpv" else None)
                out["variable"].append(variable)
                out["variable_fichier"].append(raw_name)
                out["indicateur"].append(spec.indicateur if spec else None)
                out["unite"].append(spec.unite if spec else None)
                out["facteur"].append(facteur)
                out["valeur"].append(None if secret else valeur_fichier * facteur)
                out["valeur_fichier"].append(valeur_fichier)
                out["secret"].append(secret)
                out["marqueur_secret"].append((text.lower() or "vide") if secret else None)
                out["mapping"].append(str(mapping.path))
    frame = pd.DataFrame(out, columns=LONG_COLUMNS)
    frame = frame.astype(
        {"millesime": "int32", "ligne": "int64", "valeur": "float64", "secret": bool}
    )
    report = {
        "fichier": str(path),
        "mapping": str(mapping.path),
        "source": mapping.fournisseur,
        "lignes_lues": read,
        "lignes_chargees": loaded,
        "lignes_rejetees": rejected,
        "valeurs": len(frame),
        "valeurs_secretes": int(frame["secret"].sum()),
        "colonnes_hors_mapping": sorted(set(unmapped)),
        "colonnes_mapping_absentes": missing_columns,
    }
    return LocalTable(path, mapping, frame, pd.DataFrame(rejects, columns=REJECT_COLUMNS), report)


def _guess_code_column(
    columns: list[list[_Cell]], header: list[str], mapping: Mapping
) -> int | None:
    """The unmapped column whose values look most like territory codes."""
    best, best_hits = None, 0
    for j, cells in enumerate(columns):
        if j < len(header) and mapping.column(header[j]):
            continue
        values = [_code_text(c) for c in cells[:500] if c.text]
        hits = sum(
            1
            for v in values
            if QPV_LIKE.match(v)
            or _CODE_PATTERNS["commune"].match(v)
            or _CODE_PATTERNS["epci"].match(v)
        )
        if hits > best_hits and hits >= max(1, len(values) // 2):
            best, best_hits = j, hits
    return best
