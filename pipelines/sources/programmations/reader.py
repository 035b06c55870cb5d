"""Read programmation exports (Dauphin, GISPRO, local Excel tables) of any layout.

A programmation file lists the actions funded in a year. Real exports differ by territory and by
year: separator, encoding, header wording, title rows above the header, one row per action ×
financeur ("long" format, a ``Financeur`` column) or one row per action with a pair of columns per
financeur ("wide" format, ``État (BOP 147) - demandé`` / ``Montant accordé Région``). This module
finds the header row by scoring rows against the header aliases of ``entetes_alias.csv`` (data, not
code), maps each column to a field, and returns one row per action × financeur with every line of
every file either loaded or rejected with its reason (file, line, column).

The table-reading helpers here (``read_tables``, ``load_aliases``, value parsers) are shared with
``pipelines.sources.bilans.reader``.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.lib.tables import REJECT_COLUMNS, IngestionError, decode_text, fold

ALIASES_FILE = Path(__file__).with_name("entetes_alias.csv")
HEADER_SCAN_ROWS = 20
DELIMITERS = (";", ",", "\t", "|")
ANOMALY_COLUMNS = ["type", "fichier", "ligne", "dossier", "message", "colonne", "valeur_brute"]
QPV_INCONNU = "qpv_inconnu"
FILE_COLUMNS = ["fichier", "feuille", "format", "lignes_lues", "lignes_chargees", "lignes_rejetees"]

# Words dropped when comparing headers: "Numéro de dossier" matches "Numéro dossier".
_STOP_WORDS = {"de", "du", "des", "la", "le", "les", "l", "d", "en", "a", "au", "aux", "et"}
_EMPTY_MARKERS = {"", "-", "--", "—", "–", "nc", "n c", "na", "n a", "sans objet", "so", "null"}
_QPV_CODE = re.compile(r"(?<![A-Z0-9])Q[PN](?:\d{3}|02[AB])\d{2}[0-9NMIC](?![A-Z0-9])")
_ALL_QPV = re.compile(
    r"\b(tous|toutes|ensemble)\b.*\b(qpv|quartiers?)\b|\bqpv\b.*\b(tous|ensemble)\b|"
    r"\btous\s+quartiers\b"
)
_MULTI_YEAR_SUFFIX = re.compile(r"^(?P<base>.*\S)[-_/](?P<suffix>0[1-9])$")
_TERRITORY_TOKEN = re.compile(r"^[A-Z][A-Z0-9]+$")
_YEAR_IN_NAME = re.compile(r"(?<!\d)(19[89]\d|20\d\d)(?!\d)")
_SEPARATORS = re.compile(r"\s+[-–—:/|]\s+|\s*[:|]\s*")

PROGRAMMATION_COLUMNS = [
    "territoire",
    "annee",
    "dossier",
    "dossier_base",
    "serie_pluriannuelle",
    "porteur_nom",
    "porteur_siret",
    "porteur_siren",
    "siret_valide",
    "porteur_type",
    "intitule",
    "orientation_code",
    "orientation_libelle",
    "objectif_code",
    "objectif_libelle",
    "objectif_parent_code",
    "qpv_codes",
    "qpv_texte",
    "echelle",
    "statut_libelle",
    "cout_total",
    "couts_indirects",
    "achats",
    "financeur_libelle",
    "montant_demande",
    "montant_accorde",
    "nature_subvention",
    "type_credits",
    "volet_regional",
    "rang_financement",
    "cpo",
    "cpo_duree",
    "marqueur_egalite",
    "part_public_qpv",
    "date_debut_action",
    "date_fin_action",
    "date_bilan",
    "date_bilan_intermediaire",
    "date_demande_report",
    "nombre_reunions_suivi",
    "suivi_renforce",
    "autres_colonnes",
    "source_fichier",
    "source_feuille",
    "source_ligne",
]

PROGRAMMATION_FIELDS = {
    "territoire",
    "annee",
    "dossier",
    "porteur_nom",
    "porteur_siret",
    "porteur_type",
    "intitule",
    "orientation",
    "objectif",
    "sous_objectif",
    "qpv",
    "echelle",
    "statut",
    "cout_total",
    "couts_indirects",
    "achats",
    "financeur",
    "montant_demande",
    "montant_accorde",
    "total_demande",
    "total_accorde",
    "cpo",
    "cpo_duree",
    "rang_financement",
    "nature_subvention",
    "type_credits",
    "marqueur_egalite",
    "part_public_qpv",
    "date_bilan",
    "date_bilan_intermediaire",
    "date_debut_action",
    "date_fin_action",
    "date_demande_report",
    "nombre_reunions_suivi",
    "suivi_renforce",
    "volet_regional",
}
AMOUNT_MEASURES = ("montant_demande", "montant_accorde")


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


def load_aliases(extra_aliases: Path | None = None) -> dict[str, str]:
    """Header key -> field name, from ``entetes_alias.csv`` then the user's extra file.

    The extra file has the same two columns (``alias,champ``) and wins over the shipped one.
    """
    aliases: dict[str, str] = {}
    for path in [ALIASES_FILE, extra_aliases]:
        if path is None:
            continue
        try:
            text = decode_text(Path(path))
        except (IngestionError, OSError) as err:
            raise SuiviError(f"{path}: fichier d'alias d'en-têtes illisible ({err})") from None
        reader = csv.DictReader(io.StringIO(text), delimiter=_sniff(text.split("\n", 1)[0]))
        if not reader.fieldnames or not {"alias", "champ"} <= set(reader.fieldnames):
            raise SuiviError(f"{path}: colonnes attendues « alias » et « champ »")
        for record in reader:
            key = header_key(record["alias"])
            if key and record["champ"]:
                aliases[key] = record["champ"].strip()
    return aliases


def _sniff(line: str) -> str:
    counts = {d: line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass
class ColumnMap:
    """Which column holds which field, plus the wide-format financeur columns."""

    fields: dict[str, int]
    wide: list[tuple[str, str, int]]  # (financeur label as written, measure field, column)
    others: list[int]
    score: int


def split_wide_header(header: str, aliases: dict[str, str]) -> tuple[str, str] | None:
    """``'État (BOP 147) - demandé'`` -> ``('État (BOP 147)', 'montant_demande')``.

    Recognises ``<financeur> - <measure>``, ``<measure> - <financeur>``, ``<measure> <financeur>``
    and ``<financeur> <measure>`` where the measure is an alias of an amount requested/granted.
    """
    text = " ".join(str(header).split())
    if not text or len(text) > 120:
        return None
    measure_words = {
        word for key, champ in aliases.items() if champ in AMOUNT_MEASURES for word in key.split()
    }
    if not measure_words & set(header_key(text).split()):
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


def map_columns(header: list[Any], aliases: dict[str, str], wanted: set[str]) -> ColumnMap:
    """Map header cells to fields; unknown columns are kept as ``others``."""
    fields: dict[str, int] = {}
    wide: list[tuple[str, str, int]] = []
    others: list[int] = []
    for idx, cell in enumerate(header):
        key = header_key(cell)
        if not key:
            others.append(idx)
            continue
        champ = aliases.get(key)
        if champ in wanted and champ not in fields:
            fields[champ] = idx
            continue
        if "montant_demande" in wanted and champ is None:
            split = split_wide_header(str(cell), aliases)
            if split is not None:
                wide.append((split[0], split[1], idx))
                continue
        others.append(idx)
    score = len(fields) + (1 if wide else 0) + min(len(wide), 4)
    return ColumnMap(fields=fields, wide=wide, others=others, score=score)


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
    if not path.exists():
        raise SuiviError(f"{path.name}: fichier introuvable ({path})")
    if path.stat().st_size == 0:
        raise SuiviError(f"{path.name}: fichier vide")
    suffix = path.suffix.lower()
    if suffix in {".xlsx", ".xlsm"}:
        tables = _read_xlsx(path, aliases, wanted)
    elif suffix in {".csv", ".txt", ".tsv"}:
        tables = _read_csv(path, aliases, wanted)
    else:
        raise SuiviError(
            f"{path.name}: format « {path.suffix} » non pris en charge (CSV ou XLSX attendu; "
            "un .xls doit être ré-enregistré en .xlsx)"
        )
    if not tables:
        raise SuiviError(
            f"{path.name}: aucune ligne d'en-tête reconnue dans les {HEADER_SCAN_ROWS} premières "
            "lignes (colonnes attendues par exemple « N° dossier », « Intitulé de l'action », "
            "« Montant demandé »); compléter les alias avec extra_aliases si besoin"
        )
    return tables


def _best_header(
    rows: Iterable[tuple[int, list[Any]]], aliases: dict[str, str], wanted: set[str]
) -> tuple[int, list[Any], ColumnMap] | None:
    """The row that maps to the most fields; a two-row header (financeurs in merged cells above
    « Demandé | Accordé ») is read as ``<financeur> - <measure>`` columns."""
    rows = list(rows)
    best: tuple[int, list[Any], ColumnMap] | None = None
    previous: list[Any] | None = None
    for line, cells in rows:
        cells = _with_group_row(cells, previous, aliases)
        cmap = map_columns(cells, aliases, wanted)
        if _header_ok(cmap) and (best is None or cmap.score > best[2].score):
            best = (line, cells, cmap)
        previous = cells
    return best


def _with_group_row(
    cells: list[Any], above: list[Any] | None, aliases: dict[str, str]
) -> list[Any]:
    """Prefix repeated amount headers with the group label written above them (merged cells
    keep their text in their first column only, hence the look to the left)."""
    measures = [i for i, c in enumerate(cells) if aliases.get(header_key(c)) in AMOUNT_MEASURES]
    if above is None or len(measures) < 3:
        return cells
    merged = list(cells)
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


def _csv_records(text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """Records with the 1-based physical line where each starts (multi-line cells allowed)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"')
    records: list[tuple[int, list[str]]] = []
    previous_end = 0
    for record in reader:
        records.append((previous_end + 1, record))
        previous_end = reader.line_num
    return records


