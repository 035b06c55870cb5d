"""The variables of the indicator dictionary (seed ``ref_indicateurs_variables``) as the INSEE
reader needs them: which bases publish a variable name, and whether a (base, variable,
millésime) reaches an indicator.

A file named after its base (``IPRO_2022.csv``) is mapped by dbt on (base, variable, period).
A file named freely (``extrait_qpv_region.csv``) names no base: each of its variables is then
recognised by its name against the whole dictionary (:func:`resolve_bases`); ambiguous names
and files whose values reach no indicator become ``raw.anomalies`` rows
(:func:`dictionary_anomalies`).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.settings import DBT_PROJECT_DIR

#: Anomaly types of raw.anomalies written for the INSEE files (source insee).
AMBIGUOUS = "insee_variable_ambigue"
NO_INDICATOR = "insee_sans_indicateur"

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


@functools.cache
def default_dictionary() -> VariableDictionary:
    """The project's variable dictionary (seed), read once per process."""
    return load_dictionary()


@dataclass
class BaseResolution:
    """How the values of one file reach the dictionary."""

    #: numeric variables recognised by name (file naming no base): {variable: base}
    recognised: dict[str, str] = field(default_factory=dict)
    #: variables of several bases (file naming no base): {variable: [bases]}
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    #: numeric variables that reach an indicator for their base and millésime
    reaching: list[str] = field(default_factory=list)


def resolve_bases(
    frame: pd.DataFrame, source: str, number_vars: dict[str, str], dictionary: VariableDictionary
) -> BaseResolution:
    """Set ``frame.source`` to the base of each value, and say which variables reach an
    indicator. A file naming a base keeps it for every value; otherwise each numeric variable
    published by one base only takes that base, the others keep the file's name."""
    out = BaseResolution()
    if source not in dictionary.bases:
        for variable in number_vars:
            bases = dictionary.bases_of(variable)
            if len(bases) == 1:
                out.recognised[variable] = bases[0]
            elif bases:
                out.ambiguous[variable] = bases
        if out.recognised:
            frame["source"] = frame["variable"].map(out.recognised).fillna(source)
    numeric = frame[frame["variable"].isin(list(number_vars))]
    combos = numeric[["source", "variable", "millesime"]].drop_duplicates()
    out.reaching = sorted(
        {
            variable
            for base, variable, year in combos.itertuples(index=False)
            if dictionary.indicator(base, variable, int(year)) is not None
        }
    )
    return out


def dictionary_anomalies(
    path: Path,
    frame: pd.DataFrame,
    source: str,
    number_vars: dict[str, str],
    bases: BaseResolution,
    dictionary: VariableDictionary,
) -> list[dict]:
    """raw.anomalies rows: each ambiguous variable with its candidate bases, and the file
    itself when none of its values reaches an indicator (kept, but said)."""
    seed = "dbt_project/seeds/indicateurs/ref_indicateurs_variables.csv"
    years = sorted({int(y) for y in frame["millesime"].unique()})
    year = years[-1] if years else 2022
    # the base most of the file's recognised variables belong to: the likeliest for the others
    counts: dict[str, int] = {}
    for base in bases.recognised.values():
        counts[base] = counts.get(base, 0) + 1
    usual = max(sorted(counts), key=counts.__getitem__) if counts else None
    out = []
    for variable, candidates in sorted(bases.ambiguous.items()):
        listed = ", ".join(candidates)
        example = usual if usual in candidates else candidates[0]
        out.append(
            {
                "type": AMBIGUOUS,
                "fichier": str(path),
                "ligne": None,
                "dossier": None,
                "message": (
                    f"{path.name}, colonne « {number_vars[variable]} » : variable présente dans "
                    f"plusieurs bases INSEE ({listed}) : valeurs chargées sans indicateur ; "
                    f"donner la base dans le nom du fichier (ex. {example}_{year}.csv) ou "
                    f"dans {path.stem}.yml à côté du fichier (base: {example})"
                ),
                "colonne": number_vars[variable],
                "valeur_brute": listed,
            }
        )
    if not bases.reaching:
        listed_years = ", ".join(str(y) for y in years)
        unnamed = (
            "le nom du fichier ne donne aucune base du dictionnaire "
            f"({', '.join(sorted(dictionary.bases))})"
        )
        if source in dictionary.bases:
            why = f"aucune de ses variables n'est au dictionnaire pour la base {source}"
            why += f" et le millésime {listed_years}" if years else ""
        elif bases.recognised:
            why = (
                f"{unnamed} ; ses variables reconnues ({', '.join(sorted(bases.recognised))}) "
                f"n'y sont pas pour le millésime {listed_years}"
            )
        elif bases.ambiguous:
            why = f"{unnamed} et ses variables connues sont de plusieurs bases"
        else:
            why = f"{unnamed} et aucune de ses variables n'y est"
        out.append(
            {
                "type": NO_INDICATOR,
                "fichier": str(path),
                "ligne": None,
                "dossier": None,
                "message": (
                    f"{path.name} : aucune valeur n'atteint un indicateur : {why}. "
                    f"{len(frame)} valeurs chargées sans indicateur ; nommer le fichier d'après "
                    f"sa base (ex. IPRO_{year}.csv), la donner dans {path.stem}.yml (base: "
                    f"IPRO), ou compléter le dictionnaire ({seed})"
                ),
                "colonne": None,
                "valeur_brute": ", ".join(sorted(number_vars)[:10]) or None,
            }
        )
    return out
