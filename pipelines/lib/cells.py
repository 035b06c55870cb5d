"""Cell parsers shared by every reader: numbers, dates, yes/no, text.

Numbers: one parser, :func:`parse_number`, for INSEE bases, local indicator tables, reference
values and programmation amounts. The rule:

1. Blank text gives None. Spaces of any kind (space, NBSP U+00A0, U+202F, U+2009, U+2007, tab)
   and apostrophes are thousands separators and are dropped, with ``€``/``EUR``/``euros`` and
   ``%`` (``"12,5 %"`` is 12.5: the caller knows the unit). ``(12)`` is -12, U+2212 is a minus
   sign. ``"-"`` alone is not a number (ValueError): callers that accept "no value" markers
   (:func:`is_empty`) check them first. No exponents, no ``nan``.
2. The decimal mark follows the file's convention, ``decimal`` (``","`` French, the default, or
   ``"."``): :func:`decimal_mark` finds a file's convention from its unambiguous cells.
3. A number written with both ``,`` and ``.`` is unambiguous: the last one is the decimal mark
   and the other groups thousands (``1.075,50`` and ``1,075.50`` are 1075.5).
4. With one kind of separator: the convention's decimal mark may appear once (``44,6``); the
   other mark groups thousands when it separates groups of exactly three digits (``1.075`` and
   ``1.075.000`` in a French file, ``1,075`` in an English file), else a single one is taken as
   a decimal mark typed the other way (``44.6`` in a French file).

So ``"1.075"`` is 1075 in a French file and 1.075 in an English one, ``"1 075"`` is 1075,
``"1 075,50"`` 1075.5, ``"12,5 %"`` 12.5, ``"(12)"`` -12, ``""`` None, ``"-"`` an error.

Encoding of text files: see :func:`pipelines.lib.tables.decode_text` (UTF-8 only, refused
otherwise with the line).
"""

from __future__ import annotations

import math
import re
import sys
import unicodedata
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from pipelines.lib.codes import unescape_excel

#: Markers of values under statistical secrecy or not available in indicator files.
SECRET_MARKERS = frozenset({"", "s", "nd", "ns", "nc", "secret", "c", "so", "n.d.", "n.s."})
#: Cells that mean "no value" in programmation and bilan exports (compared after :func:`fold`).
EMPTY_MARKERS = frozenset(
    {"", "-", "--", "—", "–", "nc", "n c", "na", "n a", "sans objet", "so", "null"}
)

_JUNK = re.compile(r"[\s\u00a0\u202f\u2009\u2007'’€%]|eur(?:os?)?$", re.IGNORECASE)
_NUMBER = re.compile(r"^[+-]?[\d.,]*\d[\d.,]*$")
_EVIDENCE = {
    ",": re.compile(r"^[+-]?\d*(\.\d{3})*,(\d{1,2}|\d{4,})$|^[+-]?\d*\.\d+,\d+$"),
    ".": re.compile(r"^[+-]?\d*(,\d{3})*\.(\d{1,2}|\d{4,})$|^[+-]?\d*,\d+\.\d+$"),
}


def _digits(text: str, group: str) -> str:
    """An integer part, maybe grouped by ``group``: the digits, or ValueError."""
    if group in text:
        if not re.fullmatch(rf"\d{{1,3}}(\{group}\d{{3}})+", text):
            raise ValueError(f"séparateur de milliers mal placé: {text!r}")
        return text.replace(group, "")
    if text and not text.isdigit():
        raise ValueError(f"nombre illisible: {text!r}")
    return text


