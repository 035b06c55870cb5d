"""Readers of ``raw/referentiels/``: reference-value files and the QPV 2015 <-> 2024 crosswalk.

Files are recognised by their header, not their name (other readers of the folder, e.g. the
suivi's ``entetes_alias.csv``, are left alone):

* **reference values** (France, EPCI, commune... values to compare the QPV with): a CSV or XLSX
  with at least ``territoire_code`` (or ``code_territoire``/``code``), ``indicateur`` and
  ``valeur``; optional ``territoire_type``, ``millesime``, ``source``, ``libelle_territoire``,
  ``note``. One row = one territory x millésime x indicator.
* **the official correspondence file** (``QP2024;Label_QP2024;Statut;QP2015_1;QP2015_2;...``):
  one row per QPV of one generation with the QPV of the other generation it comes from or goes
  to. The code columns are recognised by their values (``QN...`` vs ``QP...``), so the reverse
  file (one row per QPV 2015) is read too. Read in long form: one row per pair.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.lib.cells import SECRET_MARKERS, cell_str, decimal_mark, fold, parse_number
from pipelines.lib.codes import EPCI, FRANCE_CODES, QPV_2015, QPV_2024
from pipelines.lib.files import TABLE_SUFFIXES, list_files
from pipelines.lib.raw_schemas import REJECT_COLUMNS, Reject
from pipelines.lib.tables import IngestionError, check_unique_header, read_tables

SOURCE_VALEURS = "valeurs_reference"
SOURCE_PASSAGE = "passage_qpv"
HEADER_SCAN = 50  # rows where the header may be

VALEURS_COLUMNS = [
    "territoire_type",
    "territoire_code",
    "libelle_territoire",
    "millesime",
    "indicateur",
    "valeur",
    "source",
    "note",
    "fichier",
    "ligne",
]
PASSAGE_COLUMNS = [
    "code_qpv_2015",
    "libelle_qpv_2015",
    "code_qpv_2024",
    "libelle_qpv_2024",
    "statut",
    "rang",
    "fichier",
    "ligne",
]

_ALIASES = {
    "territoire_type": ["territoire type", "type territoire", "type", "niveau"],
    "territoire_code": ["territoire code", "code territoire", "code", "codgeo", "code geo"],
    "libelle_territoire": ["libelle territoire", "libelle", "libgeo", "nom", "territoire"],
    "millesime": ["millesime", "annee", "year"],
    "indicateur": ["indicateur", "code indicateur"],
    "valeur": ["valeur", "value"],
    "source": ["source"],
    "note": ["note", "commentaire"],
}
_TYPES = {
    "france": "france",
    "national": "france",
    "epci": "epci",
    "commune": "commune",
    "com": "commune",
    "departement": "departement",
    "region": "region",
    "iris": "iris",
    "qpv": "qpv",
    "qpv epci": "qpv_epci",
    "ensemble qpv": "ensemble_qpv",
    "ensemble des qpv": "ensemble_qpv",
}


@dataclass
class ReferenceFile:
    """What one file of raw/referentiels gave."""

    path: Path
    kind: str  # 'valeurs_reference' | 'passage_qpv'
    rows: pd.DataFrame
    rejects: pd.DataFrame
    report: dict = field(default_factory=dict)


def list_reference_files(folder: Path) -> list[Path]:
    return list_files(folder, TABLE_SUFFIXES)


def _header_score(rows: Sequence[Sequence[Any]], k: int) -> float | None:
    """A header names the reference-value columns, or heads columns of QPV 2015 and 2024 codes."""
    texts = [cell_str(c, strip=False) for c in rows[k]]
    below = [[cell_str(c, strip=False) for c in r] for r in rows[k + 1 : k + 50]]
    return 1 if kind_of(texts, below) else None


def _table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]], str, dict[int, str]]:
    """Header, non-blank rows, decimal mark and rows of the wrong field count (line -> reason)
    of a CSV or of the first XLSX sheet whose header names known columns; ([], [], ",", {})
    when no table of this module is found. Two columns of the same name are refused."""
    for table in read_tables(path, _header_score, HEADER_SCAN):
        if table.header_index is None:
            continue
        strip = table.format == "xlsx"
        header = [cell_str(c, strip=strip) for c in table.header]
        check_unique_header(header, fold, table.where())
        misshapen = {r.line: e for r in table.data if (e := table.field_count_error(r))}
        rows = [
            (r.line, [cell_str(c, strip=strip) for c in r.cells]) for r in table.data if not r.blank
        ]
        return header, rows, decimal_mark(c for _, cells in rows[:200] for c in cells), misshapen
    return [], [], ",", {}


def _column(header: list[str], name: str) -> int | None:
    folded = [fold(h) for h in header]
    for alias in [name.replace("_", " "), *_ALIASES.get(name, [])]:
        if alias in folded:
            return folded.index(alias)
    return None


def _code_columns(rows: list[list[str]], width: int) -> tuple[list[int], list[int]]:
    """(columns of QPV 2015 codes, columns of QPV 2024 codes), found by their values."""
    c15, c24 = [], []
    for j in range(width):
        values = [r[j].strip().upper() for r in rows if j < len(r) and r[j].strip()]
        if not values:
            continue
        if sum(bool(QPV_2015.match(v)) for v in values) >= max(1, len(values) // 2):
            c15.append(j)
        elif sum(bool(QPV_2024.match(v)) for v in values) >= max(1, len(values) // 2):
            c24.append(j)
    return c15, c24


def kind_of(header: list[str], sample: list[list[str]]) -> str | None:
    """'valeurs_reference', 'passage_qpv' or None (a file for another reader)."""
    if all(_column(header, c) is not None for c in ("territoire_code", "indicateur", "valeur")):
        return SOURCE_VALEURS
    c15, c24 = _code_columns(sample, len(header))
    if c15 and c24:
        return SOURCE_PASSAGE
    return None


def read_reference_file(path: Path) -> ReferenceFile | None:
    """Read one file of raw/referentiels; None when it is not a file of this module."""
    path = Path(path)
    header, rows, decimal, misshapen = _table(path)
    if not header:
        return None
    good = [(line, row) for line, row in rows if line not in misshapen]
    kind = kind_of(header, [r for _, r in good[:200]])
    if kind not in (SOURCE_VALEURS, SOURCE_PASSAGE):
        return None
    if kind == SOURCE_VALEURS:
        result = _read_valeurs(path, header, good, decimal)
    else:
        result = _read_passage(path, header, good)
    if misshapen:
        bad = [
            Reject(kind, str(path), None, line, None, None, reason).as_dict()
            for line, reason in sorted(misshapen.items())
        ]
        result.rejects = pd.concat(
            [result.rejects, pd.DataFrame(bad, columns=REJECT_COLUMNS)], ignore_index=True
        )
        result.report["lignes_lues"] += len(bad)
        result.report["lignes_rejetees"] += len(bad)
    return result


def _read_valeurs(path: Path, header: list[str], rows: list[tuple[int, list[str]]], decimal: str):
    cols = {name: _column(header, name) for name in _ALIASES}
    out, rejects = [], []

    def cell(row: list[str], name: str) -> str:
        j = cols[name]
        return row[j].strip() if j is not None and j < len(row) else ""

    def reject(line, column, raw, motif):
        rejects.append(Reject(SOURCE_VALEURS, str(path), None, line, column, raw, motif).as_dict())

    for line, row in rows:
        code = cell(row, "territoire_code").upper()
        kind_raw = cell(row, "territoire_type")
        kind = _TYPES.get(fold(kind_raw)) if kind_raw else _guess_type(code)
        if kind is None:
            reject(line, "territoire_type", kind_raw or code, "type de territoire inconnu")
            continue
        if not code:
            reject(line, "territoire_code", None, "code territoire vide")
            continue
        indicateur = cell(row, "indicateur")
        if not indicateur:
            reject(line, "indicateur", None, "indicateur vide")
            continue
        raw_value = cell(row, "valeur")
        if raw_value.lower() in SECRET_MARKERS:
            reject(line, "valeur", raw_value, "valeur absente ou sous secret")
            continue
        try:
            valeur = parse_number(raw_value, decimal)
        except ValueError:
            reject(line, "valeur", raw_value, "valeur non numérique")
            continue
        year_raw = cell(row, "millesime")
        millesime = None
        if year_raw:
            if not re.match(r"^\d{4}$", year_raw):
                reject(line, "millesime", year_raw, "millésime non reconnu (année sur 4 chiffres)")
                continue
            millesime = int(year_raw)
        if kind in ("commune",) and re.match(r"^\d{4}$", code):
            code = code.zfill(5)
        out.append(
            {
                "territoire_type": kind,
                "territoire_code": "FRANCE" if kind == "france" else code,
                "libelle_territoire": cell(row, "libelle_territoire") or None,
                "millesime": millesime,
                "indicateur": indicateur,
                "valeur": valeur,
                "source": cell(row, "source") or path.name,
                "note": cell(row, "note") or None,
                "fichier": str(path),
                "ligne": line,
            }
        )
    frame = pd.DataFrame(out, columns=VALEURS_COLUMNS)
    return ReferenceFile(
        path,
        SOURCE_VALEURS,
        frame,
        pd.DataFrame(rejects, columns=REJECT_COLUMNS),
        {"lignes_lues": len(rows), "lignes_chargees": len(frame), "lignes_rejetees": len(rejects)},
    )


def _guess_type(code: str) -> str | None:
    if code in FRANCE_CODES:
        return "france"
    if EPCI.match(code):
        return "epci"
    if re.match(r"^(\d{4,5}|2[AB]\d{3})$", code):
        return "commune"
    if QPV_2015.match(code) or QPV_2024.match(code):
        return "qpv"
    return None


def _read_passage(path: Path, header: list[str], rows: list[tuple[int, list[str]]]):
    width = max([len(header)] + [len(r) for _, r in rows])
    c15, c24 = _code_columns([r for _, r in rows], width)
    if not c15 or not c24:  # codes of both generations in the head, not over the whole file
        raise IngestionError(
            f"{path}: table de passage : aucune colonne où les codes QPV 2015 (QP...) ou 2024 "
            "(QN...) sont majoritaires sur l'ensemble du fichier"
        )
    folded = [fold(h) for h in header] + [""] * (width - len(header))
    # the main column is the first code column; the others are its links (QP2015_1, _2, ...)
    main_is_2024 = min(c24) < min(c15)
    main = min(c24) if main_is_2024 else min(c15)
    links = c15 if main_is_2024 else c24
    statut = next((j for j, h in enumerate(folded) if h.startswith(("statut", "status"))), None)

    def label_of(code_col: int) -> int | None:
        """A label column next to a code column (Label_QP2024 / Lib_QP2015_1...)."""
        name = folded[code_col].replace(" ", "")
        for j, h in enumerate(folded):
            compact = h.replace(" ", "")
            if j != code_col and compact.startswith(("label", "lib", "nom")) and name in compact:
                return j
        nxt = code_col + 1
        if nxt < width and folded[nxt].startswith(("label", "lib", "nom")):
            return nxt
        return None

    main_label = label_of(main)
    labels = {j: label_of(j) for j in links}
    out, rejects = [], []
    for line, row in rows:
        row = row + [""] * (width - len(row))
        code = row[main].strip().upper()
        if not code:
            continue
        pattern = QPV_2024 if main_is_2024 else QPV_2015
        if not pattern.match(code):
            rejects.append(
                Reject(
                    SOURCE_PASSAGE,
                    str(path),
                    None,
                    line,
                    header[main],
                    row[main],
                    "code QPV invalide",
                ).as_dict()
            )
            continue
        linked = [(k, j) for k, j in enumerate(links, start=1) if row[j].strip()]
        for rank, j in linked:
            other = row[j].strip().upper()
            other_pattern = QPV_2015 if main_is_2024 else QPV_2024
            if not other_pattern.match(other):
                rejects.append(
                    Reject(
                        SOURCE_PASSAGE,
                        str(path),
                        None,
                        line,
                        header[j] if j < len(header) else None,
                        row[j],
                        "code QPV invalide",
                    ).as_dict()
                )
                continue
            lab_main = row[main_label].strip() if main_label is not None else ""
            lab_other = row[labels[j]].strip() if labels[j] is not None else ""
            pair = (
                (other, lab_other, code, lab_main)
                if main_is_2024
                else (code, lab_main, other, lab_other)
            )
            out.append(
                {
                    "code_qpv_2015": pair[0],
                    "libelle_qpv_2015": pair[1] or None,
                    "code_qpv_2024": pair[2],
                    "libelle_qpv_2024": pair[3] or None,
                    "statut": row[statut].strip() or None if statut is not None else None,
                    "rang": rank,
                    "fichier": str(path),
                    "ligne": line,
                }
            )
        if not linked:
            # a QPV with no counterpart (new in 2024, or left the geography): kept, one side NULL
            out.append(
                {
                    "code_qpv_2015": None if main_is_2024 else code,
                    "libelle_qpv_2015": None,
                    "code_qpv_2024": code if main_is_2024 else None,
                    "libelle_qpv_2024": None,
                    "statut": row[statut].strip() or None if statut is not None else None,
                    "rang": 0,
                    "fichier": str(path),
                    "ligne": line,
                }
            )
            if main_label is not None:
                key = "libelle_qpv_2024" if main_is_2024 else "libelle_qpv_2015"
                out[-1][key] = row[main_label].strip() or None
    frame = pd.DataFrame(out, columns=PASSAGE_COLUMNS)
    n_rejected = len({r["ligne"] for r in rejects})
    return ReferenceFile(
        path,
        SOURCE_PASSAGE,
        frame,
        pd.DataFrame(rejects, columns=REJECT_COLUMNS),
        {
            "lignes_lues": len(rows),
            "lignes_chargees": len(rows) - n_rejected,
            "lignes_rejetees": n_rejected,
        },
    )


VALEURS_KEY = ["territoire_type", "territoire_code", "millesime", "indicateur"]


def check_unique_values(frame: pd.DataFrame | None) -> None:
    """Two reference values for one territory, millésime and indicator (in one file or two)
    are refused naming both files and lines when they differ; an exact repeat is harmless."""
    if frame is None or frame.empty:
        return
    keyed = frame.assign(_m=pd.to_numeric(frame["millesime"]).fillna(-1))
    key = ["territoire_type", "territoire_code", "_m", "indicateur"]
    dup = keyed[keyed.duplicated(key, keep=False)]
    if dup.empty:
        return
    for _, group in dup.groupby(key, sort=False, dropna=False):
        if group["valeur"].nunique(dropna=False) > 1:
            a = group.iloc[0]
            b = group[group["valeur"] != a["valeur"]].iloc[0]
            year = "" if a["_m"] == -1 else f", millésime {int(a['_m'])}"
            raise IngestionError(
                f"{a['fichier']}, ligne {a['ligne']} et {b['fichier']}, ligne {b['ligne']} : "
                f"deux valeurs de référence pour {a['indicateur']}, {a['territoire_type']} "
                f"{a['territoire_code']}{year} ({a['valeur']:g} et {b['valeur']:g}) : en garder "
                "une seule"
            )