def _read_csv(path: Path, aliases: dict[str, str], wanted: set[str]) -> list[RawTable]:
    try:
        text = decode_text(path)
    except IngestionError as err:
        raise SuiviError(str(err).replace(str(path), path.name)) from None
    if not text.strip():
        raise SuiviError(f"{path.name}: fichier vide")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    head = "\n".join(text.split("\n")[: HEADER_SCAN_ROWS + 5])
    best: tuple[str, tuple[int, list[Any], ColumnMap]] | None = None
    for delimiter in DELIMITERS:
        try:
            sample = _csv_records(head, delimiter)[:HEADER_SCAN_ROWS]
        except csv.Error:
            continue
        found = _best_header(sample, aliases, wanted)
        if found and (best is None or found[2].score > best[1][2].score):
            best = (delimiter, found)
    if best is None:
        return []
    delimiter, (header_line, header, cmap) = best
    try:
        records = _csv_records(text, delimiter)
    except csv.Error as err:
        raise SuiviError(f"{path.name}: CSV illisible ({err})") from None
    rows = [(ln, cells) for ln, cells in records if ln > header_line]
    return [RawTable(path, None, "csv", header, header_line, cmap, rows)]


def _read_xlsx(path: Path, aliases: dict[str, str], wanted: set[str]) -> list[RawTable]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises many types for a corrupt file
        raise SuiviError(f"{path.name}: classeur Excel illisible ({err})") from None
    tables: list[RawTable] = []
    non_empty = 0
    try:
        for sheet in workbook.worksheets:
            records = [
                (idx, list(values))
                for idx, values in enumerate(sheet.iter_rows(values_only=True), start=1)
            ]
            non_empty += sum(1 for _, cells in records if dedup_key(cells))
            found = _best_header(records[:HEADER_SCAN_ROWS], aliases, wanted)
            if found is None:
                continue
            header_line, header, cmap = found
            rows = [(ln, cells) for ln, cells in records if ln > header_line]
            tables.append(RawTable(path, sheet.title, "xlsx", header, header_line, cmap, rows))
    finally:
        workbook.close()
    if non_empty == 0:
        raise SuiviError(f"{path.name}: fichier vide (aucune cellule remplie)")
    return tables