def parse_number(raw: str | None, decimal: str = ",") -> float | None:
    """A number written the French or the English way (see the module docstring for the rule).

    Returns None for blank text and raises ValueError for text that is not a number.
    """
    if raw is None:
        return None
    text = _JUNK.sub("", str(raw).strip()).replace("\u2212", "-")
    if text == "":
        return None
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1]
    if not _NUMBER.match(text):
        raise ValueError(f"nombre illisible: {raw!r}")
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    other = "." if decimal == "," else ","
    if "," in body and "." in body:
        mark = "," if body.rfind(",") > body.rfind(".") else "."
        group = "." if mark == "," else ","
        integer, fraction = body.rsplit(mark, 1)
        integer = _digits(integer, group)
    elif body.count(decimal) == 1:
        integer, fraction = body.split(decimal)
        integer = _digits(integer, other)
    elif decimal in body:
        raise ValueError(f"plusieurs séparateurs décimaux: {raw!r}")
    elif re.fullmatch(rf"\d{{1,3}}(\{other}\d{{3}})+", body):
        integer, fraction = body.replace(other, ""), ""
    elif body.count(other) == 1:
        integer, fraction = body.split(other)
    elif other in body:
        raise ValueError(f"séparateur de milliers mal placé: {raw!r}")
    else:
        integer, fraction = body, ""
    if (fraction and not fraction.isdigit()) or not (integer or fraction):
        raise ValueError(f"nombre illisible: {raw!r}")
    if fraction == "" and body[-1:] in {",", "."}:
        raise ValueError(f"nombre illisible: {raw!r}")
    value = float(f"{integer or 0}.{fraction or 0}")
    return -value if negative else sign * value


def decimal_mark(cells: Iterable[str], default: str = ",", enough: int = 100) -> str:
    """The decimal mark of a file from its cells: ``","`` or ``"."``, whichever appears in
    more cells where it cannot be a thousands separator (``44,6``, ``41.5``, ``1.075,5``), the
    count stopping when one mark has ``enough`` cells; ``default`` (French) when no cell
    tells."""
    votes = {",": 0, ".": 0}
    for cell in cells:
        if "," not in cell and "." not in cell:
            continue
        text = _JUNK.sub("", cell)
        for mark, pattern in _EVIDENCE.items():
            if pattern.match(text):
                votes[mark] += 1
        if max(votes.values()) >= enough:
            break
    if votes[","] == votes["."]:
        return default
    return "," if votes[","] > votes["."] else "."


@lru_cache(maxsize=200_000)
def number_or_none(cell: str, decimal: str = ",") -> float | None:
    """:func:`parse_number` memoised (values repeat a lot), None when not a number."""
    try:
        return parse_number(cell, decimal)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=200_000)
def fold(text: str) -> str:
    """Lower case, no accents, single spaces: to compare labels and header aliases.

    Memoised (labels, headers and codes repeat from line to line and file to file); an ASCII
    text has no accent to drop (its NFKD form is itself), so only the others are decomposed.
    """
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = _LATIN_ACCENTS.sub("", decomposed)  # the usual accents, all combining marks
        if not text.isascii():  # other characters (€, ’, other scripts): every mark dropped
            text = _combining_marks().sub("", text)
    return _NOT_ALNUM.sub(" ", text.lower()).strip()


#: Combining diacritical marks U+0300-U+036F, but U+034F (grapheme joiner, not a combining mark)
_LATIN_ACCENTS = re.compile("[\u0300-\u034e\u0350-\u036f]+")


@lru_cache(maxsize=1)
def _combining_marks() -> re.Pattern[str]:
    """Every character of non-zero canonical combining class (``unicodedata.combining``), as
    one character class: built once (0.2 s), the first time a text has other characters than
    ASCII and the usual accents."""
    ranges: list[list[int]] = []
    for code in range(0x300, sys.maxunicode + 1):
        if unicodedata.combining(chr(code)):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    parts = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )
    return re.compile(f"[{parts}]+")


def normalise_header(name: str) -> str:
    """Header as a variable name: stripped of spaces/BOM, upper case (``'EVOL_CA_N_E '``)."""
    return name.replace("\ufeff", "").strip().strip("\u00a0\u202f").strip().upper()


def cell_str(value: Any, *, strip: bool = True, unescape: bool = False) -> str:
    """A cell as written: ``""`` for an empty cell (None, NaN), integral floats without their
    ``.0`` (spreadsheets store ``1075`` as ``1075.0``), numpy scalars as Python ones; stripped
    unless ``strip=False``; Excel escaping ``="60057"`` removed when ``unescape``."""
    if value is None:
        return ""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalar
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            value = int(value)
    text = str(value)
    if unescape:
        return unescape_excel(text)
    return text.strip() if strip else text


