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
* **XLSX** (openpyxl, read-only): every sheet, cell values and, on demand, number formats;
  the real cells, whatever the ``<dimension>`` tag says, at most :data:`MAX_XLSX_CELLS`.
* **Field counts** (:meth:`Table.field_count_error`, :func:`csv_shape`): a CSV record with more
  or fewer fields than its header is the reader's reject, never read shifted.
* **Duplicate headers** (:func:`check_unique_header`): refused, naming both positions.
* **Memory** (:func:`check_fits`): a CSV is read as a stream (:func:`stream_csv` keeps none of
  its rows: a :class:`CsvStream` reads them from disk at each iteration); a file whose reading
  would not fit in the available memory (the reader's factor x its size + MEMORY_CONSTANT) is
  refused before reading.
* **Header row**, :func:`find_header`, the one detector: among the first ``scan`` rows, the row
  with the highest score given by the source's ``score(rows, k)`` (header aliases for the
  programmations, mapped columns for Compas, QPV codes below it for the INSEE bases...); the
  first one on a tie; none when no row scores above 0.
* **Line numbers**: every row keeps its 1-based physical line (CSV: where the record starts) or
  sheet row number, for the reject messages.

Why this module is long: every tabular reader of the project goes through it, and the rules a
table must pass before any source sees it (encoding, dialect, real XLSX cells and their bounds,
field counts, duplicate headers, header detection) belong together: a rule split off would be
a rule some reader forgets.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.lib.errors import IngestionError
from pipelines.lib.files import CSV_SUFFIXES, XLSX_SUFFIXES

DELIMITERS = (";", ",", "\t", "|")

#: ``score(rows, k)``: how much row ``k`` of ``rows`` (lists of cells) looks like the header;
#: None or 0 when it cannot be the header.
Scorer = Callable[[Sequence[Sequence[Any]], int], float | None]


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

    def field_count_error(self, row: Row) -> str | None:
        """For a CSV record whose number of fields differs from the header's (more or fewer:
        its values would land in the wrong columns), the reject reason; None otherwise and for
        an XLSX row (cells are placed by their column, not by counting)."""
        if self.format != "csv" or self.header_index is None:
            return None
        expected, found = len(self.header), len(row.cells)
        if found == expected or row.blank:
            return None
        what = "ligne tronquée" if found < expected else "champs en trop"
        return (
            f"{what} : {found} champs au lieu de {expected} (ligne d'en-tête "
            f"{self.header_line}) : ligne rejetée, ses valeurs seraient décalées"
        )

    def where(self, label: str | None = None) -> str:
        """The file (and sheet) for messages."""
        name = label or str(self.path)
        return f"{name} [{self.sheet}]" if self.sheet else name


def check_unique_header(header: Sequence[Any], key: Callable[[str], str], where: str) -> None:
    """Refuse a header where two columns have the same name once normalised by ``key`` (which
    one would be read is arbitrary): raises IngestionError naming both positions. Unnamed
    columns are not compared."""
    seen: dict[str, int] = {}
    for j, cell in enumerate(header):
        text = "" if cell is None else str(cell)
        name = key(text) if text.strip() else ""
        if not name:
            continue
        if name in seen:
            shown = " ".join(text.split())  # one line: a header cell may hold Alt+Entrée
            raise IngestionError(
                f"{where}: colonnes {seen[name] + 1} et {j + 1} de même en-tête « {shown} »"
                " : renommer ou supprimer l'une des deux (laquelle lire serait arbitraire)"
            )
        seen[name] = j


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


def _open_text(path: Path, label: str, encoding: str | None = None):
    """The file as a text stream under the encoding policy (checked by blocks, never held)."""
    encoding = encoding or text_encoding(path, label)
    return Path(path).open(encoding="utf-8-sig" if encoding == "utf-8" else "utf-16", newline="")


def _csv_rows(path: Path, label: str, delimiter: str, encoding: str) -> list[Row]:
    """Every record of the file (streamed from disk: only the parsed rows are kept)."""
    return list(_iter_csv_rows(path, label, delimiter, encoding))


