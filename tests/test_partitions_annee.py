"""Yearly partitions of the programmations and bilans: rebuilding a year touches only that year,
the sensor asks only for the years whose files changed, and the year publication is atomic."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.duckdb_utils import load_spatial, sql_literal
from pipelines.sources.bilans.assets import bilans
from pipelines.sources.programmations.assets import programmations
from pipelines.sources.programmations.partitions import ANNEE, partition_of
from pipelines.sources.territoires.assets import territoires
from pipelines.warehouse.automation import BUILD_JOB, SUIVI_JOB, changed_years
from tests.conftest import NO_DOCUMENTS, materialize_direct, run_cli

PROG_HEADER = (
    "N° dossier;Exercice;Code SIRET;Raison sociale du porteur;Intitulé de l'action;Orientation;"
    "Quartier(s) concerné(s);Financeur;Montant demandé;Montant accordé\n"
)
BILAN_HEADER = "N° dossier;Intitulé de l'action;QPV de résidence;Femmes;Hommes\n"


def _programmation(year: int, amount: str = "8 000,00 €", qpv: str = "QN05922M") -> str:
    return (
        PROG_HEADER
        + f"{year}-001;{year};73282932000074;Association A;Action A;O1;{qpv};Etat;10 000,00 €;"
        f"{amount}\n"
        + f"{year}-002;{year};73282932000074;Association B;Action B;O2;QN05922M;Etat;douze;1 €\n"
    )


def _bilan(year: int, femmes: int = 3) -> str:
    return BILAN_HEADER + f"{year}-001;Action A;QN05922M;{femmes};2\n"


def _write_year(raw: Path, year: int, **kwargs) -> None:
    (raw / "programmations").mkdir(parents=True, exist_ok=True)
    (raw / "bilans").mkdir(parents=True, exist_ok=True)
    femmes = kwargs.pop("femmes", 3)
    (raw / "programmations" / f"VM_programmation_{year}.csv").write_text(
        _programmation(year, **kwargs), encoding="utf-8"
    )
    (raw / "bilans" / f"VM_bilans_{year}.csv").write_text(_bilan(year, femmes), encoding="utf-8")


TABLES = {
    "programmations": "source_fichier",
    "bilans": "source_fichier",
    "rejets": "fichier",
    "ingestion_log": "fichier",
    "anomalies": "fichier",
}


def _rows_of_year(warehouse: Path, year: int) -> dict[str, str]:
    """Checksum of every raw row that came from a file of ``year`` (load time included)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        out = {}
        for table, column in TABLES.items():
            rows = con.execute(
                f"select * from raw.{table} where {column} like ? order by all",
                [f"%_{year}.csv"],
            ).fetchall()
            out[table] = hashlib.sha256(repr(rows).encode()).hexdigest() + f":{len(rows)}"
        return out
    finally:
        con.close()


def _materialize(raw: Path, warehouse: Path, instance, partition: str | None):
    return materialize_direct(
        [programmations, bilans], raw, warehouse, partition_key=partition, instance=instance
    )


def _load_territories(raw: Path, warehouse: Path, instance) -> None:
    assert materialize_direct([territoires], raw, warehouse, instance=instance).success


