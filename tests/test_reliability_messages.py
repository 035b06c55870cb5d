"""Reliability of what reaches SQL and spreadsheets, and of what a failed build says.

- paths and names reach DuckDB as bound parameters or quoted (a project, raw or marts folder
  with an apostrophe works; a hostile table name is a name, never SQL);
- every CSV the project writes (the download journal; the EPCI seeds) has no cell a
  spreadsheet would evaluate;
- a blocking dbt test that fails says in French what is wrong and which raw file and lines
  caused it (unit test on dbt's run results, and one end-to-end build with a lower-case
  territory prefix and unknown indicators).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines.settings import Paths

INJECTION = "=cmd|' /C calc'!A0"
ODD = 'l\'index "cité"'


# --- 1. SQL: paths as quoted literals or parameters, names as quoted identifiers -------------


def test_spatial_installs_from_a_project_path_with_an_apostrophe(tmp_path, monkeypatch):
    """``INSTALL '<file>'`` takes no parameter: the path is a literal with its quote doubled."""
    from pipelines import duckdb_utils

    folder = tmp_path / "l'équipe" / "venv"
    folder.mkdir(parents=True)
    copy = folder / "spatial.duckdb_extension"
    shutil.copy(duckdb_utils.spatial_extension_file(), copy)
    monkeypatch.setattr(duckdb_utils, "spatial_extension_file", lambda: copy)
    # an empty extension folder: LOAD fails, so the extension is installed from the file
    con = duckdb.connect(config={"extension_directory": str(tmp_path / "extensions")})
    try:
        duckdb_utils.load_spatial(con)
        assert con.execute("select ST_AsText(ST_Point(1, 2))").fetchone() == ("POINT (1 2)",)
    finally:
        con.close()
    assert list((tmp_path / "extensions").rglob("spatial.duckdb_extension"))
    assert duckdb_utils.sql_literal("/a/l'b") == "'/a/l''b'"
    assert duckdb_utils.quote_identifier(ODD) == '"l\'index ""cité"""'


def _odd_mart(con: duckdb.DuckDBPyConnection) -> None:
    from pipelines.duckdb_utils import load_spatial, quote_identifier, sql_literal

    load_spatial(con)
    con.execute("create schema marts")
    con.execute(
        f"create table marts.{quote_identifier(ODD)} as select "
        f"{sql_literal(INJECTION)} as code_qpv, ST_Point(3.5, 50.3) as geom"
    )


def test_geo_export_quotes_the_table_name(tmp_path):
    from geo.export import dim_qpv_frame, export_dim_qpv, relation_sql

    con = duckdb.connect()
    try:
        _odd_mart(con)
        frame = dim_qpv_frame(con, ("marts", ODD))
        assert list(frame.code_qpv) == [INJECTION]
        out = tmp_path / "l'observation" / "marts"
        written = export_dim_qpv(con, out, table=("marts", ODD), formats=("geojson",))
        assert json.loads(written["geojson"].read_text())["features"][0]["geometry"] == {
            "type": "Point",
            "coordinates": [3.5, 50.3],
        }
        # a hostile name is a (missing) table, never a statement
        with pytest.raises(duckdb.CatalogException):
            dim_qpv_frame(con, "marts.dim_qpv; drop table marts")
    finally:
        con.close()
    assert relation_sql("marts.dim_qpv") == '"marts"."dim_qpv"'
    with pytest.raises(ValueError, match="Nom de table invalide"):
        relation_sql(("marts", ""))


def test_publication_audit_counts_oddly_named_marts(tmp_path):
    from pipelines.duckdb_utils import quote_identifier
    from pipelines.warehouse.publication import audit

    staging = tmp_path / "l'entrepôt" / "warehouse.duckdb"
    staging.parent.mkdir()
    con = duckdb.connect(str(staging))
    con.execute("create schema marts; create schema raw")
    con.execute(f"create table marts.{quote_identifier(ODD)} as select 1 as n")
    con.execute(
        "create table raw.ingestion_log (fichier varchar, lignes_lues int, lignes_chargees int, "
        "lignes_rejetees int)"
    )
    con.close()
    assert audit(staging, [ODD]) == {ODD: 1}