def _iter_csv_rows(path: Path, label: str, delimiter: str, encoding: str):
    """The records of the file one by one, read from disk (nothing kept): constant memory."""
    with _open_text(path, label, encoding) as fh:
        reader = csv.reader(fh, delimiter=delimiter, quotechar='"')
        previous_end = 0
        try:
            for record in reader:
                if "\r" in "".join(record):
                    record = [c.replace("\r\n", "\n").replace("\r", "\n") for c in record]
                yield Row(previous_end + 1, record)
                previous_end = reader.line_num
        except csv.Error as err:
            line = reader.line_num
            raise IngestionError(f"{label}: ligne {line}: CSV illisible ({err})") from None


#: Peak memory of reading a CSV in memory, as a multiple of its size, for the readers that hold
#: its rows (measured by ``make bench-memoire``: programmations 20, bilans 35, QPV list 16; a
#: local indicator table up to 245, its own factor), plus a constant for the interpreter,
#: libraries and reading buffers; the INSEE reader, which streams, announces 5
#: (docs/donnees-brutes.md).
CSV_MEMORY_FACTOR = 100
MEMORY_CONSTANT = 300 * 2**20


def available_memory() -> int | None:
    """Bytes this process may still allocate: MemAvailable (Linux), lowered by an address-space
    limit (``ulimit -v``); None when unknown."""
    import resource

    found: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        found.append(soft)
    return min(found) if found else None


def check_fits(path: Path, factor: float, label: str | None = None) -> None:
    """Refuse, before reading it, a file whose reading would need more memory than the machine
    has (``factor`` x its size + a constant), rather than be killed by the system."""
    label = label or str(path)
    size = Path(path).stat().st_size
    need = factor * size + MEMORY_CONSTANT
    free = available_memory()
    if free is not None and need > free:
        raise IngestionError(
            f"{label}: fichier trop grand pour la mémoire disponible ({size / 2**20:.0f} Mo, "
            f"lecture estimée à {need / 2**30:.1f} Go pour {free / 2**30:.1f} Go disponibles) :"
            " le découper (par exemple par département) ou libérer de la mémoire"
        )


@dataclass
class CsvStream:
    """A CSV file whose header was found, read again from disk each time its rows are iterated
    (:attr:`data`): the streaming counterpart of a :class:`Table` (same ``header``,
    ``field_count_error`` and ``where``), for readers whose memory must not grow with the file."""

    path: Path
    label: str
    delimiter: str
    encoding: str
    header_row: Row
    sheet: None = None
    format: str = "csv"
    header_index: int = 0

    @property
    def header(self) -> list[Any]:
        return self.header_row.cells

    @property
    def header_line(self) -> int:
        return self.header_row.line

    @property
    def data(self):
        """The rows below the header, parsed from disk again at each call (an iterator)."""
        rows = _iter_csv_rows(self.path, self.label, self.delimiter, self.encoding)
        for row in rows:
            if row.line == self.header_row.line:
                break
        yield from rows

    field_count_error = Table.field_count_error
    where = Table.where


def _detect_csv(
    path: Path, score: Scorer, scan: int, lookahead: int, label: str, memory_factor: float
) -> tuple[str, str, int] | None:
    """(encoding, delimiter, header line) of a CSV, from its head (see :func:`read_csv`);
    None when no row scores."""
    check_fits(path, memory_factor, label)
    encoding = text_encoding(path, label)
    with _open_text(path, label, encoding) as fh:
        head = "".join(itertools.islice(fh, scan + lookahead))
    if not head.strip():
        raise IngestionError(f"{label}: fichier vide")
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
        return None
    return encoding, best[0], best[1]


def read_csv(
    path: Path,
    score: Scorer,
    scan: int,
    *,
    lookahead: int = 50,
    label: str | None = None,
    memory_factor: float = CSV_MEMORY_FACTOR,
) -> Table:
    """A CSV file as a Table; ``header_index`` is None when no row scores (see find_header).

    The head (``scan + lookahead`` lines) is parsed with every separator of DELIMITERS; the one
    that gives the best header wins (the first of DELIMITERS on a tie). The file is read as a
    stream (its text is never held whole in memory).
    """
    label = label or str(path)
    found = _detect_csv(path, score, scan, lookahead, label, memory_factor)
    if found is None:
        return Table(Path(path), None, "csv", [], None)
    encoding, delimiter, header_line = found
    rows = _csv_rows(path, label, delimiter, encoding)
    index = next(k for k, r in enumerate(rows) if r.line == header_line)
    return Table(Path(path), None, "csv", rows, index, delimiter)


