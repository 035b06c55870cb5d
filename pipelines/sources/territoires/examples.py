"""The worked examples of territory folders (``exemples/territoires/``), read back in the shape
of the project's former seeds (one table per file kind, with a ``territoire`` column), for the
demo generator, the extract script and the tests."""

from __future__ import annotations

import csv
from pathlib import Path

from pipelines.settings import EXAMPLES_TERRITORIES_DIR, REFERENTIELS_DIR
from pipelines.sources.territoires.reader import FILES, territory_rows, verify

#: former seed name -> file of a territory folder
SEED_FILES = {f"ref_{name.removesuffix('.csv')}.csv": name for name in FILES}


def referentiel_rows(name: str, root: Path = EXAMPLES_TERRITORIES_DIR) -> list[dict[str, str]]:
    """Rows of ``ref_<kind>.csv`` over every territory folder of ``root`` (text cells, '' for
    empty): ``ref_territoires.csv`` from the territoire.yml files, ``ref_financeurs_alias.csv``
    with the national aliases (territoire '') first."""
    territories, errors = verify(root)
    if errors:
        raise ValueError("\n".join(errors))
    if name == "ref_territoires.csv":
        frame = territory_rows(territories).drop(columns=["fichier_source"])
        return [
            {k: ("" if v is None else str(v)) for k, v in r.items()}
            for r in frame.to_dict("records")
        ]
    rows: list[dict[str, str]] = []
    if name == "ref_financeurs_alias.csv":
        with (REFERENTIELS_DIR / "ref_financeurs_alias_communs.csv").open(encoding="utf-8") as fh:
            rows += [{**r, "territoire": ""} for r in csv.DictReader(fh)]
    spec = FILES[SEED_FILES[name]]
    for territory in territories:
        frame = territory.tables.get(spec.table)
        if frame is None:
            continue
        for record in frame.drop(columns=["fichier_source", "ligne"]).to_dict("records"):
            rows.append({k: ("" if v is None else str(v)) for k, v in record.items()})
    return rows
