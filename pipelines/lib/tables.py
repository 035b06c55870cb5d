"""Reading tables: CSV of any usual dialect and XLSX sheets, with their header row found.

Every reader of a tabular source goes through :func:`read_tables`:

* **Encoding** (:func:`decode_text`; :func:`text_encoding` for the files DuckDB reads): UTF-8
  with or without BOM, or UTF-16 with its BOM. Any other encoding (latin-1/Windows-1252
  exports) is refused with the line and byte of the first undecodable character, so that the
  user re-exports the file in UTF-8: guessing silently would
  corrupt names (``Cité`` read as ``CitÃ©``, or the reverse), and every official file of the
  sources (ANCT list, INSEE bases) is UTF-8.
* **CSV dialect**: line endings CRLF, LF or CR; quoted fields (multi-line cells allowed);
  separator ``;``, ``,``, tab or ``|``: the one whose parse gives the best header row.
* **XLSX** (openpyxl, read-only): every sheet, cell values and, on demand, number formats.
* **Header row**, :func:`find_header`, the one detector: among the first ``scan`` rows, the row
  with the highest score given by the source's ``score(rows, k)`` (header aliases for the
  programmations, mapped columns for Compas, QPV codes below it for the INSEE bases...); the
  first one on a tie; none when no row scores above 0.
* **Line numbers**: every row keeps its 1-based physical line (CSV: where the record starts) or
  sheet row number, for the reject messages.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.lib.files import CSV_SUFFIXES, XLSX_SUFFIXES

DELIMITERS = (";", ",", "\t", "|")

#: ``score(rows, k)``: how much row ``k`` of ``rows`` (lists of cells) looks like the header;
#: None or 0 when it cannot be the header.
Scorer = Callable[[Sequence[Sequence[Any]], int], float | None]


class IngestionError(Exception):
    """A raw file cannot be read at all. The message names the file (and line when known)."""


class CsvLineError(csv.Error):
    """A CSV record the csv module cannot parse, with the physical line where it failed."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def _not_utf8(label: str, line: int, byte: int, position: int) -> IngestionError:
    return IngestionError(
        f"{label}: ligne {line}: encodage non UTF-8 (octet 0x{byte:02x} à la position "
        f"{position}); fichier probablement en latin-1/Windows-1252: le ré-enregistrer en UTF-8"
    )


def decode_text(path: Path, label: str | None = None) -> str:
    """The text of a file in UTF-8 (with or without BOM) or UTF-16 (with BOM); see the module
    docstring. ``label`` names the file in messages (default: its path)."""
    path = Path(path)
    label = label or str(path)
    data = path.read_bytes()
    if not data.strip():
        raise IngestionError(f"{label}: fichier vide")
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise _not_utf8(label, line, data[err.start], err.start) from None


def text_encoding(path: Path, label: str | None = None, block: int = 1 << 20) -> str:
    """The encoding of a text file read by another engine (DuckDB), under the same policy as
    :func:`decode_text`: ``"utf-16"`` (BOM) or ``"utf-8"`` after checking every byte, by blocks,
    so a large file is never held in memory; raises :class:`IngestionError` otherwise."""
    path = Path(path)
    label = label or str(path)
    with path.open("rb") as fh:
        head = fh.read(2)
        if head in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            return "utf-16"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset, lines = 0, 1
        while chunk := fh.read(block):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                position = offset + err.start
                line = lines + chunk.count(b"\n", 0, err.start)
                raise _not_utf8(label, line, chunk[err.start], position) from None
            offset += len(chunk)
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _not_utf8(label, lines, 0, offset) from None
    return "utf-8"


@dataclass
class Row:
    """One record: its 1-based line, its cells (CSV: text; XLSX: values), maybe their formats."""

    line: int
    cells: list[Any]
    formats: list[str] | None = None

    @property
    def blank(self) -> bool:
        return not any(c is not None and str(c).strip() for c in self.cells)


@dataclass
class Table:
    """One CSV file or one XLSX sheet: every row, and which one is the header."""

    path: Path
    sheet: str | None
    format: str  # "csv" | "xlsx"
    rows: list[Row]
    header_index: int | None
    delimiter: str | None = None

    @property
    def header(self) -> list[Any]:
        return [] if self.header_index is None else self.rows[self.header_index].cells

    @property
    def header_line(self) -> int | None:
        return None if self.header_index is None else self.rows[self.header_index].line

    @property
    def data(self) -> list[Row]:
        """The rows below the header (blank rows included: the reader decides)."""
        return [] if self.header_index is None else self.rows[self.header_index + 1 :]


