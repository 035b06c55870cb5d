"""The attribute tables of the SIG Ville files: which column is which, and their text.

The official contours and list name their columns differently from one vintage to the next
(2024: ``code_qp, lib_qp, insee_com, lib_com``; 2015 layers: ``code_qp, nom_qp, commune_qp``) and
spreadsheets damage their codes (leading zeros lost, Excel escaping ``="60057"``, several
communes in one field): this module recognises the columns and restores the codes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from pipelines.lib.cells import cell_str
from pipelines.lib.codes import COMMUNE, is_qpv_code, normalise_departement, split_codes

# Normalised column names (lower case, no accents, "_" separators) for each target attribute.
_CODE_NAMES = {
    "code_qp",
    "code_qpv",
    "codeqp",
    "codeqpv",
    "cod_qp",
    "code_quartier",
    "code_quart",
    "id_qp",
    "qp",
    "qpv",
    "quartier",
}
_LIB_NAMES = {
    "lib_qp",
    "lib_qpv",
    "nom_qp",
    "nom_qpv",
    "libelle",
    "libelle_qp",
    "libelle_qpv",
    "libelle_quartier",
    "lib_quartier",
    "nom_quartier",
    "nom",
}
_INSEE_NAMES = {
    "insee_com",
    "insee_comm",
    "insee",
    "code_insee",
    "codeinsee",
    "com_insee",
    "codgeo",
    "depcom",
    "code_com",
    "cod_com",
    "code_commune",
    "code_commu",
    "insee_commune",
}
_LIBCOM_NAMES = {
    "lib_com",
    "nom_com",
    "nom_commune",
    "nom_commu",
    "lib_commune",
    "lib_commun",
    "libelle_commune",
    "libelle_com",
    "libelle_co",
}
# Columns holding communes either as INSEE codes or as names (2015 layers: ``commune_qp``).
_COMMUNE_NAMES = {"commune_qp", "commune", "communes", "commune_q", "communes_qp"}


def clean_text(value: Any) -> str | None:
    """A raw cell as stripped, unescaped text (None for empty or missing values, NaN included)."""
    return cell_str(value, unescape=True) or None


def split_names(value: Any) -> list[str]:
    """Split a multi-valued name field on ``;`` (or on ``,`` when there is no ``;``).

    Empty names are kept as empty strings so that positions still match the codes (the national
    2024 layer has ``insee_com = "93059; 93072"`` with ``lib_com = "; Stains"``).
    """
    text = clean_text(value)
    if text is None:
        return []
    separator = ";" if ";" in text else ","
    return [cell_str(part, unescape=True) for part in text.split(separator)]


def normalise_pairs(
    codes_value: Any, names_value: Any, width: int = 5
) -> tuple[str | None, str | None]:
    """Normalise a (codes, names) pair of multi-valued fields, e.g. insee_com / lib_com.

    Codes get their leading zeros back and Excel escaping removed. When there are as many codes
    as names the pairs are sorted by code (a stable order whatever the source order) and
    de-duplicated, so that the i-th name is still the name of the i-th code; otherwise both
    lists keep their source order. Both are joined with ``;``.
    """
    codes = split_codes(clean_text(codes_value), width)
    names = split_names(names_value)
    if codes and len(codes) == len(names):
        pairs = sorted(dict.fromkeys(zip(codes, names, strict=True)))
        codes = [code for code, _ in pairs]
        names = [name for _, name in pairs]
    else:
        codes = list(dict.fromkeys(codes))
    return (";".join(codes) or None, ";".join(names) if any(names) else None)


def communes_incomplete(insee_com: str | None, lib_com: str | None) -> bool:
    """True when INSEE codes are given but some commune names are missing or unmatched."""
    if not insee_com:
        return False
    if not lib_com:
        return True
    names = lib_com.split(";")
    return len(names) != len(insee_com.split(";")) or not all(names)


def departements(value: Any) -> str | None:
    """Département codes of a cell ('1' -> '01', '2a' -> '2A'), several joined by ``;``."""
    return normalise_departement(clean_text(value))


def simple_codes(value: Any, width: int) -> str | None:
    """Codes of a cell with their leading zeros (``width`` digits), several joined by ``;``."""
    codes = split_codes(clean_text(value), width)
    return ";".join(dict.fromkeys(codes)) or None


def normalise_name(name: str) -> str:
    """Normalise a column name for matching: lower case, no accents, ``_`` separators."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _share_matching(values: Iterable[Any], predicate: Any) -> float:
    texts = [t for t in (clean_text(v) for v in values) if t is not None]
    if not texts:
        return 0.0
    return sum(1 for t in texts if predicate(t)) / len(texts)


def _is_qpv_code(text: str) -> bool:
    return is_qpv_code(text.upper())


def _is_insee_list(text: str) -> bool:
    codes = split_codes(text)
    return bool(codes) and all(COMMUNE.match(code) for code in codes)


def map_columns(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, str | None]:
    """Find the source columns for code, libelle, insee_com and lib_com (None when absent)."""
    normalised = {col: normalise_name(col) for col in columns}
    mapping: dict[str, str | None] = {"code": None, "libelle": None, "insee": None, "libcom": None}
    used: set[str] = set()

    def pick(key: str, predicate: Any) -> None:
        if mapping[key] is not None:
            return
        for col in columns:
            if col not in used and predicate(normalised[col]):
                mapping[key] = col
                used.add(col)
                return

    pick("code", lambda n: n in _CODE_NAMES or n.startswith(("code_q", "cod_q")))
    pick("insee", lambda n: n in _INSEE_NAMES)
    pick("libcom", lambda n: n in _LIBCOM_NAMES)
    # 2015 layers: `commune_qp` holds names (or codes): decide from the values.
    for col in columns:
        if col in used or normalised[col] not in _COMMUNE_NAMES:
            continue
        key = "insee" if _share_matching(frame[col].head(200), _is_insee_list) >= 0.8 else "libcom"
        if mapping[key] is None:
            mapping[key] = col
            used.add(col)
    pick(
        "libelle",
        lambda n: n in _LIB_NAMES or n.startswith(("lib_q", "nom_q", "libelle_q", "libelle")),
    )
    if mapping["code"] is None:
        # Unknown name: take the column whose values look like QPV codes.
        best, best_share = None, 0.0
        for col in columns:
            if col in used:
                continue
            share = _share_matching(frame[col].head(500), _is_qpv_code)
            if share > best_share:
                best, best_share = col, share
        if best is not None and best_share >= 0.5:
            mapping["code"] = best
            used.add(best)
    return mapping
