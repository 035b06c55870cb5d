"""``python -m tools.bench.plans``: the rule-evaluation models' plans have hash joins only.

On the session's demo build (no new build): every rule model is recompiled and recomputed in
memory from the warehouse's tables, gives the same rows as the build, and no join of its plan
compares every pair of rows. On a tiny hand-made warehouse (no dbt): a join with an ``OR`` in its
condition is reported as forbidden and the command exits with code 1.
"""

from __future__ import annotations

import json

import duckdb
from click.testing import CliRunner

from tools.bench import plans


def test_rule_models_have_hash_joins_only_on_the_demo(demo_build):
    warehouse = demo_build / "warehouse.duckdb"
    result = plans.report(warehouse, [0.5, 1])
    assert result["interdits"] == []
    half, full = result["parts"]
    assert 0 < half["volume"]["int_suivi__actions"] < full["volume"]["int_suivi__actions"]
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        for model in plans.RULE_MODELS:
            entry = full["modeles"][model]
            assert entry["duree_s"] > 0
            # recomputed from the warehouse's inputs: the rows of the build, no more, no less
            assert entry["ecart_entrepot"] == 0, model
            schema = con.execute(
                "select schema_name from duckdb_tables() where table_name = ?", [model]
            ).fetchone()[0]
            built = con.execute(f'select count(*) from {schema}."{model}"').fetchone()[0]
            assert entry["lignes"] == built, model
    finally:
        con.close()
    # the amounts of a rule's financeur are joined on the action's key, by a hash join
    joins = full["modeles"]["int_suivi__controles_actions"]["jointures"]
    assert {j["operateur"] for j in joins} == {"HASH_JOIN"}
    assert any(
        j["condition"] and "dossier = dossier" in j["condition"] and j["type"] == "LEFT"
        for j in joins
    )


def test_a_join_on_an_or_is_reported_and_fails_the_command(tmp_path, monkeypatch):
    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create schema intermediate")
    con.execute(
        "create table intermediate.int_suivi__actions as select 'T' || (range % 3) as "
        "territoire, 'D' || range as dossier, range % 5 as annee from range(400)"
    )
    con.execute(
        "create table intermediate.regles as select 'T' || (range % 3) as territoire, "
        "case when range % 2 = 0 then range % 5 end as annee from range(12)"
    )
    con.close()
    sql = (
        'select a.dossier from "warehouse"."intermediate"."int_suivi__actions" as a '
        'inner join "warehouse"."intermediate"."regles" as r '
        "on r.annee is null or r.annee = a.annee"
    )
    monkeypatch.setattr(plans, "compile_models", lambda models, folder: {"m_or": sql})
    done = CliRunner().invoke(plans.main, [str(warehouse), "--parts", "0.5,1", "--modele", "m_or"])
    assert done.exit_code == 1, done.output
    result = json.loads(done.output)
    assert {f["operateur"] for f in result["interdits"]} <= set(plans.FORBIDDEN)
    assert [f["part"] for f in result["interdits"]] == [0.5, 1.0]
    full = result["parts"][1]
    assert full["volume"]["int_suivi__actions"] == 400
    assert full["modeles"]["m_or"]["ecart_entrepot"] is None  # not a table of the warehouse