def find_header(
    rows: Sequence[Sequence[Any]], score: Scorer, scan: int
) -> tuple[int, float] | None:
    """(index, score) of the header among the first ``scan`` rows: the highest score above 0,
    the first such row on a tie; None when no row can be the header."""
    best: tuple[int, float] | None = None
    for k in range(min(scan, len(rows))):
        value = score(rows, k)
        if value and value > 0 and (best is None or value > best[1]):
            best = (k, value)
    return best


def csv_records(text: str, delimiter: str) -> list[Row]:
    """Records of a CSV text with the 1-based physical line where each starts (multi-line cells
    allowed, blank lines kept as empty records). Raises CsvLineError."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"')
    records: list[Row] = []
    previous_end = 0
    try:
        for record in reader:
            records.append(Row(previous_end + 1, record))
            previous_end = reader.line_num
    except csv.Error as err:
        raise CsvLineError(reader.line_num, str(err)) from None
    return records


def read_csv(
    path: Path, score: Scorer, scan: int, *, lookahead: int = 50, label: str | None = None
) -> Table:
    """A CSV file as a Table; ``header_index`` is None when no row scores (see find_header).

    The head (``scan + lookahead`` lines) is parsed with every separator of DELIMITERS; the one
    that gives the best header wins (the first of DELIMITERS on a tie).
    """
    label = label or str(path)
    text = decode_text(path, label).replace("\r\n", "\n").replace("\r", "\n")
    head = "\n".join(text.split("\n")[: scan + lookahead])
    best: tuple[str, int, float] | None = None
    for delimiter in DELIMITERS:
        try:
            sample = csv_records(head, delimiter)
        except csv.Error:
            continue
        found = find_header([r.cells for r in sample], score, scan)
        if found and (best is None or found[1] > best[2]):
            best = (delimiter, sample[found[0]].line, found[1])
    if best is None:
        return Table(Path(path), None, "csv", [], None)
    delimiter, header_line, _ = best
    try:
        rows = csv_records(text, delimiter)
    except CsvLineError as err:
        raise IngestionError(f"{label}: ligne {err.line}: CSV illisible ({err})") from None
    index = next(k for k, r in enumerate(rows) if r.line == header_line)
    return Table(Path(path), None, "csv", rows, index, delimiter)


def read_xlsx(
    path: Path,
    score: Scorer,
    scan: int,
    *,
    sheets: Callable[[str], bool] | None = None,
    formats: bool = False,
    label: str | None = None,
) -> list[Table]:
    """Every sheet of a workbook (those ``sheets`` accepts) as a Table, with its header row
    when one scores (``header_index`` None otherwise); ``formats`` keeps the number formats."""
    from openpyxl import load_workbook

    label = label or str(path)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - openpyxl raises many kinds for a corrupt file
        raise IngestionError(f"{label}: classeur illisible ({err})") from None
    tables: list[Table] = []
    try:
        for sheet in workbook.worksheets:
            if sheets is not None and not sheets(sheet.title):
                continue
            rows = []
            for line, cells in enumerate(sheet.iter_rows(), start=1):
                values = [getattr(c, "value", None) for c in cells]
                kept = (
                    [str(getattr(c, "number_format", "") or "") for c in cells] if formats else None
                )
                rows.append(Row(line, values, kept))
            found = find_header([r.cells for r in rows], score, scan)
            tables.append(Table(Path(path), sheet.title, "xlsx", rows, found and found[0]))
    finally:
        workbook.close()
    return tables


def read_tables(
    path: Path,
    score: Scorer,
    scan: int,
    *,
    lookahead: int = 50,
    sheets: Callable[[str], bool] | None = None,
    formats: bool = False,
    label: str | None = None,
) -> list[Table]:
    """The tables of a CSV (one) or XLSX (one per sheet) file; see read_csv / read_xlsx.

    Raises IngestionError for a missing, empty or unreadable file or another format.
    """
    path = Path(path)
    label = label or str(path)
    if not path.exists():
        raise IngestionError(f"{label}: fichier introuvable ({path})")
    suffix = path.suffix.lower()
    if suffix not in XLSX_SUFFIXES | CSV_SUFFIXES:
        raise IngestionError(
            f"{label}: format « {path.suffix} » non pris en charge (CSV ou XLSX attendu; "
            "un .xls doit être ré-enregistré en .xlsx)"
        )
    if path.stat().st_size == 0:
        raise IngestionError(f"{label}: fichier vide")
    if suffix in XLSX_SUFFIXES:
        return read_xlsx(path, score, scan, sheets=sheets, formats=formats, label=label)
    return [read_csv(path, score, scan, lookahead=lookahead, label=label)]


def named_header(names: set[str], fold: Callable[[str], str]) -> Scorer:
    """A scorer for headers of known column names: the number of cells whose folded text is
    one of ``names`` (already folded)."""

    def score(rows: Sequence[Sequence[Any]], k: int) -> float:
        return sum(1 for c in rows[k] if c is not None and fold(str(c)) in names)

    return score