def stream_csv(
    path: Path,
    score: Scorer,
    scan: int,
    *,
    lookahead: int = 50,
    label: str | None = None,
    memory_factor: float = CSV_MEMORY_FACTOR,
) -> CsvStream | None:
    """A CSV file as a :class:`CsvStream` (its header found as by :func:`read_csv`, its rows
    read from disk when iterated); None when no row scores. The whole file is parsed once here,
    so that an unparsable record fails now (« CSV illisible » with its line), as with
    :func:`read_csv`."""
    path = Path(path)
    label = label or str(path)
    found = _detect_csv(path, score, scan, lookahead, label, memory_factor)
    if found is None:
        return None
    encoding, delimiter, header_line = found
    header = None
    for row in _iter_csv_rows(path, label, delimiter, encoding):
        if row.line == header_line:
            header = row
    assert header is not None  # the head parsed with the same dialect has it
    return CsvStream(path, label, delimiter, encoding, header)


#: Most cells (of rows and columns up to the last filled cell of each row) read from one
#: workbook: about 100 bytes each in memory, so 5 million cells stay under 500 MB.
MAX_XLSX_CELLS = 5_000_000
#: Largest uncompressed shared-strings part accepted (it is loaded whole by openpyxl).
MAX_SHARED_STRINGS_BYTES = 256 * 1024 * 1024