def cell_text(value: Any) -> str | None:
    """A cell as normalised text: None when empty, integral floats without ``.0``, dates
    without time, NBSP/U+202F as spaces, runs of spaces as one space."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime):
        value = value.date()
    text = " ".join(str(value).replace("\u00a0", " ").replace("\u202f", " ").split())
    return text or None


def is_empty(value: Any) -> bool:
    """An empty cell or a "no value" marker (``-``, ``nc``, ``sans objet``: EMPTY_MARKERS)."""
    text = cell_text(value)
    return text is None or fold(text) in EMPTY_MARKERS


# --------------------------------------------------------------------------------------------
# Typed cells of the exports (raise ValueError with a French reason when a cell does not parse)
# --------------------------------------------------------------------------------------------


def parse_amount(value: Any) -> float | None:
    """An amount in euros: a spreadsheet number as it is, text through :func:`parse_number`
    with the French convention (``12 500,00 €``, ``12.500``, ``12500.5``); empty -> None
    (never 0)."""
    if is_empty(value):
        return None
    if isinstance(value, bool):
        raise ValueError("montant illisible")
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    try:
        if "%" in text:  # a share is not an amount
            raise ValueError(text)
        return parse_number(text, ",")
    except ValueError:
        raise ValueError("montant illisible") from None


def parse_count(value: Any) -> int | None:
    """A head count: a non-negative integer (``12``, ``12,0``, ``1 250``); empty -> None."""
    if is_empty(value):
        return None
    if isinstance(value, bool):
        raise ValueError("effectif entier positif attendu")
    try:
        if isinstance(value, int | float):
            number = float(value)
        elif "%" in str(value):
            raise ValueError(str(value))
        else:
            number = parse_number(str(value))
    except ValueError:
        raise ValueError("effectif entier positif attendu") from None
    if number is None or number < 0 or not number.is_integer():
        raise ValueError("effectif entier positif attendu")
    return int(number)


_DATE_FORMATS = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d", "%Y/%m/%d", "%d/%m/%y")
_EXCEL_EPOCH = date(1899, 12, 30)


def parse_date(value: Any) -> date | None:
    """``dd/mm/yyyy`` (and usual variants), ISO dates, Excel dates or serial numbers (20000 to
    80000, i.e. 1954-2119); empty -> None."""
    if is_empty(value):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and 20000 <= value <= 80000:
        return _EXCEL_EPOCH + timedelta(days=int(value))
    text = str(value).strip().split(" ")[0].split("T")[0]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    if re.fullmatch(r"\d{5}", text) and 20000 <= int(text) <= 80000:
        return _EXCEL_EPOCH + timedelta(days=int(text))
    raise ValueError("date illisible (jj/mm/aaaa attendu)")


_TRUE = {"oui", "o", "yes", "y", "x", "1", "vrai", "true", "cpo"}
_FALSE = {"non", "n", "no", "0", "faux", "false"}


def parse_bool(value: Any) -> bool | None:
    """Oui/Non (and usual variants) -> bool; empty -> None."""
    if is_empty(value):
        return None
    text = fold(cell_text(value) or "")
    if text in _TRUE or text.startswith("oui"):
        return True
    if text in _FALSE or text.startswith("non"):
        return False
    raise ValueError("valeur oui/non attendue")


_ORDINALS = {"premiere": 1, "premier": 1, "deuxieme": 2, "seconde": 2, "second": 2, "troisieme": 3}


def parse_small_int(value: Any) -> int | None:
    """``3``, ``3 ans``, ``2e année``, ``Année 2``, ``deuxième année`` -> int."""
    if is_empty(value):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if float(value).is_integer():
            return int(value)
        raise ValueError("nombre entier attendu")
    text = fold(cell_text(value) or "")
    match = re.search(r"\d+", text)
    if match:
        return int(match.group())
    for word, number in _ORDINALS.items():
        if word in text.split():
            return number
    raise ValueError("nombre entier attendu")