# --------------------------------------------------------------------------------------------
# Cell parsers (raise ValueError with a French reason when a non-empty cell does not parse)
# --------------------------------------------------------------------------------------------


def cell_text(value: Any) -> str | None:
    """A cell as trimmed text; None for an empty cell. Integral floats lose their ``.0``."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime):
        value = value.date()
    text = " ".join(str(value).replace("\u00a0", " ").replace("\u202f", " ").split())
    return text or None


def is_empty(value: Any) -> bool:
    text = cell_text(value)
    return text is None or fold(text) in _EMPTY_MARKERS


_AMOUNT_JUNK = re.compile(r"[\s\u00a0\u202f\u2009\u2007'’€]|eur(os?)?$", re.IGNORECASE)


def parse_amount(value: Any) -> float | None:
    """French or plain amount: ``12 500,00 €``, ``12500``, ``12 500`` (NBSP, U+202F),
    ``12.500,00``, ``12.500``, ``12500.5``; empty -> None (never 0)."""
    if is_empty(value):
        return None
    if isinstance(value, bool):
        raise ValueError("montant illisible")
    if isinstance(value, int | float):
        return float(value)
    text = _AMOUNT_JUNK.sub("", str(value)).replace("\u2212", "-")
    negative = text.startswith("(") and text.endswith(")")
    text = text.strip("()")
    if re.fullmatch(r"-?\d+", text):
        number = float(text)
    elif re.fullmatch(r"-?\d{1,3}(\.\d{3})+(,\d+)?", text):
        number = float(text.replace(".", "").replace(",", "."))
    elif re.fullmatch(r"-?\d+,\d+", text):
        number = float(text.replace(",", "."))
    elif re.fullmatch(r"-?\d{1,3}(,\d{3})+\.\d+", text):
        number = float(text.replace(",", ""))
    elif re.fullmatch(r"-?\d+\.\d+", text):
        number = float(text)
    else:
        raise ValueError("montant illisible")
    return -number if negative else number


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


_DATE_FORMATS = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d", "%Y/%m/%d", "%d/%m/%y")


def parse_date(value: Any) -> date | None:
    """``dd/mm/yyyy`` (and usual variants), ISO dates, Excel dates or serial numbers."""
    if is_empty(value):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and 20000 <= value <= 80000:
        return date(1899, 12, 30) + timedelta(days=int(value))
    text = str(value).strip().split(" ")[0].split("T")[0]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    if re.fullmatch(r"\d{5}", text) and 20000 <= int(text) <= 80000:
        return date(1899, 12, 30) + timedelta(days=int(text))
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


def parse_marqueur(value: Any) -> str | None:
    """Marqueur égalité level as text: ``'0'``, ``'0+'``, ``'1'``, ``'2'`` (others kept as-is)."""
    if is_empty(value):
        return None
    if isinstance(value, int | float) and float(value).is_integer():
        return str(int(value))
    text = cell_text(value) or ""
    compact = re.sub(r"(?i)niveau|marqueur|égalité|egalite|\s", "", text)
    return compact or text


def luhn_ok(digits: str) -> bool:
    """Luhn key of a SIREN (9 digits) or SIRET (14 digits)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        number = int(char)
        if position % 2 == 1:
            number *= 2
            if number > 9:
                number -= 9
        total += number
    return total % 10 == 0