def test_compare_warehouses_attaches_paths_with_an_apostrophe(tmp_path):
    from tools.compare_warehouses import compare

    folder = tmp_path / "l'ancien"
    folder.mkdir()
    for name, value in (("a.duckdb", 1), ("b.duckdb", 2)):
        con = duckdb.connect(str(folder / name))
        con.execute(f"create schema marts; create table marts.t as select {value} as n")
        con.close()
    summary = compare(folder / "a.duckdb", folder / "b.duckdb", set(), [])
    assert summary["detail"]["marts.t"]["seulement_old"] == 1


# --- 2. no formula in the CSV files the project writes ----------------------------------------


def test_fetch_journal_neutralises_formula_cells(tmp_path):
    from pipelines.fetch import LOG_NAME, Resultat, _append_log

    hostile = Resultat(
        "+source", "f.csv", "@evil", tmp_path / "f.csv", "erreur", 12, None, INJECTION
    )
    _append_log(tmp_path, hostile)
    _append_log(tmp_path, Resultat("s", "g.csv", "-x", tmp_path / "g.csv", "erreur", -1))
    with (tmp_path / LOG_NAME).open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    assert rows[0]["message"] == "'" + INJECTION
    assert (rows[0]["source"], rows[0]["url"], rows[0]["octets"]) == ("'+source", "'@evil", "12")
    assert (rows[1]["url"], rows[1]["octets"]) == ("'-x", "-1")  # a number stays a number
    for row in rows:
        assert not any(v.startswith(("=", "+", "@", "\t", "\r")) for v in row.values())


def test_epci_seed_derivation_refuses_formula_cells():
    from tools.referentiels.epci import check_cells

    check_cells([{"nom": "CA Valenciennes Métropole", "population_municipale": 190000}])
    with pytest.raises(ValueError, match="ligne 3, colonne « nom »: valeur « =1\\+1 »"):
        check_cells([{"nom": "CC A"}, {"nom": "=1+1"}])


# --- 3. a failed dbt test names the raw files and lines, in French ----------------------------


