"""Cells of the programmation and bilan exports: shares, SIRET, codes, QPV, dossiers, file names.

The generic parsers (amounts, dates, yes/no, small integers, text) are
:mod:`pipelines.lib.cells`'s, re-exported here for the readers of the two sources. Every parser
returns None for an empty cell and raises ValueError with a French reason for a cell it cannot
read (the line is then rejected with its column).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipelines.lib.cells import (
    cell_text,
    fold,
    is_empty,
    parse_amount,
    parse_bool,
    parse_count,
    parse_date,
    parse_small_int,
)
from pipelines.lib.codes import QPV_LIKE_IN_TEXT, siren_valid, siret_digits, siret_valid
from pipelines.lib.files import years_in_name

__all__ = [
    "cell_text",
    "check_siret",
    "is_empty",
    "parse_amount",
    "parse_bool",
    "parse_count",
    "parse_date",
    "parse_marqueur",
    "parse_share",
    "parse_small_int",
    "qpv_codes",
    "split_code",
    "split_dossier",
    "territory_from_path",
    "year_from_path",
]

_ALL_QPV = re.compile(
    r"\b(tous|toutes|ensemble)\b.*\b(qpv|quartiers?)\b|\bqpv\b.*\b(tous|ensemble)\b|"
    r"\btous\s+quartiers\b"
)
_MULTI_YEAR_SUFFIX = re.compile(r"^(?P<base>.*\S)[-_/](?P<suffix>0[1-9])$")
_TERRITORY_TOKEN = re.compile(r"^[A-Z][A-Z0-9]+$")


def parse_share(value: Any) -> float | None:
    """A share between 0 and 1 from ``75 %``, ``75``, ``0,75`` or an Excel percentage."""
    if is_empty(value):
        return None
    has_percent = isinstance(value, str) and "%" in value
    number = parse_amount(value.replace("%", "") if isinstance(value, str) else value)
    if number is None:
        return None
    share = number / 100 if has_percent or number > 1 else number
    if not 0 <= share <= 1:
        raise ValueError("pourcentage hors de 0-100 %")
    return round(share, 6)


def parse_marqueur(value: Any) -> str | None:
    """Marqueur égalité level as text: ``'0'``, ``'0+'``, ``'1'``, ``'2'`` (others kept as-is)."""
    if is_empty(value):
        return None
    if isinstance(value, int | float) and float(value).is_integer():
        return str(int(value))
    text = cell_text(value) or ""
    compact = re.sub(r"(?i)niveau|marqueur|égalité|egalite|\s", "", text)
    return compact or text


def check_siret(value: Any) -> tuple[str | None, str | None, bool | None]:
    """(SIRET, SIREN, valid) from a SIRET or SIREN cell.

    Valid means 14 (or 9) digits with a correct key, checked by ``python-stdnum``
    (:mod:`pipelines.lib.codes`). Spaces, dots and dashes are ignored. Returns (raw text, None,
    False) for a value that is not 9 or 14 digits; (None, None, None) for an empty cell.
    """
    if is_empty(value):
        return None, None, None
    digits = siret_digits(value if not isinstance(value, str) else cell_text(value) or "")
    if re.fullmatch(r"\d{14}", digits):
        return digits, digits[:9], siret_valid(digits)
    if re.fullmatch(r"\d{9}", digits):
        return None, digits, siren_valid(digits)
    return cell_text(value), None, False


def split_code(value: Any) -> tuple[str | None, str | None]:
    """``'O2 - Accompagner la santé'`` -> ``('O2', 'Accompagner la santé')``; no label -> (cell,
    None)."""
    text = cell_text(value)
    if text is None:
        return None, None
    match = re.match(r"^(.+?)\s+[-–—]\s+(.+)$", text)
    if match:
        return match.group(1).strip(), match.group(2).strip()
    return text, None


def qpv_codes(value: Any) -> str | None:
    """QPV codes found in a cell, ';'-joined in order, or 'TOUS' for an all-QPV wording."""
    text = cell_text(value)
    if text is None:
        return None
    found = list(dict.fromkeys(QPV_LIKE_IN_TEXT.findall(text.upper())))
    if found:
        return ";".join(found)
    if _ALL_QPV.search(fold(text)):
        return "TOUS"
    return None


def split_dossier(dossier: str | None) -> tuple[str | None, bool]:
    """(dossier without its ``-01``/``-02`` multi-year suffix, whether it had one)."""
    if dossier is None:
        return None, False
    match = _MULTI_YEAR_SUFFIX.match(dossier)
    if match:
        return match.group("base"), True
    return dossier, False


def territory_from_path(path: Path) -> str | None:
    """First token of the file name, else the parent folder name, when it is an upper-case code."""
    first = re.split(r"[_\-\s.]+", path.stem)[0]
    if _TERRITORY_TOKEN.match(first):
        return first
    if _TERRITORY_TOKEN.match(path.parent.name):
        return path.parent.name
    return None


def year_from_path(path: Path) -> int | None:
    """The 4-digit year in the file name (the first one): the year of a programmation or bilan."""
    years = years_in_name(path)
    return years[0] if years else None
