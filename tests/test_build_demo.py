"""End-to-end: the demo written and built by the CLI; marts checked against the raw files."""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from pipelines.duckdb_utils import load_spatial
from tests.test_cli import MARTS


@pytest.fixture(scope="module")
def con(demo_build):
    connection = duckdb.connect(str(demo_build / "warehouse.duckdb"), read_only=True)
    load_spatial(connection)
    yield connection
    connection.close()


def amount(cell) -> float:
    """Independent French amount parsing for the test ('12 500,00 €')."""
    if cell is None or str(cell).strip() == "":
        return 0.0
    if isinstance(cell, int | float):
        return float(cell)
    text = re.sub(r"[\s\u00a0\u202f€]", "", str(cell)).replace(".", "").replace(",", ".")
    return float(text)


def csv_rows(path: Path) -> list[dict]:
    """Rows of a demo CSV after its one-line preamble; exact duplicate lines counted once."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header_at = next(i for i, ln in enumerate(lines) if max(ln.count(";"), ln.count(",")) > 5)
    delimiter = ";" if lines[header_at].count(";") > 5 else ","
    seen, rows = set(), []
    for line in lines[header_at + 1 :]:
        if not line.strip() or line in seen:
            continue
        seen.add(line)
        rows.append(line)
    return list(csv.DictReader([lines[header_at], *rows], delimiter=delimiter))


def test_taux_emploi_equals_insee_extract(con, demo_build):
    expected = {}
    for year in (2021, 2022):
        path = demo_build / "raw" / "insee" / f"IPRO_{year}.csv"
        for row in csv.DictReader(path.open(encoding="utf-8-sig", newline=""), delimiter=";"):
            cell = row["TX_TOT_EMPL"].strip()
            expected[(row["CODGEO"], year)] = float(cell.replace(",", ".")) if cell else None
    got = dict(
        ((c, m), v)
        for c, m, v in con.execute(
            "select code_qpv, millesime, taux_emploi from marts.taux_emploi_quartier"
        ).fetchall()
    )
    assert got == expected
    assert len(got) == 80
    assert got[("QP059020", 2022)] == 40.0
    row = con.execute(
        "select taux_emploi_epci, ecart_epci_points, territoire from marts.taux_emploi_quartier "
        "where code_qpv = 'QP059020' and millesime = 2022"
    ).fetchone()
    assert row == (53.8, round(40.0 - 53.8, 1), "VM")  # seed 001: Valenciennes Métropole 53.8 %


def test_dim_qpv_and_bridge(con):
    counts = dict(
        con.execute("select geographie, count(*) from marts.dim_qpv group by 1").fetchall()
    )
    assert counts == {"2024": 42, "2015": 40}
    bad = con.execute(
        "select count(*) from marts.dim_qpv where geographie = '2024' "
        "and (geom is null or not st_isvalid(geom) or surface_km2 <= 0)"
    ).fetchone()[0]
    assert bad == 0
    territories = dict(
        con.execute(
            "select territoire, count(*) from marts.dim_qpv where geographie = '2024' group by 1"
        ).fetchall()
    )
    assert territories == {"VM": 15, "CAMVS": 11, "CABBALR": 16}
    communes = {
        r[0]
        for r in con.execute(
            "select nom_commune from marts.bridge_qpv_commune where code_qpv = 'QN05921M'"
        ).fetchall()
    }
    assert {"Anzin", "Beuvrages", "Bruay-sur-l'Escaut", "Raismes", "Valenciennes"} <= communes


def test_every_mart_exported_to_parquet(demo_build, con):
    for mart in MARTS:
        path = demo_build / "marts" / f"{mart}.parquet"
        table = pq.read_table(path)
        rows = con.execute(f"select count(*) from marts.{mart}").fetchone()[0]
        assert table.num_rows == rows
    metadata = pq.read_schema(demo_build / "marts" / "dim_qpv.parquet").metadata
    assert b"geo" in metadata  # GeoParquet


def _raw_granted(raw: Path) -> dict[tuple[str, int], float]:
    totals: dict[tuple[str, int], float] = defaultdict(float)
    # a dossier x financeur repeated with other values counts once: the last line of the export
    for path in sorted((raw / "programmations").glob("VM_*.csv")):
        last = {(r["N° dossier"], r["Financeur"]): r for r in csv_rows(path)}
        for row in last.values():
            totals[("VM", int(row["Exercice"]))] += amount(row["Montant accordé"])
    for path in sorted((raw / "programmations").glob("CABBALR_*.csv")):
        year = int(re.search(r"20\d\d", path.name).group())
        last = {(r["Dossier"], r["Financeur"]): r for r in csv_rows(path)}
        for row in last.values():
            totals[("CABBALR", year)] += amount(row["Montant attribué"])
    for path in sorted((raw / "programmations").glob("CAMVS_*.xlsx")):
        year = int(re.search(r"20\d\d", path.name).group())
        sheet = load_workbook(path, read_only=True, data_only=True).worksheets[-1]
        rows = list(sheet.iter_rows(values_only=True))
        top = next(i for i, r in enumerate(rows) if "Code dossier" in r)
        header = [str(h or "") for h in rows[top]]
        upper = [str(h or "") for h in rows[top - 1]] if top else [""] * len(header)
        granted = [
            j
            for j, h in enumerate(header)
            if "accord" in h.lower() or ("accord" in upper[j].lower())
        ]
        seen = set()
        for row in rows[top + 1 :]:
            if row in seen:  # exact duplicate line: rejected by the build, counted once
                continue
            seen.add(row)
            if row[header.index("Code dossier")]:
                totals[("CAMVS", year)] += sum(amount(row[j]) for j in granted)
    return dict(totals)


def test_depenses_orientation_equals_raw_programmations(con, demo_build):
    expected = _raw_granted(demo_build / "raw")
    got = {
        (t, y): v
        for t, y, v in con.execute(
            "select territoire, annee, sum(montant_accorde) from marts.depenses_orientation "
            "group by 1, 2"
        ).fetchall()
    }
    assert (
        set(got)
        == set(expected)
        == {
            ("VM", 2026),
            ("VM", 2027),
            ("CAMVS", 2025),
            ("CAMVS", 2026),
            ("CABBALR", 2022),
            ("CABBALR", 2023),
        }
    )
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
    unknown = con.execute(
        "select count(*) from marts.depenses_orientation "
        "where financeur = 'NON_RECONNU' or not orientation_reconnue"
    ).fetchone()[0]
    assert unknown == 0


def test_exact_duplicates_rejected_with_their_line(con):
    rejects = con.execute(
        "select fichier, ligne, motif from raw.rejets where source = 'programmations'"
    ).fetchall()
    assert rejects and all("doublon" in motif for _, _, motif in rejects)
    for fichier, ligne, _ in rejects:
        lines = (
            Path(fichier).read_text(encoding="utf-8-sig").splitlines()
            if fichier.endswith(".csv")
            else None
        )
        if lines:
            assert lines[ligne - 1] in lines[: ligne - 1]  # the same line appears earlier
    log = con.execute(
        "select sum(lignes_lues), sum(lignes_chargees), sum(lignes_rejetees) "
        "from raw.ingestion_log where source = 'programmations'"
    ).fetchone()
    assert log[0] == log[1] + log[2] and log[2] == len(rejects)


def test_beneficiaires_genre_equals_raw_bilans(con, demo_build):
    expected: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0, 0])
    for path in sorted((demo_build / "raw" / "bilans").glob("*.csv")):
        territoire = path.name.split("_")[0]
        year = int(re.search(r"20\d\d", path.name).group())
        sexes = ("Femmes", "Hommes", "Sexe non renseigné")
        for row in csv_rows(path):
            if "Tranche d'âge ou public" in row:  # long layout: one line per sex, band, public
                if row["Tranche d'âge ou public"] in sexes:
                    k = sexes.index(row["Tranche d'âge ou public"])
                    expected[(territoire, year)][k] += int(row["Effectif"])
                continue
            for k, col in enumerate(sexes):
                expected[(territoire, year)][k] += int(row[col] or 0)
    got = {
        (t, y): [f, h, n]
        for t, y, f, h, n in con.execute(
            "select territoire, annee, sum(femmes), sum(hommes), sum(sexe_non_renseigne) "
            "from marts.beneficiaires_genre group by 1, 2"
        ).fetchall()
    }
    for key, value in expected.items():
        assert got[key] == value, key
    share = con.execute(
        "select femmes, hommes, part_femmes from marts.beneficiaires_genre "
        "where femmes + hommes > 0 limit 1"
    ).fetchone()
    assert share[2] == round(100 * share[0] / (share[0] + share[1]), 1)


def test_build_summary_printed(demo_build):
    log = (demo_build / "build.log").read_text()
    assert "Résumé par source" in log and "programmations" in log and "Marts écrits" in log
    # 6 INSEE files of 40 QPV each (data/demo/insee), none rejected
    [insee] = [line for line in log.splitlines() if line.strip().startswith("insee ")]
    assert "6 fichier(s)" in insee and " 240 chargées" in insee and " 0 rejetées" in insee
    assert len(log.splitlines()) < 60  # dbt's per-node lines go to the build log
    assert (
        "données fictives"
        in (demo_build / "raw" / "programmations" / "README.txt")
        .read_text(encoding="utf-8")
        .lower()
    )


def test_dagster_instance_holds_the_build(demo_build):
    """After a build, the persistent instance (what `make ui` shows) has its successful run, a
    materialization of every asset and the results of every check."""
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.warehouse.dbt import dbt_project

    instance = dg.DagsterInstance.from_config(str(demo_build / "dagster_home"))
    [run] = instance.get_runs()
    assert run.job_name == "build_entrepot" and run.is_success
    graph = defs.resolve_asset_graph()
    # raw/rejets, raw/ingestion_log...: dbt sources written alongside by every ingestion asset
    keys = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    materialized = {
        key for key in keys if instance.get_latest_materialization_event(key) is not None
    }
    assert materialized == keys
    checks = graph.asset_check_keys
    # every dbt data test of the manifest is a check, plus two per ingestion asset
    manifest = json.loads(dbt_project().manifest_path.read_text())
    tests = sum(1 for n in manifest["nodes"].values() if n["resource_type"] == "test")
    assert tests > 200 and len(checks) > tests
    evaluated = instance.event_log_storage.get_latest_asset_check_execution_by_key(list(checks))
    assert set(evaluated) == set(checks)
    statuses = {e.status.value for e in evaluated.values()}
    assert statuses <= {"SUCCEEDED", "FAILED"}
    assert instance.get_latest_materialization_event(
        dg.AssetKey(["publication", "entrepot"])
    ).asset_materialization.metadata["build_id"].value in {
        p.stem for p in (demo_build / "builds").glob("*.json")
    }


def test_the_instance_files_are_dagster_s_own(demo_build):
    """The build's event log (pipelines/warehouse/instance.py keeps one engine per database) is
    written in Dagster's own SQLite files: Dagster's default storage reads the same events."""
    import dagster as dg
    from dagster._core.storage.event_log import SqliteEventLogStorage

    from pipelines.warehouse.instance import SqliteEventLogStorageMemeMoteur

    home = demo_build / "dagster_home"
    instance = dg.DagsterInstance.from_config(str(home))
    assert isinstance(instance.event_log_storage, SqliteEventLogStorageMemeMoteur)
    [run] = instance.get_runs()
    plain = SqliteEventLogStorage(str(home / "history" / "runs"))
    events = plain.get_logs_for_run(run.run_id)
    assert len(events) == len(instance.all_logs(run.run_id)) > 500
    key = dg.AssetKey(["marts", "dim_qpv"])
    assert plain.get_latest_materialization_events([key])[key] is not None