def test_rebuilding_a_year_leaves_the_other_years_untouched(tmp_path):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse.duckdb"
    _write_year(raw, 2026)
    _write_year(raw, 2027)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(ANNEE.name, ["2026", "2027"])
    # the territory's perimeter: the QPV codes a programmation may name
    vm = raw / "territoires" / "VM"
    vm.mkdir(parents=True)
    (vm / "territoire.yml").write_text('nom: VM\nsiren: "245901160"\n', encoding="utf-8")
    (vm / "perimetre_qpv.csv").write_text("code_qpv;geographie\nQN05922M;2024\n", "utf-8")
    _load_territories(raw, warehouse, instance)

    assert _materialize(raw, warehouse, instance, "2026").success
    assert _materialize(raw, warehouse, instance, "2027").success
    year_a = _rows_of_year(warehouse, 2026)
    assert year_a["programmations"].endswith(":1") and year_a["rejets"].endswith(":1")

    # year B changes (amount, QPV code unknown to every reference, bilan count): rebuild B only
    _write_year(raw, 2027, amount="9 000,00 €", qpv="QN05999M", femmes=7)
    time.sleep(0.01)
    result = _materialize(raw, warehouse, instance, "2027")
    assert result.success
    assert _rows_of_year(warehouse, 2026) == year_a  # same rows, same load times
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute(
            "select annee, montant_accorde from raw.programmations order by 1"
        ).fetchall() == [(2026, 8000.0), (2027, 9000.0)]
        assert con.execute("select annee, femmes from raw.bilans order by 1").fetchall() == [
            (2026, 3),
            (2027, 7),
        ]
        # each file logged once, whatever the number of rebuilds
        assert con.execute(
            "select source, count(*) from raw.ingestion_log group by 1 order by 1"
        ).fetchall() == [("bilans", 2), ("programmations", 2), ("territoires", 2)]
        unknown = con.execute(
            "select fichier, ligne, colonne, valeur_brute, message from raw.anomalies "
            "where type = 'qpv_inconnu'"
        ).fetchall()
    finally:
        con.close()
    assert len(unknown) == 1
    fichier, ligne, colonne, valeur, message = unknown[0]
    assert fichier.endswith("VM_programmation_2027.csv") and ligne == 2
    assert colonne == "Quartier(s) concerné(s)" and valeur == "QN05999M"
    assert "ligne 2" in message and "code QPV inconnu « QN05999M »" in message

    # run metadata of the partition: its files, their hash, rows read / loaded / rejected
    events = [
        e.event_specific_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["raw", "programmations"])
    ]
    assert [e.partition for e in events] == ["2027"]
    meta = events[0].metadata
    files = meta["fichiers_lus"].value
    assert [Path(f["fichier"]).name for f in files] == ["VM_programmation_2027.csv"]
    assert len(files[0]["empreinte_sha256"]) == 64
    assert (meta["lignes_lues"].value, meta["lignes_chargees"].value) == (2, 1)
    assert meta["lignes_rejetees"].value == 1 and meta["codes_qpv_inconnus"].value == 1
    assert meta["partition"].value == "2027"

    # the same rows as a full (unpartitioned) build of every year
    full = tmp_path / "full.duckdb"
    _load_territories(raw, full, dg.DagsterInstance.ephemeral())
    assert _materialize(raw, full, dg.DagsterInstance.ephemeral(), None).success
    for table in ("programmations", "bilans", "rejets", "anomalies"):
        queries = [
            duckdb.connect(str(w), read_only=True)
            .execute(f"select * from raw.{table} order by all")
            .fetchall()
            for w in (warehouse, full)
        ]
        assert queries[0] == queries[1], table

    # a removed file: its year is emptied, the other year untouched
    (raw / "programmations" / "VM_programmation_2027.csv").unlink()
    assert _materialize(raw, warehouse, instance, "2027").success
    assert _rows_of_year(warehouse, 2026) == year_a
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("select distinct annee from raw.programmations").fetchall() == [(2026,)]
        assert con.execute(
            "select count(*) from raw.anomalies where fichier like '%programmation_2027%'"
        ).fetchone() == (0,)
    finally:
        con.close()


def test_partition_of_a_file_is_the_year_of_its_name():
    assert partition_of("programmations/VM_programmation_2027_DEMO_FICTIF.csv") == "2027"
    assert partition_of("/x/bilans/bilans_vm.xlsx") == "sans-annee"
    assert changed_years(["programmations/VM_2027.csv", "bilans/VM_bilans_2026.xlsx"]) == [
        "2026",
        "2027",
    ]
    assert changed_years(["programmations/VM_2027.csv", "insee/IPRO_2022.csv"]) is None
    assert changed_years(["referentiels/entetes_alias.csv"]) is None
    assert changed_years(["programmations/README.txt"]) is None