def check_siret(value: Any) -> tuple[str | None, str | None, bool | None]:
    """(SIRET, SIREN, valid) from a SIRET or SIREN cell.

    Valid means 14 (or 9) digits with a correct Luhn key; La Poste's establishments (SIREN
    356000000) use a sum of digits divisible by 5 instead. Spaces, dots and dashes are ignored.
    Returns (raw text, None, False) for a value that is not 9 or 14 digits; (None, None, None)
    for an empty cell.
    """
    if is_empty(value):
        return None, None, None
    if isinstance(value, int | float) and not isinstance(value, bool):
        digits = str(int(value))
        digits = digits.zfill(9) if len(digits) <= 9 else digits.zfill(14)
    else:
        digits = re.sub(r"[\s.\-/]", "", cell_text(value) or "")
    if re.fullmatch(r"\d{14}", digits):
        siren = digits[:9]
        if siren == "356000000":
            return digits, siren, sum(int(c) for c in digits) % 5 == 0
        return digits, siren, luhn_ok(digits)
    if re.fullmatch(r"\d{9}", digits):
        return None, digits, luhn_ok(digits)
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
    found = list(dict.fromkeys(_QPV_CODE.findall(text.upper())))
    if found:
        return ";".join(found)
    if _ALL_QPV.search(fold(text)):
        return "TOUS"
    return None


