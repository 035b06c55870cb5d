"""The dbt side of the test suite: dbt unit tests (run here once, not in every build) and the
project's generic data tests, checked on tables a reader can see."""

from __future__ import annotations

import inspect
import re
import shutil

import duckdb
import jinja2
import pytest
from dagster_dbt import DbtCliResource

from pipelines.settings import DBT_PROJECT_DIR
from pipelines.warehouse.dbt import BUILD_ARGS, dbt_resource
from tests.conftest import run_dbt

GENERIC = DBT_PROJECT_DIR / "tests" / "generic" / "colonnes_renseignees.sql"


class _Adapter:
    @staticmethod
    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'


def _render_colonnes_renseignees(model: str, colonnes: list[str]) -> str:
    text = GENERIC.read_text(encoding="utf-8")
    body = re.search(
        r"{% test colonnes_renseignees\(model, colonnes\) %}(.*){% endtest %}", text, re.S
    )
    return jinja2.Template(body.group(1)).render(model=model, colonnes=colonnes, adapter=_Adapter)


def test_colonnes_renseignees_names_each_column_holding_nulls():
    con = duckdb.connect()
    con.execute(
        "create table t as select * from (values (1, 'a', null), (2, null, null), (3, 'c', 5))"
        " v(id, libelle, montant)"
    )
    sql = _render_colonnes_renseignees("t", ["id", "libelle", "montant"])
    rows = sorted(con.execute(sql).fetchall())
    # libelle is NULL on 1 row, montant on 2, id never: a failing column is named with its count
    assert rows == [("libelle", 1), ("montant", 2)]
    con.execute("delete from t where libelle is null or montant is null")
    assert con.execute(sql).fetchall() == []


def _render_valeurs_admises(model: str, valeurs: dict) -> str:
    text = (GENERIC.parent / "valeurs_admises.sql").read_text(encoding="utf-8")
    body = re.search(r"{% test valeurs_admises\(model, valeurs\) %}(.*){% endtest %}", text, re.S)
    return jinja2.Template(body.group(1)).render(model=model, valeurs=valeurs, adapter=_Adapter)


def test_valeurs_admises_names_each_value_outside_its_list():
    con = duckdb.connect()
    con.execute(
        "create table t as select * from (values ('a', 1, true), ('l''x', 2, false),"
        " ('z', 9, true), ('z', null, null), (null, 3, false)) v(statut, niveau, actif)"
    )
    valeurs = {"statut": ["a", "l'x"], "niveau": [1, 2, 3], "actif": [True, False]}
    sql = _render_valeurs_admises("t", valeurs)
    # 'z' twice outside the statut list, 9 once outside niveau; NULL passes, as accepted_values
    assert sorted(con.execute(sql).fetchall()) == [("niveau", "9", 1), ("statut", "z", 2)]
    con.execute("delete from t where statut = 'z'")
    assert con.execute(sql).fetchall() == []
    assert con.execute(_render_valeurs_admises("t", {"actif": [True]})).fetchall() == [
        ("actif", "false", 2)
    ]


def test_a_build_runs_data_tests_but_not_unit_tests():
    assert BUILD_ARGS[0] == "build"
    assert BUILD_ARGS[BUILD_ARGS.index("--exclude-resource-type") + 1] == "unit_test"


def test_dagster_builds_no_dbt_adapter():
    """dagster-dbt still asks the resource for its adapter by this name before each command, and
    the project's resource gives none (2.8 s of each build: pipelines/warehouse/dbt.py)."""
    assert "self._initialize_dbt_core_adapter(" in inspect.getsource(DbtCliResource.cli)
    assert dbt_resource()._initialize_dbt_core_adapter(["build"]) is None