def test_sensor_requests_only_the_changed_years(tmp_path, monkeypatch):
    from pipelines.definitions import defs

    raw = tmp_path / "raw"
    _write_year(raw, 2026)
    _write_year(raw, 2027)
    (raw / "insee").mkdir()
    (raw / "insee" / "IPRO_2022.csv").write_text("CODGEO;A\nQP059020;1\n", encoding="utf-8")
    monkeypatch.setenv("OBSERVATOIRE_RAW_DIR", str(raw))
    sensor = defs.get_sensor_def("fichiers_bruts")
    instance = dg.DagsterInstance.ephemeral()

    def evaluate(cursor):
        ctx = dg.build_sensor_context(cursor=cursor, instance=instance)
        return sensor(ctx), ctx.cursor

    first, cursor = evaluate(None)  # nothing known yet: everything is rebuilt
    assert isinstance(first, dg.RunRequest) and first.job_name == BUILD_JOB

    (raw / "bilans" / "VM_bilans_2027.csv").write_text(_bilan(2027, 9), encoding="utf-8")
    result, cursor = evaluate(cursor)
    assert isinstance(result, dg.SensorResult)
    [request] = result.run_requests
    assert request.job_name == SUIVI_JOB and request.partition_key == "2027"
    assert int(request.tags["observatoire/attente_verrou"]) > 0  # waits for a running build
    [add] = result.dynamic_partitions_requests
    assert add.partitions_def_name == "annee" and sorted(add.partition_keys) == ["2026", "2027"]
    instance.add_dynamic_partitions("annee", ["2026", "2027"])  # what the daemon does

    same, cursor = evaluate(cursor)
    assert isinstance(same, dg.SkipReason)

    _write_year(raw, 2028)  # a new year: only it is built, and its partition is added
    result, cursor = evaluate(cursor)
    assert [r.partition_key for r in result.run_requests] == ["2028"]
    assert [r.partition_keys for r in result.dynamic_partitions_requests] == [["2028"]]

    (raw / "insee" / "IPRO_2022.csv").write_text("CODGEO;A\nQP059020;2\n", encoding="utf-8")
    full, cursor = evaluate(cursor)  # not a yearly file: full publication
    assert isinstance(full, dg.RunRequest) and full.job_name == BUILD_JOB
    assert json.loads(cursor)["key"]


