"""Shared parsing helpers: codes, French numbers, text decoding, rejects."""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

QPV_2015 = re.compile(r"^QP(\d{3}|02[AB])\d{3}$")
QPV_2024 = re.compile(r"^QN(\d{3}|02[AB])\d{2}[NMIC]$")
QPV_ANY = re.compile(r"^Q[PN](\d{3}|02[AB])\d{2}[0-9NMIC]$")

REJECT_COLUMNS = ["source", "fichier", "feuille", "ligne", "colonne", "valeur_brute", "motif"]

# Markers INSEE and others use for values under statistical secrecy or not available.
SECRET_MARKERS = {"", "s", "nd", "ns", "nc", "secret", "c", "so", "n.d.", "n.s."}

_SPACES = dict.fromkeys(map(ord, " \u00a0\u202f\u2009\u2007\t'"), None)
_YEAR = re.compile(r"(?<!\d)(19[89]\d|20\d\d)(?!\d)")


class IngestionError(Exception):
    """A raw file cannot be read at all. The message names the file (and line when known)."""


@dataclass
class Reject:
    source: str
    fichier: str
    feuille: str | None
    ligne: int | None
    colonne: str | None
    valeur_brute: str | None
    motif: str

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in REJECT_COLUMNS}


def geographie_of(code: str) -> str | None:
    """'2015' or '2024' from a QPV code's pattern, None when it is not a QPV code."""
    if QPV_2024.match(code):
        return "2024"
    if QPV_2015.match(code):
        return "2015"
    return None


def millesime_from_name(name: str) -> int | None:
    """The 4-digit year in a file name (``IPRO_2022.csv`` -> 2022); the last one if several."""
    years = _YEAR.findall(Path(name).stem)
    return int(years[-1]) if years else None


def parse_number(raw: str | None) -> float | None:
    """Parse a number written the French way or the English way.

    ``'1 075'`` (space, NBSP or U+202F thousands), ``'44,6'``, ``'-9,2'``, ``'1.075,5'``,
    ``'12 500,00 €'``, ``'75 %'`` and ``'44.6'`` all parse. Returns None for empty text and
    raises ValueError for text that is not a number.
    """
    if raw is None:
        return None
    text = raw.strip().translate(_SPACES).replace("€", "").replace("%", "")
    if text == "":
        return None
    if text.startswith("(") and text.endswith(")"):
        text = "-" + text[1:-1]
    text = text.replace("\u2212", "-")
    if "," in text:
        if "." in text:
            text = text.replace(".", "")
        text = text.replace(",", ".")
    return float(text)


def normalise_header(name: str) -> str:
    """Header as a variable name: stripped of spaces/BOM, upper case (``'EVOL_CA_N_E '``)."""
    return name.replace("\ufeff", "").strip().strip("\u00a0\u202f").strip().upper()


def fold(text: str) -> str:
    """Lower case, no accents, single spaces: to compare labels and header aliases."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def decode_text(path: Path) -> str:
    """Decode a text file as UTF-8 (with or without BOM) or UTF-16 (with BOM).

    A file in another encoding (latin-1/cp1252 exports) is refused with the line and byte of the
    first undecodable character, so the user can re-export it in UTF-8: guessing silently would
    corrupt names.
    """
    data = path.read_bytes()
    if not data.strip():
        raise IngestionError(f"{path}: fichier vide")
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise IngestionError(
            f"{path}: ligne {line}: encodage non UTF-8 (octet 0x{data[err.start]:02x} à la "
            f"position {err.start}); fichier probablement en latin-1/Windows-1252: "
            "le ré-enregistrer en UTF-8"
        ) from None


def sniff_delimiter(header_line: str) -> str:
    """The separator of a delimited file, from its header line: ``;``, ``,``, tab or ``|``."""
    counts = {d: header_line.count(d) for d in (";", ",", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ";"


def read_delimited(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and data rows of a CSV of any usual dialect, with their 1-based line numbers.

    Handles BOM, CRLF/LF/CR, ``;``/``,``/tab separators and quoted fields. Blank lines are
    skipped (they are not data). The line number is the physical line where the row starts.
    """
    text = decode_text(path)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    first = next((ln for ln in text.split("\n") if ln.strip()), "")
    delimiter = sniff_delimiter(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"')
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    try:
        for record in reader:
            line = reader.line_num - _extra_lines(record)
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = record
                continue
            rows.append((line, record))
    except csv.Error as err:
        raise IngestionError(f"{path}: ligne {reader.line_num}: CSV illisible ({err})") from None
    if header is None:
        raise IngestionError(f"{path}: aucune ligne d'en-tête")
    return header, rows


def _extra_lines(record: list[str]) -> int:
    return sum(cell.count("\n") for cell in record)