def qpv_cell(table: RawTable, line: Line, champ: str) -> dict[str, Any]:
    """Where a line's QPV cell is (column name, raw text): kept for the unknown-code report."""
    idx = table.cmap.fields.get(champ)
    if idx is None:
        return {"_qpv_colonne": None, "_qpv_brut": None}
    return {"_qpv_colonne": line.column_name(idx), "_qpv_brut": cell_text(line.cells[idx])}


def unknown_qpv_anomalies(
    rows: list[dict[str, Any]], code_field: str, known: set[str] | None
) -> list[dict[str, Any]]:
    """One ``qpv_inconnu`` anomaly per line naming a well-formed QPV code that no reference knows.

    ``known`` is the set of QPV codes of the references (see
    :func:`pipelines.lib.assets.known_qpv_codes`); ``None`` skips the check. The line is
    kept: an unknown code is reported, never dropped.
    """
    if known is None:
        return []
    anomalies: list[dict[str, Any]] = []
    reported: set[tuple[Any, ...]] = set()
    for row in rows:
        codes = row.get(code_field)
        if not codes:
            continue
        unknown = [c for c in str(codes).split(";") if _QPV_CODE.fullmatch(c) and c not in known]
        tag = (row["source_fichier"], row.get("source_feuille"), row["source_ligne"])
        if not unknown or tag in reported:
            continue
        reported.add(tag)
        where = str(row["source_fichier"])
        if row.get("source_feuille"):
            where += f", feuille « {row['source_feuille']} »"
        where += f", ligne {row['source_ligne']}"
        if row.get("_qpv_colonne"):
            where += f", colonne « {row['_qpv_colonne']} »"
        listed = ", ".join(f"« {c} »" for c in unknown)
        anomalies.append(
            {
                "type": QPV_INCONNU,
                "fichier": row["source_fichier"],
                "ligne": row["source_ligne"],
                "dossier": row.get("dossier"),
                "colonne": row.get("_qpv_colonne"),
                "valeur_brute": row.get("_qpv_brut"),
                "message": (
                    f"{where}: code QPV inconnu {listed} (absent des contours, de la liste "
                    "officielle, des bases INSEE et du périmètre des contrats): ligne gardée, "
                    "à corriger dans le fichier source"
                ),
            }
        )
    return anomalies


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
    """The 4-digit year in the file name (the first one)."""
    years = _YEAR_IN_NAME.findall(path.stem)
    return int(years[0]) if years else None


# --------------------------------------------------------------------------------------------
# Line-by-line loading shared by programmations and bilans
# --------------------------------------------------------------------------------------------


class LineReject(Exception):
    """A line cannot be loaded; carries the column and raw value for the reject report."""

    def __init__(self, colonne: str | None, valeur: Any, motif: str) -> None:
        super().__init__(motif)
        self.colonne = colonne
        self.valeur = valeur
        self.motif = motif


class Line:
    """One data line of a table with typed accessors that raise LineReject with the column."""

    def __init__(self, table: RawTable, cells: list[Any]) -> None:
        self.table = table
        width = max(len(table.header), len(cells))
        self.cells = list(cells) + [None] * (width - len(cells))

    def column_name(self, idx: int) -> str:
        header = self.table.header
        name = cell_text(header[idx]) if idx < len(header) else None
        return name or f"colonne {idx + 1}"

    def raw(self, champ: str) -> Any:
        idx = self.table.cmap.fields.get(champ)
        return None if idx is None else self.cells[idx]

    def get(self, champ: str, parser: Callable[[Any], Any]) -> Any:
        idx = self.table.cmap.fields.get(champ)
        if idx is None:
            return None
        return self.parse_cell(idx, parser)

    def parse_cell(self, idx: int, parser: Callable[[Any], Any]) -> Any:
        try:
            return parser(self.cells[idx])
        except ValueError as err:
            raise LineReject(self.column_name(idx), self.cells[idx], str(err)) from None

    def text(self, champ: str) -> str | None:
        return cell_text(self.raw(champ))

    def others_json(self) -> str:
        extra: dict[str, str] = {}
        known = set(self.table.cmap.fields.values()) | {w[2] for w in self.table.cmap.wide}
        for idx, value in enumerate(self.cells):
            if idx in known:
                continue
            text = cell_text(value)
            if text is not None:
                extra[self.column_name(idx)] = text
        return json.dumps(extra, ensure_ascii=False)


