"""The variables of the indicator dictionary (seed ``ref_indicateurs_variables``) as the INSEE
reader needs them: which bases publish a variable name, and whether a (base, variable,
millésime) reaches an indicator.

A file named after its base (``IPRO_2022.csv``) is mapped by dbt on (base, variable, period).
A file named freely (``extrait_qpv_region.csv``) names no base: each of its variables is then
recognised by its name against the whole dictionary (:meth:`VariableDictionary.bases_of`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.settings import DBT_PROJECT_DIR

VARIABLES_SEED = DBT_PROJECT_DIR / "seeds" / "indicateurs" / "ref_indicateurs_variables.csv"


@dataclass(frozen=True)
class Entry:
    """One line of the seed: a variable name of a base, for a period, and its indicator."""

    base: str
    variable: str
    start: int | None
    end: int | None
    indicator: str

    def covers(self, millesime: int) -> bool:
        return (self.start or 0) <= millesime <= (self.end or 9999)


@dataclass
class VariableDictionary:
    """The seed's entries by variable name (upper case, as the reader normalises headers)."""

    entries: dict[str, list[Entry]] = field(default_factory=dict)

    @property
    def bases(self) -> set[str]:
        """Every base of the dictionary (DEMO, IPRO, REVN)."""
        return {e.base for entries in self.entries.values() for e in entries}

    def bases_of(self, variable: str) -> list[str]:
        """The bases publishing ``variable``, sorted (one: it maps; several: ambiguous)."""
        return sorted({e.base for e in self.entries.get(variable.strip().upper(), [])})

    def indicator(self, base: str, variable: str, millesime: int) -> str | None:
        """The indicator of ``variable`` of ``base`` for ``millesime``, or None."""
        for entry in self.entries.get(variable.strip().upper(), []):
            if entry.base == base and entry.covers(millesime):
                return entry.indicator
        return None


def load_dictionary(path: Path = VARIABLES_SEED) -> VariableDictionary:
    """The dictionary of the project's seed (or of ``path``)."""
    entries: dict[str, list[Entry]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            variable = row["variable"].strip().upper()
            entries.setdefault(variable, []).append(
                Entry(
                    base=row["source"].strip().upper(),
                    variable=variable,
                    start=int(row["millesime_debut"]) if row["millesime_debut"].strip() else None,
                    end=int(row["millesime_fin"]) if row["millesime_fin"].strip() else None,
                    indicator=row["indicateur"].strip(),
                )
            )
    return VariableDictionary(entries)