@pytest.mark.scenario
def test_cli_build_one_year(demo_build, tmp_path):
    """`observatoire build --annee 2027` on the demo: 2027 rebuilt in a copy of the published
    warehouse (one run of the partitioned job, recorded in the Dagster instance), then
    published; the other years are not reloaded and keep their rows, in raw and in the marts."""
    raw = tmp_path / "raw"
    shutil.copytree(demo_build / "raw", raw)
    shutil.copy(demo_build / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    shutil.copytree(demo_build / "marts", tmp_path / "marts")
    # the manifest of the demo's build: same version and options, the yearly models keep the
    # other years
    shutil.copytree(demo_build / "builds", tmp_path / "builds")
    warehouse = tmp_path / "warehouse.duckdb"

    def snapshot(sql: str) -> list:
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    others = (
        "select * exclude (source_fichier) from raw.programmations where annee <> 2027 order by all"
    )
    marts_others = "select * from marts.depenses_orientation where annee <> 2027 order by all"
    before = (snapshot(others), snapshot(marts_others))
    loads = (
        "select annee, max(horodatage) from raw.ingestion_log l "
        "join (select distinct source_fichier, annee from raw.programmations) p "
        "on l.fichier = p.source_fichier group by annee order by annee"
    )
    loaded_before = snapshot(loads)
    [(total_2027,)] = snapshot(
        "select sum(montant_accorde) from raw.programmations where annee = 2027"
    )
    # drop one funded line of the 2027 file of VM
    [(line_no, amount)] = snapshot(
        "select source_ligne, montant_accorde from raw.programmations "
        "where source_fichier like '%VM_programmation_2027%' and montant_accorde > 0 "
        # not a repeated dossier x financeur (dropping its last line would revive the other)
        "and dossier not in (select dossier from raw.anomalies where dossier is not null "
        "and type in ('demande_en_conflit', 'doublon_dossier')) "
        "order by source_ligne desc limit 1"
    )
    source = raw / "programmations" / "VM_programmation_2027_DEMO_FICTIF.csv"
    lines = source.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    del lines[line_no - 1]
    source.write_text("".join(lines), encoding="utf-8")

    published_files = {
        name: (tmp_path / "marts" / name).stat().st_ino
        for name in (
            "indicateurs_qpv.parquet",
            "csv/indicateurs_qpv.csv",
            "depenses_orientation.parquet",
        )
    }
    published_scdl = {
        p.name: p.stat().st_ino for p in (tmp_path / "marts" / "scdl").glob("subventions_*.csv")
    }

    def scdl_rows() -> dict[str, list]:
        rows: dict[str, list] = {}
        for row in snapshot("select fichier_scdl, * from marts.subventions_scdl order by all"):
            rows.setdefault(row[0], []).append(row)
        return rows

    scdl_before = scdl_rows()
    result = run_cli(
        "build",
        "--annee",
        "2027",
        "--raw-dir",
        str(raw),
        "--warehouse",
        str(warehouse),
        "--marts-dir",
        str(tmp_path / "marts"),
        # the options of the demo's build (its reports written as HTML)
        env={"OBSERVATOIRE_RAPPORT_PDF": os.environ.get("OBSERVATOIRE_RAPPORT_PDF", "0")},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "(années 2027)" in result.stdout
    assert (
        "Année 2027 : les modèles annuels recalculent 2027 et les années suivantes, les autres "
        "sont reprises de l'entrepôt publié" in result.stdout
    )
    # the marts no programmation touches keep their published files (hard links); the others
    # are written again
    reused = re.search(r"Marts inchangés, fichiers repris [^:]*: (.*)", result.stdout)
    assert reused and {"indicateurs_qpv", "lieux_qpv"} <= set(reused.group(1).split(", "))
    # same territories named by the programmations: ref_territoires and the models that depend
    # on the programmations only through it were not rebuilt
    [dbt_log] = (tmp_path / "logs").glob("construction-*.log")
    ran = dbt_log.read_text(encoding="utf-8")
    assert "model intermediate.int_suivi__controles_actions" in ran
    assert "model marts.depenses_orientation" in ran
    assert "referentiels.ref_territoires" not in ran and "model marts.lieux_qpv" not in ran
    assert "depenses_orientation" not in reused.group(1).split(", ")
    # the checks of the tables kept are said once, not one Dagster warning per check
    assert "emitted no result" not in result.stdout + result.stderr
    ungated = re.search(
        r"Contrôles non relancés[^:]*: \d+ contrôle\(s\) de \d+ table\(s\) \((.*)\)", result.stdout
    )
    assert ungated and {"lieux_qpv", "dim_qpv"} <= set(ungated.group(1).split(", "))
    assert "depenses_orientation" not in ungated.group(1).split(", ")
    after = {name: (tmp_path / "marts" / name).stat().st_ino for name in published_files}
    assert after["indicateurs_qpv.parquet"] == published_files["indicateurs_qpv.parquet"]
    assert after["csv/indicateurs_qpv.csv"] == published_files["csv/indicateurs_qpv.csv"]
    assert after["depenses_orientation.parquet"] != published_files["depenses_orientation.parquet"]
    # SCDL files: those whose rows did not change are the published ones (hard links), the
    # others are written again
    scdl_after = {
        p.name: p.stat().st_ino for p in (tmp_path / "marts" / "scdl").glob("subventions_*.csv")
    }
    assert set(scdl_after) == set(published_scdl)
    rewritten = {name for name, ino in scdl_after.items() if ino != published_scdl[name]}
    scdl_now = scdl_rows()
    assert rewritten == {name for name in scdl_now if scdl_now[name] != scdl_before.get(name)}
    assert len(rewritten) < len(scdl_after) and any(n.endswith("_2026.csv") for n in scdl_after)

    assert (snapshot(others), snapshot(marts_others)) == before
    expected = total_2027 - amount
    sums = "select sum(montant_accorde) from {} where annee = 2027"
    assert snapshot(sums.format("raw.programmations")) == [(expected,)]
    assert snapshot(sums.format("marts.depenses_orientation")) == [(expected,)]
    exported = duckdb.sql(
        sums.format(f"'{tmp_path / 'marts' / 'depenses_orientation.parquet'}'")
    ).fetchone()[0]
    assert exported == expected  # the export was refreshed too
    # files of the other years were not reloaded (same load time), those of 2027 were
    loaded_after = dict(snapshot(loads))
    for annee, when in loaded_before:
        if annee == 2027:
            assert loaded_after[annee] > when
        else:
            assert loaded_after[annee] == when, annee
    # the run of the partitioned job is recorded, with its partition, in the instance
    instance = dg.DagsterInstance.get()
    runs = [
        r
        for r in instance.get_runs()
        if r.job_name == SUIVI_JOB and r.tags.get("dagster/partition") == "2027"
    ]
    assert runs and runs[0].is_success

    # the yearly models recomputed 2027 (and kept the other years): every table of the
    # intermediate and marts schemas is the one a full build of the same files gives
    full = tmp_path / "complet"
    result = run_cli(
        "build",
        "--raw-dir",
        str(raw),
        "--warehouse",
        str(full / "warehouse.duckdb"),
        "--marts-dir",
        str(full / "marts"),
        env=NO_DOCUMENTS,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    moved = (str(demo_build / "raw"), str(raw))
    assert _differences(warehouse, full / "warehouse.duckdb", moved) == {}

    bad = run_cli("build", "--annee", "2027", "--as-of", "x", "--raw-dir", str(raw))
    assert bad.returncode == 2 and "ne se combinent pas" in bad.stderr


def _differences(
    built: Path, reference: Path, moved: tuple[str, str]
) -> dict[str, tuple[int, int]]:
    """Tables of the intermediate and marts schemas whose rows differ between two warehouses:
    ``{schema.table: (rows only in built, rows only in reference)}`` (duplicates counted). The
    raw files' paths in ``built`` that begin with ``moved[0]`` are read as under ``moved[1]``
    (a copied raw folder)."""
    old, new = (sql_literal(p) for p in moved)
    con = duckdb.connect()
    try:
        load_spatial(con)
        con.execute(f"attach {sql_literal(str(built))} as a (read_only)")
        con.execute(f"attach {sql_literal(str(reference))} as b (read_only)")
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = 'b' "
            "and schema_name in ('intermediate', 'marts') order by all"
        ).fetchall()
        assert len(tables) > 30
        out = {}
        for schema, table in tables:
            name = f'"{schema}"."{table}"'
            columns = con.execute(
                "select column_name, data_type from duckdb_columns() where database_name = 'a' "
                "and schema_name = ? and table_name = ? order by column_index",
                [schema, table],
            ).fetchall()
            moved_columns = ", ".join(
                f'replace("{c}", {old}, {new}) as "{c}"'
                if kind == "VARCHAR"
                else f'list_transform("{c}", x -> replace(x, {old}, {new})) as "{c}"'
                if kind == "VARCHAR[]"
                else f'"{c}"'
                for c, kind in columns
            )
            only = (
                [
                    con.execute(
                        f"select count(*) from (select {left} except all select * from b.{name})"
                    ).fetchone()[0],
                    con.execute(
                        f"select count(*) from (select * from b.{name} except all select {left})"
                    ).fetchone()[0],
                ]
                if (left := f"{moved_columns} from a.{name}")
                else []
            )
            if any(only):
                out[f"{schema}.{table}"] = tuple(only)
        return out
    finally:
        con.close()


def test_models_that_read_the_programmations_only_through_the_territories():
    """What a build of some years leaves out when the programmations name the same territories:
    the référentiel of territories and the models that depend on the yearly sources through it
    only; every model that reads a year's lines is kept, even if it also reads the territories."""
    from pipelines.warehouse.manifest import territory_only_models

    left_out = set(territory_only_models())
    assert {"ref_territoires", "ref_perimetre_qpv", "dim_qpv", "lieux_qpv"} <= left_out
    assert not left_out & {
        "int_suivi__subventions",  # reads ref_territoires and the year's actions
        "int_suivi__actions_qpv",  # reads ref_perimetre_qpv and the year's actions
        "stg_suivi__programmations",
        "depenses_orientation",
        "croisement_qpv_orientation_financeur",
    }


def test_same_territories_compares_the_territories_the_suivi_names(tmp_path):
    from pipelines.warehouse.dbt import same_territories

    def warehouse(name: str, programmations: list[str], bilans: list[str]) -> Path:
        path = tmp_path / f"{name}.duckdb"
        con = duckdb.connect(str(path))
        con.execute("create schema raw")
        con.execute("create table raw.programmations (territoire varchar, annee integer)")
        con.execute("create table raw.bilans (territoire varchar, annee integer)")
        con.executemany(
            "insert into raw.programmations values (?, 2027)", [[t] for t in programmations]
        )
        con.executemany("insert into raw.bilans values (?, 2027)", [[t] for t in bilans])
        con.close()
        return path

    published = warehouse("publie", ["VM", "VM", "CAMVS"], ["CABBALR"])
    assert same_territories(warehouse("memes", ["CAMVS"], ["VM", "CABBALR"]), published)
    # a fourth EPCI named by the new year's bilans, or a territory no longer named
    assert not same_territories(
        warehouse("plus", ["VM", "CAMVS"], ["CABBALR", "246200364"]), published
    )
    assert not same_territories(warehouse("moins", ["VM"], ["CABBALR"]), published)
    assert not same_territories(tmp_path / "absent.duckdb", published)


def test_a_run_that_published_nothing_is_not_a_success():
    """Dagster counts a run whose publication step was skipped (an upstream output not produced)
    as a success; the command checks that the publication asset was materialized."""
    from types import SimpleNamespace

    from pipelines.warehouse.launch import _published
    from pipelines.warehouse.publication import KEY

    def run(*keys):
        return SimpleNamespace(
            get_asset_materialization_events=lambda: [SimpleNamespace(asset_key=k) for k in keys]
        )

    assert _published(run(dg.AssetKey(["marts", "dim_qpv"]), KEY))
    assert not _published(run(dg.AssetKey(["marts", "dim_qpv"])))


def test_ungated_checks_are_said_in_one_line():
    import logging

    from pipelines.warehouse.launch import UngatedChecks

    ungated = UngatedChecks()
    logger = logging.getLogger(UngatedChecks.LOGGER)
    logger.addFilter(ungated)
    try:
        for check in (
            "marts/dim_qpv:unique_dim_qpv_code_qpv",
            "marts/lieux_qpv:colonnes",
            "marts/dim_qpv:geometrie",
            "marts/dim_qpv:unique_dim_qpv_code_qpv",  # again, for another downstream step
        ):
            logger.warning(
                f"Blocking asset check {check!r} emitted no result in step 'dbt_entrepot'; "
                "downstream step 'exports__marts_parquet' will proceed without gating on it."
            )
        assert not ungated.filter(
            logging.makeLogRecord({"msg": "Blocking asset check 'x:y' emitted no result"})
        )
        assert ungated.filter(logging.makeLogRecord({"msg": "another warning"}))
    finally:
        logger.removeFilter(ungated)
    assert ungated.line() == (
        "Contrôles non relancés, leurs tables n'ayant pas été recalculées : 4 contrôle(s) de 3 "
        "table(s) (dim_qpv, lieux_qpv, x)"
    )
    assert UngatedChecks().line() is None
