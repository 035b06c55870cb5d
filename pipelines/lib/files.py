"""Files of a source folder: which ones are read, their years, their SHA-256.

A source folder (``data/raw/<source>/``) is read recursively. A file is a data file of the source
when its suffix is one the source reads and it is not hidden (``.``), an Office lock file
(``~$``) or a note for humans (a stem starting with ``readme`` or ``lisez``, any case). Files are
returned sorted by path so that every build reads them in the same order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

TABLE_SUFFIXES = frozenset({".csv", ".txt", ".tsv", ".xlsx", ".xlsm"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})

_NOTE_STEMS = ("readme", "lisez")
_YEAR = re.compile(r"(?<!\d)(19[89]\d|20\d\d)(?!\d)")
_CHUNK = 1 << 20


def is_data_file(path: Path, suffixes: Iterable[str] = TABLE_SUFFIXES) -> bool:
    """True for a file with one of ``suffixes`` that is not hidden, a lock file or a readme."""
    return (
        path.is_file()
        and path.suffix.lower() in set(suffixes)
        and not path.name.startswith((".", "~$"))
        and not path.stem.lower().startswith(_NOTE_STEMS)
    )


def list_files(folder: Path, suffixes: Iterable[str] = TABLE_SUFFIXES) -> list[Path]:
    """The data files under ``folder`` (recursively), sorted; [] when the folder is absent."""
    if not folder.is_dir():
        return []
    wanted = {s.lower() for s in suffixes}
    return sorted(p for p in folder.rglob("*") if is_data_file(p, wanted))


def years_in_name(name: str | Path) -> list[int]:
    """The 4-digit years (1980-2099) written in a file name's stem, in order of appearance."""
    return [int(y) for y in _YEAR.findall(Path(name).stem)]


def sha256_bytes(data: bytes) -> str:
    """Hexadecimal SHA-256 of bytes already in memory."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hexadecimal SHA-256 of a file, read by blocks of 1 MiB (large files never in memory)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
