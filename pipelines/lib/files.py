"""Files of a source folder: which ones are read, which are not and why, years, SHA-256.

A source folder (``data/raw/<source>/``) is read recursively. A file is a data file of the source
when its suffix is one the source reads and it is not hidden (``.``), an Office lock file
(``~$``) or a note for humans (a stem starting with ``readme`` or ``lisez``, any case). Files are
returned sorted by path so that every build reads them in the same order.

Every other file of the folder (``.xls``, ``.pdf``, unknown extension...) is *not read* and
:func:`unread_files` gives it with the reason, for ``raw.ingestion_log``; hidden files, lock
files and notes are ignored without a trace (documented in ``docs/donnees-brutes.md``).

Two kinds of names are refused (:class:`FileNameError`, naming the file) rather than read:

* a file name that is not valid UTF-8 (an archive extracted with another code page): DuckDB and
  the reports could not write it;
* a symbolic link whose target is outside the raw directory (``data/raw/``, the parent of the
  source folder): its content would be copied into the archive and the manifest. A link that
  stays inside the raw directory is followed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from pipelines.lib.errors import IngestionError

TABLE_SUFFIXES = frozenset({".csv", ".txt", ".tsv", ".xlsx", ".xlsm"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})

#: Why a file with one of these suffixes is not read (whatever the source).
UNREAD_REASONS = {
    ".xls": "format .xls (Excel 97-2003) non lu : enregistrer en .xlsx ou .csv",
    ".ods": "format .ods (LibreOffice) non lu : enregistrer en .xlsx ou .csv",
    ".xlsb": "format .xlsb (Excel binaire) non lu : enregistrer en .xlsx ou .csv",
}

_NOTE_STEMS = ("readme", "lisez")
_YEAR = re.compile(r"(?<!\d)(19[89]\d|20\d\d)(?!\d)")
_CHUNK = 1 << 20


class FileNameError(IngestionError):
    """A file of the raw directory that must not be read as it is (name or link)."""


def printable_name(path: Path | str) -> str:
    """A path as text that can always be written (undecodable bytes shown as U+FFFD)."""
    raw = os.fsencode(str(path))
    return raw.decode("utf-8", errors="replace")


def _check_name(path: Path) -> None:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise FileNameError(
            f"{printable_name(path)}: nom de fichier non UTF-8 (caractère illisible « \ufffd ») : "
            "renommer le fichier (lettres accentuées saisies sous un autre système ?)"
        ) from None


def _check_link(path: Path, root: Path) -> None:
    if not path.is_symlink():
        return
    target = path.resolve()
    if not target.is_relative_to(root.resolve()):
        raise FileNameError(
            f"{printable_name(path)}: lien symbolique vers {printable_name(target)}, hors du "
            f"dossier brut {printable_name(root)} : refusé (copier le fichier dans le dossier "
            "brut au lieu de le lier)"
        )


def _is_ignored(path: Path) -> bool:
    """Hidden files, Office lock files and notes for humans: ignored without a trace."""
    return path.name.startswith((".", "~$")) or path.stem.lower().startswith(_NOTE_STEMS)


def is_data_file(path: Path, suffixes: Iterable[str] = TABLE_SUFFIXES) -> bool:
    """True for a file with one of ``suffixes`` that is not hidden, a lock file or a readme."""
    return (
        path.is_file()
        and path.suffix.lower() in {s.lower() for s in suffixes}
        and not _is_ignored(path)
    )


def _walk(folder: Path, root: Path | None) -> list[Path]:
    """Every entry under ``folder`` (links to folders are not followed), names and links
    checked; hidden folders are skipped."""
    root = folder.parent if root is None else root
    entries: list[Path] = []
    for parent, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in [*dirs, *names]:
            path = Path(parent) / name
            if name.startswith(".") and not path.is_symlink():
                continue
            _check_name(path)
            _check_link(path, root)
            if path.is_symlink() and path.is_dir():
                entries.append(path)  # a link to a folder of the raw directory: not followed
            elif name in names:
                entries.append(path)
    return sorted(entries)


def list_files(
    folder: Path, suffixes: Iterable[str] = TABLE_SUFFIXES, root: Path | None = None
) -> list[Path]:
    """The data files under ``folder`` (recursively), sorted; [] when the folder is absent.

    ``root`` is the raw directory that links may not leave (default: ``folder``'s parent).
    Raises :class:`FileNameError` for a non-UTF-8 name or a link leaving ``root``.
    """
    if not folder.is_dir():
        return []
    wanted = {s.lower() for s in suffixes}
    return [p for p in _walk(folder, root) if is_data_file(p, wanted)]


def unread_files(
    folder: Path, suffixes: Iterable[str] = TABLE_SUFFIXES, root: Path | None = None
) -> list[tuple[Path, str]]:
    """The files under ``folder`` that :func:`list_files` does not give (other than hidden files,
    lock files and notes), each with the reason it is not read."""
    if not folder.is_dir():
        return []
    wanted = {s.lower() for s in suffixes}
    out = []
    for path in _walk(folder, root):
        if _is_ignored(path) or is_data_file(path, wanted):
            continue
        if path.is_dir():
            reason = "lien vers un dossier : non suivi (y copier les fichiers)"
        elif not path.is_file():
            reason = "ni fichier ni dossier (lien cassé ?) : non lu"
        else:
            suffix = path.suffix.lower()
            reason = UNREAD_REASONS.get(suffix) or (
                f"extension « {path.suffix or '(aucune)'} » non lue dans ce dossier (lues : "
                f"{', '.join(sorted(wanted))})"
            )
        out.append((path, reason))
    return out


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


def link_or_copy(source: Path | str, target: Path | str) -> None:
    """``target`` as a hard link to ``source`` (a copy across file systems); an existing
    ``target`` is replaced."""
    Path(target).unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
