"""Reader of the INSEE QPV indicator bases (and any wide table keyed by QPV codes).

One call reads one file (CSV of any usual dialect, or XLSX) into a long table: one row per
territory x variable, with the published value, a secret flag and the file/line it came from.
Nothing is dropped silently: cells and rows that cannot be read go to ``rejects`` with their
reason, and ``report`` counts rows read = loaded + rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from pipelines.lib.tables import (
    QPV_ANY,
    REJECT_COLUMNS,
    SECRET_MARKERS,
    IngestionError,
    Reject,
    fold,
    geographie_of,
    millesime_from_name,
    normalise_header,
    parse_number,
    read_delimited,
)

# Where a value comes from and what it is about: the key of every long indicator table (INSEE
# bases here, local providers in compas.py, and their raw tables).
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
    millesime: int
    values: pd.DataFrame
    rejects: pd.DataFrame
    report: dict = field(default_factory=dict)


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
    if QPV_ANY.match(code_u) and geographie_of(code_u):
        return "qpv", code_u
    if any(_AGGREGATE.search(cell or "") for cell in row[:4]) and (
        code_u == "" or not re.match(r"^\d", code_u)
    ):
        return "ensemble_qpv", "ENSEMBLE_QPV"
    if re.match(r"^(\d{5}|2[AB]\d{3})$", code_u):
        return "commune", code_u
    if re.match(r"^\d{9}$", code_u):
        return "epci", code_u
    if code_u in {"FRANCE", "FR", "FRM", "FE", "FM", "FRANCE METROPOLITAINE"}:
        return "france", code_u
    return None, None


def _find_code_column(columns: list[list[str]]) -> int:
    """Index of the column whose values are QPV codes (whatever its name)."""
    best, best_hits = -1, 0
    for j, values in enumerate(columns):
        sample = [v.strip().upper() for v in values[:500]]
        if not any(v.startswith("Q") for v in sample):
            continue
        hits = sum(1 for v in sample if QPV_ANY.match(v))
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


def _xlsx_tables(path: Path) -> list[tuple[str, list[str], list[tuple[int, list[str]]]]]:
    """(sheet, header, rows) of each sheet holding QPV codes; the header row may be anywhere."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - openpyxl raises many kinds
        raise IngestionError(f"{path}: classeur illisible ({err})") from None
    tables = []
    for ws in wb.worksheets:
        cells = [
            (i, ["" if v is None else _cell_text(v) for v in row])
            for i, row in enumerate(ws.iter_rows(values_only=True), start=1)
        ]
        first_code = next(
            (k for k, (_, r) in enumerate(cells) if any(QPV_ANY.match(c.strip()) for c in r)),
            None,
        )
        if first_code is None or first_code == 0:
            continue
        header_idx = first_code - 1
        while header_idx > 0 and not any(c.strip() for c in cells[header_idx][1]):
            header_idx -= 1
        header = cells[header_idx][1]
        rows = [(i, r) for i, r in cells[first_code:] if any(c.strip() for c in r)]
        tables.append((ws.title, header, rows))
    wb.close()
    return tables


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_insee_file(
    path: Path, source: str | None = None, millesime: int | None = None
) -> InseeFile:
    """Read one INSEE-style file into long values. Raises IngestionError if unreadable."""
    path = Path(path)
    millesime = millesime or millesime_from_name(path.name)
    if millesime is None:
        raise IngestionError(
            f"{path}: millésime introuvable: le nom du fichier doit contenir l'année "
            "sur 4 chiffres (ex. IPRO_2022.csv)"
        )
    source = source or source_of(path)
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        tables = _xlsx_tables(path)
        if not tables:
            raise IngestionError(f"{path}: aucune feuille ne contient de codes QPV")
    elif path.suffix.lower() in {".csv", ".txt", ".tsv"}:
        header, rows = read_delimited(path)
        tables = [(None, header, rows)]
    else:
        raise IngestionError(f"{path}: format non pris en charge ({path.suffix})")

    acc: dict[str, list] = {}
    rejects: list[dict] = []
    read = loaded = rejected = 0
    for sheet, header, rows in tables:
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
        kinds = _column_kinds(names, columns, label_col)

        keep_rows: list[int] = []
        row_kind: list[str] = []
        row_code: list[str] = []
        # a CSV row with fewer fields than the named columns was cut (truncated file or line):
        # its missing cells would otherwise look like values under secret
        named = max((j + 1 for j, h in enumerate(header) if h.strip()), default=0)
        short = {i for i, (_, r) in enumerate(rows) if sheet is None and len(r) < named}
        for i, row in enumerate(padded):
            read += 1
            if i in short:
                rejected += 1
                rejects.append(
                    Reject(
                        "insee",
                        str(path),
                        sheet,
                        lines[i],
                        _name(raw_names, len(rows[i][1])),
                        ";".join(rows[i][1])[-80:],
                        f"ligne tronquée: {len(rows[i][1])} champs au lieu d'au moins {named}",
                    ).as_dict()
                )
                continue
            kind, code = _territory(row[code_col], row)
            if kind is None:
                rejected += 1
                rejects.append(
                    Reject(
                        "insee",
                        str(path),
                        sheet,
                        lines[i],
                        _name(raw_names, code_col),
                        row[code_col],
                        "code territoire non reconnu (ni QPV, commune, EPCI)",
                    ).as_dict()
                )
                continue
            loaded += 1
            keep_rows.append(i)
            row_kind.append(kind)
            row_code.append(code)
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
                    None if sec else _cached_number(c) for c, sec in zip(cells, secret, strict=True)
                ]
                texte = [None] * n
                marqueur = [
                    (lo or "vide") if sec else None for lo, sec in zip(lowered, secret, strict=True)
                ]
                bad = [k for k in range(n) if not secret[k] and valeur[k] is None]
                for k in bad:
                    rejects.append(
                        Reject(
                            "insee",
                            str(path),
                            sheet,
                            out_lines[k],
                            raw_names[j],
                            cells[k],
                            "valeur non numérique",
                        ).as_dict()
                    )
            block = {
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
            if bad:
                good = sorted(set(range(n)).difference(bad))
                block = {key: [vals[i] for i in good] for key, vals in block.items()}
            for key, vals in block.items():
                acc.setdefault(key, []).extend(vals)
    frame = pd.DataFrame({key: acc.get(key, []) for key in LONG_COLUMNS[4:]})
    frame.insert(0, "source", source)
    frame.insert(1, "millesime", millesime)
    frame.insert(2, "fichier", str(path))
    frame.insert(3, "feuille", tables[0][0] if len(tables) == 1 else None)
    frame["millesime"] = frame["millesime"].astype("int32")
    frame["ligne"] = frame["ligne"].astype("int64")
    frame["valeur"] = frame["valeur"].astype("float64")
    frame["secret"] = frame["secret"].astype(bool)
    report = {
        "fichier": str(path),
        "source": source,
        "millesime": millesime,
        "lignes_lues": read,
        "lignes_chargees": loaded,
        "lignes_rejetees": rejected,
        "valeurs": len(frame),
        "valeurs_secretes": int(frame["secret"].sum()) if len(frame) else 0,
        "cellules_rejetees": len(rejects) - rejected,
    }
    return InseeFile(
        path, source, millesime, frame, pd.DataFrame(rejects, columns=REJECT_COLUMNS), report
    )


@lru_cache(maxsize=200_000)
def _cached_number(cell: str) -> float | None:
    """:func:`parse_number` memoised (values repeat a lot); None when not a number."""
    try:
        return parse_number(cell)
    except ValueError:
        return None


def _name(names: list[str], j: int) -> str:
    return names[j] if j < len(names) else f"colonne {j + 1}"


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


def _column_kinds(names: list[str], columns: list[list[str]], label_col: int | None) -> list[str]:
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
            numeric = sum(1 for v in sample if _cached_number(v) is not None)
            other = len(sample) - numeric
            kinds.append("text" if other and numeric < other else "number")
    return kinds


def list_insee_files(insee_dir: Path) -> list[Path]:
    """Files of ``raw/insee/`` that are INSEE-style bases, sorted by name."""
    if not insee_dir.is_dir():
        return []
    return sorted(
        p
        for p in insee_dir.rglob("*")
        if p.is_file()
        and p.suffix.lower() in {".csv", ".txt", ".tsv", ".xlsx", ".xlsm"}
        and not p.name.startswith((".", "~$"))
        and fold(p.stem) not in {"readme", "lisez moi"}
    )
