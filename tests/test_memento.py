"""The mémento des indicateurs: the dictionary seeds and the marts' YAML docs agree.

The dictionary (dbt_project/seeds/indicateurs/ref_indicateurs.csv) is the reference: every
variable of the real INSEE files maps to one of its indicators, every mart column named after an
indicator says its libellé and unit, and every mart column is documented.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import duckdb
import pytest
import yaml

from pipelines.settings import DBT_PROJECT_DIR, DEMO_DIR
from pipelines.sources.indicateurs.mapping import load_mapping
from pipelines.sources.insee.reader import read_insee_file
from tests.conftest import shared_data

SEEDS = DBT_PROJECT_DIR / "seeds" / "indicateurs"
MARTS = DBT_PROJECT_DIR / "models" / "marts"
INDICATOR_MARTS = [
    "indicateurs_qpv",
    "taux_emploi_quartier",
    "fiche_quartier",
    "agregats_qpv",
    "indicateurs_references",
]
KEY_COLUMNS = {"CODGEO", "LIBGEO", "LIB_COM"}  # identification and label columns, not indicators


def _csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def dictionary() -> dict[str, dict]:
    return {r["indicateur"]: r for r in _csv(SEEDS / "ref_indicateurs.csv")}


@pytest.fixture(scope="module")
def variables() -> list[dict]:
    return _csv(SEEDS / "ref_indicateurs_variables.csv")


def _model_yaml(name: str) -> dict:
    data = yaml.safe_load((MARTS / f"{name}.yml").read_text(encoding="utf-8"))
    return next(m for m in data["models"] if m["name"] == name)


def test_dictionary_entries_are_complete_and_consistent(dictionary):
    for code, row in dictionary.items():
        assert re.fullmatch(r"[a-z0-9_]+", code), code
        for column in ("libelle", "definition", "unite", "producteur", "theme", "agregation"):
            assert row[column].strip(), (code, column)
        if row["agregation"] == "somme":
            assert row["unite"] == "nombre" and row["sommable"] == "true", code
        else:
            assert row["sommable"] == "false", code
        if row["agregation"] == "moyenne_ponderee":
            assert row["poids"] in dictionary, code
            assert dictionary[row["poids"]]["agregation"] == "somme", code
            assert row["poids_exact"] in {"true", "false"}, code
        else:
            assert not row["poids"], code
        if row["unite"] == "%":
            assert row["agregation"] != "somme", code  # a rate is never summed


def test_every_variable_points_to_the_dictionary(dictionary, variables):
    for row in variables:
        assert row["indicateur"] in dictionary, row
    keys = [(r["source"], r["variable"], r["millesime_debut"]) for r in variables]
    assert len(keys) == len(set(keys))
    # renamed between vintages: both names lead to the same indicator
    by_name = {(r["source"], r["variable"]): r["indicateur"] for r in variables}
    assert by_name[("IPRO", "TX_TOT_EPREC")] == by_name[("IPRO", "TX_TOT_EDLIM")]
    assert by_name[("DEMO", "A")] == by_name[("REVN", "A")] == "allocataires_caf"
    assert by_name[("IPRO", "A")] == "demandeurs_emploi_a"  # same name, another base


def test_every_variable_of_the_real_files_is_in_the_dictionary(variables):
    folder = shared_data("insee_qpv2015")
    mapped = {}
    for r in variables:
        start = int(r["millesime_debut"] or 0)
        end = int(r["millesime_fin"] or 9999)
        mapped.setdefault((r["source"], r["variable"]), []).append((start, end))
    missing, seen = [], 0
    for path in sorted(folder.glob("*.csv")):
        result = read_insee_file(path)
        names = set(result.values.variable) - KEY_COLUMNS
        seen += len(names)
        for name in sorted(names):
            ranges = mapped.get((result.source, name), [])
            if not any(a <= result.millesime <= b for a, b in ranges):
                missing.append(f"{path.name}:{name}")
    assert missing == []
    assert seen == 31 * 2 + 59 * 2 + 29 + 30  # DEMO, IPRO, REVN 2021 and 2022


def test_unknown_meanings_are_said_not_invented(dictionary):
    """Variables whose meaning the files do not give keep 'non documenté' in their definition."""
    for code in ("ca_asp", "evolution_ca_asp", "brev_filosofi"):
        assert "non documenté" in dictionary[code]["definition"].lower(), code
    for code in ("note_rp", "note_cnaf", "note_france_travail"):
        assert dictionary[code]["unite"] == "code"


def test_demo_mapping_uses_the_dictionary(dictionary):
    mapping = load_mapping(DEMO_DIR / "compas" / "COMPAS_indicateurs.mapping.yml")
    for column in mapping.colonnes:
        assert column.indicateur in dictionary, column.header


def test_fiche_quartier_columns_are_documented_from_the_dictionary(dictionary):
    model = _model_yaml("fiche_quartier")
    sql = (MARTS / "fiche_quartier.sql").read_text(encoding="utf-8")
    block = sql[sql.index("{% set fiche = [") : sql.index("] %}")]
    fiche = re.findall(r"'([a-z0-9_]+)'", block)
    assert len(fiche) >= 30
    documented = {c["name"]: c for c in model["columns"]}
    themes = set()
    for code in [*fiche, "beneficiaires_c2s"]:
        entry = dictionary[code]
        column = documented[code]
        meta = column.get("config", {}).get("meta", {})
        assert meta.get("indicateur") == code and meta.get("unite") == entry["unite"], code
        assert entry["libelle"] in " ".join(column["description"].split()), code
        themes.add(entry["theme"])
    assert {"population", "emploi", "demandeurs_emploi", "revenus", "caf", "jeunesse"} <= themes


def test_taux_emploi_columns_carry_the_dictionary_unit(dictionary):
    model = _model_yaml("taux_emploi_quartier")
    units = {c["name"]: c.get("config", {}).get("meta", {}).get("unite") for c in model["columns"]}
    for column in ("taux_emploi", "taux_emploi_femmes", "taux_emploi_etrangers"):
        assert units[column] == dictionary[column]["unite"] == "%"
    for column in ("ecart_epci_points", "ecart_france_points", "evolution_points"):
        assert units[column] == "points de %"


@pytest.mark.parametrize("name", INDICATOR_MARTS)
def test_mart_yaml_documents_every_built_column(demo_build, name):
    model = _model_yaml(name)
    assert model.get("description", "").strip()
    documented = [c["name"] for c in model["columns"]]
    assert all(c.get("description", "").strip() for c in model["columns"]), name
    con = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    try:
        built = [
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns where table_schema = "
                "'marts' and table_name = ? order by ordinal_position",
                [name],
            ).fetchall()
        ]
    finally:
        con.close()
    assert built, f"marts.{name} absent"
    assert documented == built