def _failed_run(tmp_path: Path) -> Paths:
    """A staging warehouse and dbt's run results as a failed build leaves them."""
    paths = Paths(tmp_path / "raw", tmp_path / "warehouse.duckdb", tmp_path / "marts").resolved()
    raw = str(paths.raw_dir)
    paths.staging_dir.mkdir(parents=True)
    con = duckdb.connect(str(paths.staging_warehouse))
    con.execute("create schema staging; create schema referentiels; create schema marts")
    con.execute("create table referentiels.ref_indicateurs as select 'taux_emploi' as indicateur")
    con.execute(
        "create table staging.stg_references__valeurs as select * from (values "
        f"('taux_emploi', '{raw}/referentiels/v.csv', 2),"
        f" ('fantome', '{raw}/referentiels/v.csv', 3),"
        f" ('fantome', '{raw}/referentiels/w.csv', 7)) t(indicateur, fichier, ligne)"
    )
    con.execute(
        "create table staging.stg_suivi__programmations as select * from (values "
        f"(NULL, '{raw}/programmations/vm_programmation_2028.csv', 3),"
        f" (NULL, '{raw}/programmations/vm_programmation_2028.csv', 4),"
        f" ('VM', '{raw}/programmations/VM_programmation_2027.csv', 3))"
        " t(territoire, source_fichier, source_ligne)"
    )
    con.execute(
        "create table staging.stg_suivi__bilans as select * from (values "
        f"('ok', 1, '{raw}/bilans/b.csv', 2), ('inconnu', 1, '{raw}/bilans/b.csv', 3),"
        f" ('ko', 7, '{raw}/bilans/b.csv', 4), (NULL, NULL, '{raw}/bilans/b.csv', 5))"
        " t(statut, niveau, source_fichier, source_ligne)"
    )
    con.execute("create table marts.depenses as select NULL::varchar as territoire, 2 as annee")
    con.close()

    def model(name, schema):
        return {"name": name, "schema": schema, "alias": name, "resource_type": "model"}

    def test(name, kind, model_id, kwargs, meta=None, parents=()):
        return {
            "name": name,
            "resource_type": "test",
            "attached_node": model_id,
            "test_metadata": {"name": kind, "kwargs": kwargs},
            "depends_on": {"nodes": [model_id, *parents]},
            "config": {"meta": meta or {}},
        }

    nodes = {
        "model.p.valeurs": model("stg_references__valeurs", "staging"),
        "seed.p.ref": model("ref_indicateurs", "referentiels"),
        "model.p.prog": model("stg_suivi__programmations", "staging"),
        "model.p.depenses": model("depenses", "marts"),
        "model.p.bilans": model("stg_suivi__bilans", "staging"),
        "test.p.rel": test(
            "relationships_valeurs_indicateur",
            "relationships",
            "model.p.valeurs",
            {"column_name": "indicateur", "field": "indicateur"},
            {"message": "indicateur inconnu du dictionnaire"},
            ["seed.p.ref"],
        ),
        "test.p.warn": test(
            "not_null_prog_territoire",
            "not_null",
            "model.p.prog",
            {"column_name": "territoire"},
            {"message": "code territoire introuvable"},
        ),
        "test.p.prog": test(
            "colonnes_renseignees_prog",
            "colonnes_renseignees",
            "model.p.prog",
            {"colonnes": ["source_fichier", "territoire"]},
        ),
        "test.p.valeurs": test(
            "valeurs_admises_bilans",
            "valeurs_admises",
            "model.p.bilans",
            {"valeurs": {"statut": ["ok", "ko"], "niveau": [1, 2, 3]}},
        ),
        "test.p.depenses": test(
            "colonnes_renseignees_depenses",
            "colonnes_renseignees",
            "model.p.depenses",
            {"colonnes": ["territoire", "annee"]},
        ),
        "test.p.singulier": {"name": "assert_lignes", "resource_type": "test", "config": {}},
    }
    singular = (
        "-- lines of a file\nselect source_fichier, source_ligne "
        'from "warehouse"."staging"."stg_suivi__programmations" where territoire is null'
    )
    results = [
        {"unique_id": "model.p.valeurs", "status": "success"},
        {"unique_id": "test.p.rel", "status": "fail", "failures": 2},
        {"unique_id": "test.p.warn", "status": "warn", "failures": 2},
        {"unique_id": "test.p.prog", "status": "fail", "failures": 1},
        {"unique_id": "test.p.valeurs", "status": "fail", "failures": 2},
        {"unique_id": "test.p.depenses", "status": "fail", "failures": 1},
        {
            "unique_id": "test.p.singulier",
            "status": "fail",
            "failures": 2,
            "compiled_code": singular,
        },
        {"unique_id": "test.p.ok", "status": "pass"},
    ]
    target = paths.staging_dir / "dbt" / "target"
    target.mkdir(parents=True)
    (target / "manifest.json").write_text(json.dumps({"nodes": nodes}))
    (target / "run_results.json").write_text(json.dumps({"results": results}))
    return paths


def test_failed_tests_are_explained_with_files_and_lines(tmp_path):
    from pipelines.warehouse.failures import explain_test_failures

    lines = explain_test_failures(_failed_run(tmp_path))
    assert lines == [
        "stg_references__valeurs: « indicateur » absent de ref_indicateurs (colonne indicateur)"
        " — indicateur inconnu du dictionnaire (2 ligne(s)): referentiels/v.csv ligne 3"
        " (« fantome ») ; referentiels/w.csv ligne 7 (« fantome »)",
        # the cause comes from the staging warning on the same column
        "stg_suivi__programmations: colonne « territoire » vide — code territoire introuvable"
        " (2 ligne(s)): programmations/vm_programmation_2028.csv lignes 3, 4",
        # one test for the closed lists of a model: each column outside its list, NULL admitted
        "stg_suivi__bilans: « statut » hors des valeurs admises (ok, ko) (1 ligne(s)):"
        " bilans/b.csv ligne 3 (« inconnu »)",
        "stg_suivi__bilans: « niveau » hors des valeurs admises (1, 2, 3) (1 ligne(s)):"
        " bilans/b.csv ligne 4 (« 7 »)",
        "assert_lignes: contrôle assert_lignes en échec (2 ligne(s)):"
        " programmations/vm_programmation_2028.csv lignes 3, 4",
        "depenses: colonne « territoire » vide — code territoire introuvable (1 ligne(s)) ;"
        " cette table ne garde pas le fichier d'origine des lignes",
    ]
    assert len(explain_test_failures(_failed_run(tmp_path / "b"), limit=2)) == 3