def dedup_key(cells: list[Any]) -> tuple[str, ...]:
    """Exact-duplicate key of a line: its cells as trimmed text, trailing empties ignored."""
    texts = [cell_text(c) or "" for c in cells]
    while texts and texts[-1] == "":
        texts.pop()
    return tuple(texts)


def file_label(path: Path) -> str:
    return path.name


def context_of(table: RawTable, line: Line) -> dict[str, Any]:
    """Territory and year of a line: from its columns, else from the file name / folder."""
    territoire = line.text("territoire") or territory_from_path(table.path)
    annee = line.get("annee", parse_small_int) if "annee" in table.cmap.fields else None
    if annee is None:
        annee = year_from_path(table.path)
    elif not 1900 <= annee <= 2100:
        idx = table.cmap.fields["annee"]
        raise LineReject(line.column_name(idx), line.cells[idx], "année illisible")
    return {"territoire": territoire, "annee": annee}


def run_tables(
    paths: list[Path],
    extra_aliases: Path | None,
    wanted: set[str],
    source: str,
    build: Callable[[RawTable, Line, int], list[dict[str, Any]]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Read every file, call ``build`` on each non-blank data line; collect rejects and stats.

    ``build`` returns the output rows of a line or raises LineReject. Exact duplicate lines
    (same cells as an earlier line of the same table) are rejected as « doublon de la ligne N ».
    """
    aliases = load_aliases(extra_aliases)
    out_rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    for path in paths:
        path = Path(path)
        for table in read_tables(path, aliases, wanted):
            seen: dict[tuple[str, ...], int] = {}
            read = loaded = rejected = 0
            for line_no, cells in table.rows:
                key = dedup_key(cells)
                if not key:
                    continue  # blank line: not data
                read += 1
                if key in seen:
                    rejected += 1
                    rejects.append(
                        _reject(
                            source, table, line_no, None, None, f"doublon de la ligne {seen[key]}"
                        )
                    )
                    continue
                seen[key] = line_no
                try:
                    produced = build(table, Line(table, cells), line_no)
                except LineReject as err:
                    rejected += 1
                    rejects.append(
                        _reject(source, table, line_no, err.colonne, err.valeur, err.motif)
                    )
                    continue
                loaded += 1
                out_rows.extend(produced)
            files.append(
                {
                    "fichier": file_label(path),
                    "feuille": table.feuille,
                    "format": table.format,
                    "ligne_entete": table.header_line,
                    "lignes_lues": read,
                    "lignes_chargees": loaded,
                    "lignes_rejetees": rejected,
                }
            )
    return out_rows, rejects, files


def _reject(
    source: str, table: RawTable, line: int, colonne: str | None, valeur: Any, motif: str
) -> dict[str, Any]:
    where = f"{table.path.name}"
    if table.feuille:
        where += f", feuille « {table.feuille} »"
    where += f", ligne {line}"
    if colonne:
        where += f", colonne « {colonne} »"
    shown = cell_text(valeur)
    message = f"{where}: {motif}" + (f" (valeur « {shown} »)" if shown is not None else "")
    return {
        "source": source,
        "fichier": table.path.name,
        "feuille": table.feuille,
        "ligne": line,
        "colonne": colonne,
        "valeur_brute": shown,
        "motif": message,
    }


def frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records, columns=columns)


# --------------------------------------------------------------------------------------------
# Programmations
# --------------------------------------------------------------------------------------------


def _build_programmation(table: RawTable, line: Line, line_no: int) -> list[dict[str, Any]]:
    ctx = context_of(table, line)
    dossier = line.text("dossier")
    intitule = line.text("intitule")
    if dossier is None and intitule is None:
        raise LineReject(
            None, None, "ligne sans numéro de dossier ni intitulé (ligne de total ou sous-titre ?)"
        )
    dossier_base, serie = split_dossier(dossier)
    siret, siren, siret_ok = check_siret(line.raw("porteur_siret"))
    orientation_code, orientation_libelle = split_code(line.raw("orientation"))
    objectif_code, objectif_libelle = split_code(line.raw("objectif"))
    sous_code, sous_libelle = split_code(line.raw("sous_objectif"))
    objectif_parent = None
    if sous_code is not None:
        objectif_parent = objectif_code
        objectif_code, objectif_libelle = sous_code, sous_libelle
    base = {
        **ctx,
        "dossier": dossier,
        "dossier_base": dossier_base,
        "serie_pluriannuelle": serie,
        "porteur_nom": line.text("porteur_nom"),
        "porteur_siret": siret,
        "porteur_siren": siren,
        "siret_valide": siret_ok,
        "porteur_type": line.text("porteur_type"),
        "intitule": intitule,
        "orientation_code": orientation_code,
        "orientation_libelle": orientation_libelle,
        "objectif_code": objectif_code,
        "objectif_libelle": objectif_libelle,
        "objectif_parent_code": objectif_parent,
        "qpv_codes": qpv_codes(line.raw("qpv")),
        "qpv_texte": line.text("qpv"),
        **qpv_cell(table, line, "qpv"),
        "echelle": line.text("echelle"),
        "statut_libelle": line.text("statut"),
        "cout_total": line.get("cout_total", parse_amount),
        "couts_indirects": line.get("couts_indirects", parse_amount),
        "achats": line.get("achats", parse_amount),
        "nature_subvention": line.text("nature_subvention"),
        "type_credits": line.text("type_credits"),
        "rang_financement": line.get("rang_financement", parse_small_int),
        "cpo": line.get("cpo", parse_bool),
        "cpo_duree": line.get("cpo_duree", parse_small_int),
        "marqueur_egalite": line.get("marqueur_egalite", parse_marqueur),
        "part_public_qpv": line.get("part_public_qpv", parse_share),
        "date_debut_action": line.get("date_debut_action", parse_date),
        "date_fin_action": line.get("date_fin_action", parse_date),
        "date_bilan": line.get("date_bilan", parse_date),
        "date_bilan_intermediaire": line.get("date_bilan_intermediaire", parse_date),
        "date_demande_report": line.get("date_demande_report", parse_date),
        "nombre_reunions_suivi": line.get("nombre_reunions_suivi", parse_small_int),
        "suivi_renforce": line.get("suivi_renforce", parse_bool),
        "volet_regional": line.text("volet_regional"),
        "autres_colonnes": line.others_json(),
        "source_fichier": table.path.name,
        "source_feuille": table.feuille,
        "source_ligne": line_no,
    }
    if base["cpo"] is None and base["cpo_duree"]:
        base["cpo"] = base["cpo_duree"] > 1
    fields = table.cmap.fields
    if "financeur" in fields or "montant_demande" in fields or "montant_accorde" in fields:
        return [
            {
                **base,
                "financeur_libelle": line.text("financeur"),
                "montant_demande": line.get("montant_demande", parse_amount),
                "montant_accorde": line.get("montant_accorde", parse_amount),
            }
        ]
    amounts: dict[str, dict[str, float | None]] = {}
    for label, measure, idx in table.cmap.wide:
        value = line.parse_cell(idx, parse_amount)
        amounts.setdefault(label, {"montant_demande": None, "montant_accorde": None})
        if value is not None:
            amounts[label][measure] = value
    produced = [
        {**base, "financeur_libelle": label, **values}
        for label, values in amounts.items()
        if values["montant_demande"] is not None or values["montant_accorde"] is not None
    ]
    if not produced:
        produced = [
            {**base, "financeur_libelle": None, "montant_demande": None, "montant_accorde": None}
        ]
    return produced


def parse_programmations(
    paths: list[Path], extra_aliases: Path | None = None, known_qpv: set[str] | None = None
) -> SuiviResult:
    """Parse programmation files into one row per action × financeur.

    See the module docstring for the accepted layouts. Rows that cannot be loaded go to
    ``.rejects`` (file, line, column, raw value, reason); rows kept but worth a look go to
    ``.anomalies`` (duplicate dossier × financeur, multi-year series, granted above requested,
    invalid SIRET, and with ``known_qpv`` a QPV code absent from the references). For every file,
    ``lignes_lues = lignes_chargees + lignes_rejetees``.
    """
    rows, rejects, files = run_tables(
        list(paths), extra_aliases, PROGRAMMATION_FIELDS, "programmations", _build_programmation
    )
    frame_rows = frame(rows, PROGRAMMATION_COLUMNS)
    frame_rows = _typed_programmations(frame_rows)
    anomalies = _programmation_anomalies(rows) + unknown_qpv_anomalies(rows, "qpv_codes", known_qpv)
    return SuiviResult(
        rows=frame_rows,
        rejects=frame(rejects, REJECT_COLUMNS),
        anomalies=frame(anomalies, ANOMALY_COLUMNS),
        files=files,
    )


def _typed_programmations(df: pd.DataFrame) -> pd.DataFrame:
    for col in (
        "cout_total",
        "couts_indirects",
        "achats",
        "montant_demande",
        "montant_accorde",
        "part_public_qpv",
    ):
        df[col] = pd.to_numeric(df[col], errors="raise").astype("Float64")
    for col in ("annee", "cpo_duree", "rang_financement", "nombre_reunions_suivi", "source_ligne"):
        df[col] = pd.to_numeric(df[col], errors="raise").astype("Int64")
    for col in ("serie_pluriannuelle", "siret_valide", "cpo", "suivi_renforce"):
        df[col] = df[col].astype("boolean")
    return df


def _programmation_anomalies(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    anomalies: list[dict[str, Any]] = []
    first_seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    siret_reported: set[tuple[Any, ...]] = set()
    series: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for row in rows:
        where = {
            "fichier": row["source_fichier"],
            "ligne": row["source_ligne"],
            "dossier": row["dossier"],
        }
        key = (row["territoire"], row["annee"], row["dossier"], row["financeur_libelle"])
        if row["dossier"] is not None:
            if key in first_seen:
                first = first_seen[key]
                anomalies.append(
                    {
                        "type": "doublon_dossier",
                        **where,
                        "message": (
                            f"dossier {row['dossier']} × financeur « {row['financeur_libelle']} » "
                            f"déjà présent ({first['source_fichier']}, "
                            f"ligne {first['source_ligne']}) "
                            "avec des valeurs différentes: les deux lignes sont gardées"
                        ),
                    }
                )
            else:
                first_seen[key] = row
        demande, accorde = row["montant_demande"], row["montant_accorde"]
        if demande is not None and accorde is not None and accorde > demande:
            anomalies.append(
                {
                    "type": "accorde_superieur_demande",
                    **where,
                    "message": (
                        f"financeur « {row['financeur_libelle']} »: montant accordé "
                        f"{_euros(accorde)} supérieur au montant demandé {_euros(demande)}"
                    ),
                }
            )
        if row["siret_valide"] is False:
            tag = (row["source_fichier"], row["dossier"], row["porteur_siret"])
            if tag not in siret_reported:
                siret_reported.add(tag)
                anomalies.append(
                    {
                        "type": "siret_invalide",
                        **where,
                        "message": (
                            f"SIRET/SIREN « {row['porteur_siret'] or row['porteur_siren']} » du "
                            f"porteur « {row['porteur_nom']} » invalide (clé de Luhn ou longueur)"
                        ),
                    }
                )
        if row["serie_pluriannuelle"]:
            series.setdefault((row["territoire"], row["dossier_base"]), []).append(row)
    for (_territoire, base), members in series.items():
        parts = sorted({(m["dossier"], m["annee"]) for m in members}, key=lambda p: str(p[0]))
        first = min(members, key=lambda m: (str(m["dossier"]), m["source_ligne"]))
        listing = ", ".join(f"{d} ({a})" for d, a in parts)
        anomalies.append(
            {
                "type": "serie_pluriannuelle",
                "fichier": first["source_fichier"],
                "ligne": first["source_ligne"],
                "dossier": base,
                "message": (
                    f"dossier pluriannuel {base}: {len(parts)} tranche(s) trouvée(s): {listing}"
                ),
            }
        )
    return anomalies


def _euros(value: float) -> str:
    return f"{value:,.2f} €".replace(",", " ").replace(".", ",")
