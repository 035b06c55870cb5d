"""Attaching programmation and bilan lines to their territory.

A line names its territory in a « Territoire » column or by its file name's prefix
(``VM_programmation_2027.csv``) or folder; the value may be a territory folder's code, its
SIREN or its name, or, for an EPCI that no folder declares, its SIREN or name in the Etalab
référentiel (``ref_epci.csv``): the territory's code is then its SIREN. A value that matches
nothing stops the build, naming the file and saying how to declare the territory.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.duckdb_utils import tables_in
from pipelines.lib.cells import fold
from pipelines.lib.tables import IngestionError
from pipelines.settings import REFERENTIELS_DIR

#: EPCI types written out in full in programmations, to their Etalab abbreviation
_LONG_TYPES = (
    ("communaute d agglomeration", "ca"),
    ("communaute de communes", "cc"),
    ("communaute urbaine", "cu"),
    ("metropole", "metropole"),
)
_STOPWORDS = {"de", "du", "des", "d", "la", "le", "l", "les", "et"}


def name_key(text: str) -> str:
    """A name compared whatever its spelling: « Communauté d'agglomération de Lens-Liévin » and
    « CA de Lens - Liévin » give the same key (types abbreviated, articles dropped)."""
    folded = fold(text)
    for long, short in _LONG_TYPES:
        folded = re.sub(rf"\b{long}\b", short, folded)
    return " ".join(w for w in folded.split() if w not in _STOPWORDS)


@dataclass
class TerritoryIndex:
    """Every way a line may name a territory -> the territory's code."""

    declared: dict[str, str] = field(default_factory=dict)
    epci: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: str | None) -> str | None:
        if value is None or not str(value).strip():
            return None
        text = str(value).strip()
        for key in (text.upper(), re.sub(r"\s", "", text), name_key(text)):
            if key in self.declared:
                return self.declared[key]
        for key in (re.sub(r"\s", "", text), name_key(text)):
            if key in self.epci:
                return self.epci[key]
        return None


def territory_index(
    con: duckdb.DuckDBPyConnection, referentiels_dir: Path = REFERENTIELS_DIR
) -> TerritoryIndex:
    """The index of the territory folders loaded in ``raw.territoires`` and of every EPCI."""
    index = TerritoryIndex()
    if "territoires" in tables_in(con, "raw"):
        for code, nom, siren in con.execute(
            "select territoire, nom, siren from raw.territoires"
        ).fetchall():
            index.declared[code.upper()] = code
            if siren:
                index.declared[siren] = code
            if nom:
                index.declared[name_key(nom)] = code
    with (referentiels_dir / "ref_epci.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            index.epci[row["siren"]] = row["siren"]
            index.epci.setdefault(name_key(row["nom"]), row["siren"])
    return index


def attach_territories(frame: pd.DataFrame | None, index: TerritoryIndex) -> pd.DataFrame | None:
    """The rows with ``territoire`` set to the territory's code; raises IngestionError naming
    the file(s) whose territory matches nothing."""
    if frame is None or frame.empty:
        return frame
    files = frame["source_fichier"].astype(str)
    # no column and no upper-case prefix: the file name's first token, whatever its case
    # (computed once per file, mapped to its lines)
    prefixes = {f: re.split(r"[_\-\s.]+", Path(f).stem)[0] for f in files.unique()}
    prefix = files.map(prefixes)
    given = frame["territoire"].where(frame["territoire"].notna(), prefix)
    distinct = {v: index.resolve(v) for v in given.dropna().unique()}
    codes = given.map(distinct)
    unknown = frame.assign(_given=given)[codes.isna()]
    if not unknown.empty:
        lines = []
        for (fichier, valeur), group in unknown.groupby(["source_fichier", "_given"], dropna=False):
            first = group["source_ligne"].min() if "source_ligne" in group else None
            where = f"{Path(str(fichier)).name}" + (f", ligne {first}" if first else "")
            lines.append(f"{where}: territoire « {valeur} » inconnu ({len(group)} ligne(s))")
        # one line: the CLI prints the first line of a failure
        raise IngestionError(
            "; ".join(lines) + " — un territoire est le code d'un dossier data/raw/territoires/"
            "<code>/ (territoire.yml: nom, siren), ou le SIREN ou le nom d'un EPCI: déclarer "
            "le territoire (modèle: exemples/territoires/) ou corriger la colonne Territoire "
            "ou le préfixe du nom du fichier (VM_programmation_2027.csv)"
        )
    return frame.assign(territoire=codes)