def test_dbt_unit_tests_pass(demo_build, tmp_path):
    """Every dbt unit test (fixtures in the models' YAML) against the demo warehouse's schema."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_build / "warehouse.duckdb", warehouse)
    result = run_dbt(warehouse, tmp_path, "test", "--select", "test_type:unit")
    assert result.returncode == 0, result.stdout[-4000:]
    passed = re.search(r"PASS=(\d+)", result.stdout)
    assert passed and int(passed.group(1)) >= 14, result.stdout[-2000:]
    assert "ERROR=0" in result.stdout and not re.search(r"FAIL=[1-9]", result.stdout)
    # dbt started from the project's parse although the warehouse path is another one
    # (pipelines/warehouse/dbt_runner.py): a full parse here means every build pays 9 s again
    log = (tmp_path / "logs" / "dbt.log").read_text(encoding="utf-8")
    assert "Unable to do partial parsing" not in log, re.findall(r"Unable to do partial.*", log)


@pytest.mark.parametrize("folder", ["models", "seeds"])
def test_no_column_level_not_null_left(folder):
    """Mandatory columns are declared once per model (colonnes_renseignees), not one node each;
    a not_null with a config of its own (where, severity) is the exception."""
    for path in (DBT_PROJECT_DIR / folder).rglob("*.yml"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"data_tests: \[[^\]]*not_null", text), path
        assert not re.search(r"^\s+- not_null\s*$", text, re.M), path


@pytest.mark.parametrize("folder", ["models", "seeds"])
def test_closed_lists_are_one_test_per_model(folder):
    """Closed lists of values are declared once per model (valeurs_admises), not one
    accepted_values node per column; one with a config of its own (severity) is the exception."""
    for path in (DBT_PROJECT_DIR / folder).rglob("*.yml"):
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"- accepted_values:\n((?:\s{6,}.*\n)+)", text):
            assert "config:" in block, (path, block)


def _compiled_tests(folder, model: str) -> dict[str, str]:
    compiled = folder / "target" / "compiled" / "observatoire_qpv" / "models"
    return {p.stem: p.read_text(encoding="utf-8") for p in compiled.glob(f"*/{model}.yml/*.sql")}


def test_a_year_build_tests_only_the_rebuilt_years_of_a_yearly_model(
    demo_build, tmp_path, monkeypatch
):
    """In a build of some years, the blocking tests that judge each row (or each year) of a
    yearly model read the rebuilt years only (dbt_project/macros/annees_reconstruites.sql); the
    relationships read the whole table (the other side may have changed), and a full build tests
    every row."""
    from pipelines.warehouse.dbt import YEAR_VARIABLE

    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_build / "warehouse.duckdb", warehouse)
    models = ["int_suivi__actions", "depenses_orientation"]
    monkeypatch.setenv(YEAR_VARIABLE, "2025")
    result = run_dbt(warehouse, tmp_path / "annee", "compile", "--select", " ".join(models))
    assert result.returncode == 0, result.stdout[-3000:]
    monkeypatch.delenv(YEAR_VARIABLE)
    result = run_dbt(warehouse, tmp_path / "complete", "compile", "--select", " ".join(models))
    assert result.returncode == 0, result.stdout[-3000:]

    year = _compiled_tests(tmp_path / "annee", "int_suivi__actions")
    restricted = "where annee >= 2025) dbt_subquery"
    assert restricted in year["unique_int_suivi__actions_territoire_annee_dossier"]
    assert [name for name, sql in year.items() if restricted not in sql] == [], sorted(year)
    marts = _compiled_tests(tmp_path / "annee", "depenses_orientation")
    assert any(name.startswith("colonnes_renseignees") for name in marts)
    for name, sql in marts.items():  # relationships read the whole table
        assert (restricted in sql) == name.startswith(("colonnes_renseignees", "valeurs_")), name
    full = {
        **_compiled_tests(tmp_path / "complete", "int_suivi__actions"),
        **_compiled_tests(tmp_path / "complete", "depenses_orientation"),
    }
    assert len(full) == len(year) + len(marts)
    assert not any("annee >=" in sql for sql in full.values())
