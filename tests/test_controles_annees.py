"""A rule of several years judges each year's action on that year's amounts, even when the
dossier keeps its number from one year to the next (``int_suivi__controles_actions``).

The model is compiled by ``dbt compile`` (:mod:`tools.bench.plans`) and run in memory on tables
with the demo warehouse's schemas (no build of its own) holding one rule, the same dossier in
2023 and 2024 and its État line of each year.
"""

from __future__ import annotations

import duckdb

from tools.bench import plans


def test_same_dossier_two_years_amounts_stay_apart(demo_build, tmp_path):
    model = "int_suivi__controles_actions"
    sql = plans.compile_models((model,), tmp_path)[model]
    _, inputs = plans.dependency_order({model: sql})
    con = duckdb.connect()
    con.execute(f"attach '{demo_build / 'warehouse.duckdb'}' as src (read_only)")
    con.execute("attach ':memory:' as warehouse")
    for table, (_, schema, _) in inputs.items():
        con.execute(f'create schema if not exists warehouse."{schema}"')
        rows = "" if schema == "referentiels" else " limit 0"  # référentiels kept whole
        con.execute(
            f'create table warehouse."{schema}"."{table}" as '
            f'select * from src."{schema}"."{table}"{rows}'
        )
    con.execute(
        "insert into warehouse.intermediate.int_suivi__regles by name select "
        "'T|etat_demande_minimum|ETAT_BOP147|2023|' as regle_cle, 'T' as territoire, "
        "'etat_demande_minimum' as regle, 'ETAT_BOP147' as financeur, 2023 as annee_debut, "
        "'montant_demande' as controle, 'min' as sens, 'EUR' as unite, '5000' as valeur, "
        "5000 as seuil_nombre, 'action' as niveau_controle, 0 as tolerance"
    )
    for year, amount in ((2023, 1000), (2024, 9000)):
        con.execute(
            "insert into warehouse.intermediate.int_suivi__actions by name select 'T' as "
            "territoire, ? as annee, 'D-1' as dossier, 'D-1' as dossier_base, 'Action' as "
            "intitule, 'Association' as porteur_nom, 20000 as cout_total, 'f.csv' as "
            "source_fichier",
            [year],
        )
        con.execute(
            "insert into warehouse.intermediate.int_suivi__actions_financeurs by name select "
            "'T' as territoire, ? as annee, 'D-1' as dossier, 'ETAT_BOP147' as financeur, "
            "? as montant_demande, ? as montant_accorde",
            [year, amount, amount],
        )
    con.execute(f"create table warehouse.intermediate.{model} as {sql}")
    rows = con.execute(
        f"select annee, valeur_nombre, resultat from warehouse.intermediate.{model} order by annee"
    ).fetchall()
    # each year on its own request to the État: 1 000 € < 5 000 €, then 9 000 € (not 10 000 €)
    assert rows == [(2023, 1000.0, "infraction"), (2024, 9000.0, "conforme")]