def test_no_explanation_without_dbt_results(tmp_path):
    from pipelines.warehouse.failures import explain_test_failures
    from pipelines.warehouse.launch import dbt_exit_line

    paths = Paths(tmp_path / "raw", tmp_path / "w.duckdb", tmp_path / "marts").resolved()
    assert explain_test_failures(paths) == []
    text = "The dbt CLI process with command\n\n`dbt build`\n\nfailed with exit code `1`. Check"
    assert dbt_exit_line(text).startswith("dbt a échoué (code 1)")
    assert dbt_exit_line("autre échec\nsuite") == "autre échec"


# A build that fails a blocking dbt check, run through the CLI as a user does, says which file
# and lines failed in French and nothing else: asserted in tests/test_operations.py (the build
# that fails after the kill -9 points, one build for both tests).


# --- 4. the publication cases of the corpus (tests/corpus/README.md) --------------------------

CORPUS = Path(__file__).with_name("corpus")


def test_corpus_raw_folder_without_input_is_refused(tmp_path):
    """Only hidden files (a lock file, a .gitkeep): no input, the build would publish empty
    marts."""
    from pipelines.operations import MissingInputsError, check_inputs

    with pytest.raises(MissingInputsError) as err:
        check_inputs(CORPUS / "brut_sans_entree", tmp_path / "warehouse.duckdb")
    assert "aucun fichier brut (dossier vide ou non monté" in str(err.value)
    assert "--autoriser-vide" in str(err.value)


def test_corpus_link_leaving_the_raw_folder_is_refused():
    from pipelines.lib.files import FileNameError, list_files

    raw = CORPUS / "brut_lien_sortant"
    assert (raw / "insee" / "IPRO_2022.csv").is_symlink()
    with pytest.raises(FileNameError, match=r"insee/IPRO_2022\.csv: lien symbolique vers .*"):
        list_files(raw / "insee", root=raw)


def test_corpus_formula_porteur_kept_as_data_and_neutralised_when_published(tmp_path):
    """The porteurs of the file are data: read and loaded as typed; the SCDL CSV published
    from them has no cell a spreadsheet would evaluate (amounts stay numbers)."""
    from pipelines.publication.scdl import export_scdl
    from pipelines.sources.programmations import parse_programmations
    from tests.test_scdl import _mart

    result = parse_programmations([CORPUS / "VM_programmation_2027_porteur_formule.csv"])
    assert result.rejects.empty
    porteurs = dict(zip(result.rows.dossier, result.rows.porteur_nom, strict=True))
    assert porteurs == {
        "2027-001": INJECTION,
        "2027-002": "@SUM(A1:A9)",
        "2027-003": "-Asso moins",
        "2027-004": "Asso ordinaire",
    }
    con = duckdb.connect()
    tail = ("aide en numéraire", "unique", "2027-01-01/2027-12-31", None, False, 1.0, None)
    _mart(
        con,
        [
            ("EPCI X", "24590116000012", None, row.dossier, row.porteur_nom, None, None,
             row.intitule, -row.montant_accorde, *tail, "vm_2027.csv")
            for row in result.rows.itertuples()
        ],
    )  # fmt: skip
    export_scdl(con, tmp_path)
    con.close()
    with (tmp_path / "scdl" / "vm_2027.csv").open(encoding="utf-8", newline="") as fh:
        rows = {r["referenceDecision"]: r for r in csv.DictReader(fh)}
    assert rows["2027-001"]["nomBeneficiaire"] == "'" + INJECTION
    assert rows["2027-002"]["nomBeneficiaire"] == "'@SUM(A1:A9)"
    assert rows["2027-002"]["objet"] == "'+33 ateliers"
    assert rows["2027-003"]["nomBeneficiaire"] == "'-Asso moins"
    assert rows["2027-004"]["nomBeneficiaire"] == "Asso ordinaire"
    assert rows["2027-001"]["montant"] == "-8000.00"  # a number is never prefixed