def _check_xlsx_parts(path: Path, label: str) -> None:
    """Refuse a workbook whose shared strings alone would not fit (a zip bomb)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            sizes = {i.filename.lower(): i.file_size for i in archive.infolist()}
    except (zipfile.BadZipFile, OSError) as err:
        raise IngestionError(f"{label}: classeur illisible ({err})") from None
    shared = sizes.get("xl/sharedstrings.xml", 0)
    if shared > MAX_SHARED_STRINGS_BYTES:
        raise IngestionError(
            f"{label}: classeur trop grand ({shared / 2**20:.0f} Mo de textes une fois "
            f"décompressé, au plus {MAX_SHARED_STRINGS_BYTES / 2**20:.0f} Mo) : l'enregistrer "
            "en CSV ou le découper"
        )


def _sheet_rows(sheet: Any, formats: bool, label: str, budget: list[int]) -> list[Row]:
    """The rows of a read-only sheet as written in its XML, whatever its ``<dimension>`` tag says
    (a stale tag would hide rows or columns, an absurd one would pad every row to XFD): each row
    is cut after its last filled cell and trailing empty rows are dropped."""
    sheet.reset_dimensions()  # max_row / max_column from the real cells, not from the tag
    rows: list[Row] = []
    last_filled = 0
    for line, cells in enumerate(sheet.iter_rows(), start=1):
        values = [getattr(c, "value", None) for c in cells]
        while values and (values[-1] is None or values[-1] == ""):
            values.pop()
        budget[0] -= len(values) + 1
        if budget[0] < 0:
            raise IngestionError(
                f"{label} [{sheet.title}]: classeur trop grand (plus de "
                f"{MAX_XLSX_CELLS:,} cellules jusqu'à la ligne {line}) : l'enregistrer en CSV "
                "ou le découper".replace(",", " ")
            )
        kept = (
            [str(getattr(c, "number_format", "") or "") for c in cells[: len(values)]]
            if formats
            else None
        )
        rows.append(Row(line, values, kept))
        if values:
            last_filled = len(rows)
    del rows[last_filled:]
    return rows


@dataclass
class CsvShape:
    """The dialect of a CSV read by another engine (DuckDB) and its records of the wrong field
    count: ``misshapen`` holds (line, fields, expected) for the first ``limit`` of them and
    ``misshapen_count`` how many there are."""

    encoding: str
    delimiter: str
    fields: int
    misshapen: list[tuple[int, int, int]]
    misshapen_count: int

    def message(self, label: str) -> str:
        shown = " ; ".join(
            f"ligne {line} : {found} champs au lieu de {expected}"
            for line, found, expected in self.misshapen
        )
        more = f" ({self.misshapen_count} lignes en tout)" if self.misshapen_count > 1 else ""
        return (
            f"{label}: {shown}{more} : ces lignes ont un nombre de champs différent de "
            "l'en-tête (séparateur dans une valeur non entre guillemets ?) ; corriger le fichier"
        )


def csv_dialect(path: Path, label: str | None = None) -> tuple[str, str]:
    """Encoding and separator of a CSV read by another engine (DuckDB): the encoding policy of
    :func:`text_encoding` and the one of DELIMITERS that splits the first non-blank line into
    the most fields. Raises IngestionError for an empty or non-UTF-8 file."""
    label = label or str(path)
    encoding = text_encoding(path, label)
    with _open_text(path, label, encoding) as fh:
        first = next((line for line in fh if line.strip()), None)
    if first is None:
        raise IngestionError(f"{label}: fichier vide")
    delimiter = max(
        DELIMITERS,
        key=lambda d: (len(next(csv.reader([first], delimiter=d))), -DELIMITERS.index(d)),
    )
    return encoding, delimiter


def csv_shape(path: Path, label: str | None = None, limit: int = 5) -> CsvShape:
    """Encoding, separator (the one of DELIMITERS that splits the first non-blank line into the
    most fields) and field count of every record of a CSV, read as a stream (constant memory).
    Raises IngestionError for an empty, non-UTF-8 or unparsable file."""
    label = label or str(path)
    encoding, delimiter = csv_dialect(path, label)
    expected, bad, count = None, [], 0
    with _open_text(path, label, encoding) as fh:
        reader = csv.reader(fh, delimiter=delimiter, quotechar='"')
        previous_end = 0
        try:
            for record in reader:
                line, previous_end = previous_end + 1, reader.line_num
                if not record or not any(c.strip() for c in record):
                    continue
                if expected is None:
                    expected = len(record)
                elif len(record) != expected:
                    count += 1
                    if len(bad) < limit:
                        bad.append((line, len(record), expected))
        except csv.Error as err:
            raise IngestionError(
                f"{label}: ligne {reader.line_num}: CSV illisible ({err})"
            ) from None
    return CsvShape(encoding, delimiter, expected or 0, bad, count)


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
    when one scores (``header_index`` None otherwise); ``formats`` keeps the number formats.

    The real cells are read (the ``<dimension>`` tag is ignored), at most
    :data:`MAX_XLSX_CELLS` per workbook; a larger one is refused with a message."""
    from openpyxl import load_workbook

    label = label or str(path)
    _check_xlsx_parts(path, label)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - openpyxl raises many kinds for a corrupt file
        raise IngestionError(f"{label}: classeur illisible ({_one_line(err)})") from None
    tables: list[Table] = []
    budget = [MAX_XLSX_CELLS]
    try:
        for sheet in workbook.worksheets:
            if sheets is not None and not sheets(sheet.title):
                continue
            try:
                rows = _sheet_rows(sheet, formats, label, budget)
            except IngestionError:
                raise
            except Exception as err:  # noqa: BLE001 - a corrupt sheet XML
                raise IngestionError(
                    f"{label} [{sheet.title}]: feuille illisible ({_one_line(err)})"
                ) from None
            found = find_header([r.cells for r in rows], score, scan)
            tables.append(Table(Path(path), sheet.title, "xlsx", rows, found and found[0]))
    finally:
        workbook.close()
    return tables


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def read_tables(
    path: Path,
    score: Scorer,
    scan: int,
    *,
    lookahead: int = 50,
    sheets: Callable[[str], bool] | None = None,
    formats: bool = False,
    label: str | None = None,
    memory_factor: float = CSV_MEMORY_FACTOR,
    stream: bool = False,
) -> list[Table | CsvStream]:
    """The tables of a CSV (one) or XLSX (one per sheet) file; see read_csv / read_xlsx.
    With ``stream``, a CSV whose header is found is a :class:`CsvStream` (rows read from disk
    at each iteration) rather than a Table holding its rows.

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
    if stream:
        found = stream_csv(
            path, score, scan, lookahead=lookahead, label=label, memory_factor=memory_factor
        )
        return [found if found is not None else Table(path, None, "csv", [], None)]
    return [
        read_csv(path, score, scan, lookahead=lookahead, label=label, memory_factor=memory_factor)
    ]


def named_header(names: set[str], fold: Callable[[str], str]) -> Scorer:
    """A scorer for headers of known column names: the number of cells whose folded text is
    one of ``names`` (already folded)."""

    def score(rows: Sequence[Sequence[Any]], k: int) -> float:
        return sum(1 for c in rows[k] if c is not None and fold(str(c)) in names)

    return score
