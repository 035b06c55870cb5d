"""Yearly partitions of the programmations and bilans (dynamic partitions ``annee``).

The partition of a file is the year in its name (``VM_programmation_2027.csv`` -> ``2027``; a
name without a year -> ``sans-annee``).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines.lib.files import TABLE_SUFFIXES, list_files
from pipelines.sources.programmations.cells import year_from_path

ANNEE = dg.DynamicPartitionsDefinition(name="annee")
SANS_ANNEE = "sans-annee"
SUIVI_SOURCES = ("programmations", "bilans")
SUIVI_SUFFIXES = TABLE_SUFFIXES


def partition_of(path: str | Path) -> str:
    """The ``annee`` partition of a programmation/bilan file: the year in its name."""
    year = year_from_path(Path(path))
    return str(year) if year is not None else SANS_ANNEE


def suivi_files(raw_dir: Path, source: str) -> list[Path]:
    """The files of a yearly source (``programmations`` or ``bilans``) in the raw dir."""
    return list_files(raw_dir / source, SUIVI_SUFFIXES)
