"""Files written one per group of a mart's rows (the SCDL files, one per financeur and year; the
result indicators, one per territory and year), and which of them a build may take as published.

Each folder of such files carries ``.empreintes.json``: per file, the fingerprint of the rows
it was written from (rows and sum of the rows' hashes, computed by DuckDB) and what the writer
found in them (the SCDL fields left to complete). A build of some years (``--annee``), by the
same version of the project with the same options (the caller checks), links a published file
whose rows have the same fingerprint instead of formatting and writing it again: the years it
did not rebuild keep their files. Any doubt (no record, a file missing, another fingerprint, an
unreadable record) writes the file again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.duckdb_utils import quote_identifier
from pipelines.lib.files import link_or_copy

RECORD = ".empreintes.json"
VERSION = 1


def group_fingerprints(
    con: duckdb.DuckDBPyConnection, relation: str, name_sql: str, columns: Sequence[str]
) -> dict[str, str]:
    """``{file name: fingerprint}`` of the rows of ``relation``, grouped by the file name
    ``name_sql`` (an SQL expression over the relation), over ``columns``."""
    fields = ", ".join(quote_identifier(c) for c in columns)
    return {
        name: f"{rows}:{total}"
        for name, rows, total in con.execute(
            f"select {name_sql} as fichier, count(*), sum(hash(struct_pack({fields}))) "
            f"from {relation} group by all"
        ).fetchall()
    }


@dataclass
class Reuse:
    """The published files a writer may link (``{file name: what was recorded with it}``)."""

    folder: Path | None
    files: dict[str, dict]

    def link(self, name: str, target_folder: Path) -> dict:
        """Links the published file ``name`` into ``target_folder``; returns its record."""
        assert self.folder is not None
        link_or_copy(self.folder / name, target_folder / name)
        return self.files[name]


def reusable(published: Path | None, fingerprints: Mapping[str, str]) -> Reuse:
    """The files of ``published`` (a folder of the published marts, or None) whose recorded
    fingerprint is the one of ``fingerprints`` and which are there."""
    if published is None:
        return Reuse(None, {})
    try:
        record = json.loads((published / RECORD).read_text(encoding="utf-8"))
        recorded = record["fichiers"] if record.get("version") == VERSION else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Reuse(None, {})
    files = {
        name: entry
        for name, entry in recorded.items()
        if isinstance(entry, dict)
        and name in fingerprints
        and entry.get("empreinte") == fingerprints[name]
        and (published / name).is_file()
    }
    return Reuse(published, files)


def write_record(folder: Path, entries: Mapping[str, dict]) -> Path:
    """``folder/.empreintes.json`` for the files written or linked there (each entry holds at
    least ``empreinte``)."""
    target = folder / RECORD
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(
        json.dumps(
            {"version": VERSION, "fichiers": dict(sorted(entries.items()))},
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    tmp.replace(target)
    return target
