"""Codes of the territories and of the organisations, written once.

* QPV: 2015-2023 geography ``QP`` + département (3 characters, ``02A``/``02B`` for Corsica) + 3
  digits (``QP059020``); from 2024 ``QN`` + département + 2 digits + one letter N, M, I or C
  (``QN05920M``). :data:`QPV_LIKE` (either prefix, either ending) finds the column or the cell
  that holds codes; only :func:`geographie_of` says whether a code is valid, and of which
  geography.
* INSEE territories: commune (``59606``, ``2A004``), IRIS (commune + 4 digits), EPCI (SIREN, 9
  digits), département, région; spreadsheets lose leading zeros: :func:`split_codes` and
  :func:`normalise_departement` give them back.
* Organisations: SIRET (14 digits) and SIREN (9 digits) checked with ``python-stdnum``
  (Luhn key; La Poste's establishments use their own rule, which the library knows).
"""

from __future__ import annotations

import re
from typing import Any

from stdnum.fr import siren as _siren
from stdnum.fr import siret as _siret

_DEP = r"(?:\d{3}|02[AB])"
_LIKE = rf"Q[PN]{_DEP}\d{{2}}[0-9NMIC]"

QPV_2015 = re.compile(rf"^QP{_DEP}\d{{3}}$")
QPV_2024 = re.compile(rf"^QN{_DEP}\d{{2}}[NMIC]$")
#: A string shaped like a QPV code of either geography (validity: :func:`geographie_of`).
QPV_LIKE = re.compile(rf"^{_LIKE}$")
#: The same inside a text (``"QN05922M - Cité Thiers"``), not glued to other letters or digits.
QPV_LIKE_IN_TEXT = re.compile(rf"(?<![A-Z0-9]){_LIKE}(?![A-Z0-9])")

COMMUNE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
IRIS = re.compile(r"^(\d{5}|2[AB]\d{3})\d{4}$")
EPCI = re.compile(r"^\d{9}$")
DEPARTEMENT = re.compile(r"^(\d{2,3}|2[AB])$")
REGION = re.compile(r"^\d{2}$")
#: Codes written for the whole country in the indicator files.
FRANCE_CODES = frozenset({"FRANCE", "FR", "FRM", "FE", "FM", "FRANCE METROPOLITAINE", "METRO"})


def geographie_of(code: str | None) -> str | None:
    """``'2015'`` or ``'2024'`` from a QPV code's pattern; None when it is not a QPV code."""
    if not code:
        return None
    if QPV_2024.match(code):
        return "2024"
    if QPV_2015.match(code):
        return "2015"
    return None


def is_qpv_code(code: str | None) -> bool:
    """True for a valid QPV code of either geography (upper case expected)."""
    return geographie_of(code) is not None


# --------------------------------------------------------------------------------------------
# SIRET / SIREN
# --------------------------------------------------------------------------------------------


def siret_digits(value: Any) -> str:
    """The digits of a SIRET/SIREN cell: spaces, dots, dashes and slashes removed; a number
    read by a spreadsheet gets its leading zeros back (9 or 14 digits)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        digits = str(int(value))
        return digits.zfill(9) if len(digits) <= 9 else digits.zfill(14)
    return re.sub(r"[\s.\-/]", "", str(value))


def siret_valid(digits: str) -> bool:
    """A 14-digit SIRET with a correct key (its SIREN included), per ``stdnum.fr.siret``."""
    return _siret.is_valid(digits)


def siren_valid(digits: str) -> bool:
    """A 9-digit SIREN with a correct Luhn key, per ``stdnum.fr.siren``."""
    return _siren.is_valid(digits)


# --------------------------------------------------------------------------------------------
# INSEE codes in spreadsheet cells
# --------------------------------------------------------------------------------------------


def unescape_excel(value: str) -> str:
    """Remove Excel text escaping: ``="60057"`` (and its CSV-quoted form) gives ``60057``.

    The raw CSV field (``"=""60057"`` followed by three double quotes) is handled as well.
    """
    text = value.strip()
    while True:
        previous = text
        if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
            text = text[1:-1].replace('""', '"').strip()
        if text.startswith("="):
            text = text[1:].strip()
        if text == previous:
            return text


def _normalise_code_token(token: str, width: int) -> str | None:
    """One numeric code token: quotes and ``.0`` suffixes removed, leading zeros restored."""
    token = token.replace('"', "").replace("=", "").strip().upper()
    if not token:
        return None
    if re.fullmatch(r"\d+\.0+", token):
        token = token.split(".")[0]
    if token.isdigit() and len(token) < width:
        token = token.zfill(width)
    return token


def split_codes(text: str | None, width: int = 5) -> list[str]:
    """Split a multi-valued code field (``;``, ``,`` or blanks) into normalised codes
    (``width`` digits: 5 for communes, 9 for EPCI, 0 to keep them as written)."""
    if text is None:
        return []
    codes = [_normalise_code_token(tok, width) for tok in re.split(r"[;,\s]+", text)]
    return [code for code in codes if code]


def normalise_departement(text: str | None) -> str | None:
    """Département codes: '1' -> '01', '2a' -> '2A', '971' kept; several joined by ``;``."""
    out: list[str] = []
    for token in split_codes(text, width=0):
        if token.isdigit():
            number = int(token)
            token = f"{number:02d}" if number < 100 else str(number)
        out.append(token)
    return ";".join(dict.fromkeys(out)) or None
