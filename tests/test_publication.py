"""Write-audit-publish pieces, without a build: the staging folders, the audit, the swap, the lock.

The end-to-end behaviour (kill -9, failed builds, --annee, the Dagster instance) is tested on real
builds in test_operations.py, test_partitions_annee.py and test_build_demo.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb
import pytest

from pipelines.operations import BuildLock, OperationError
from pipelines.settings import Paths
from pipelines.warehouse import resources
from pipelines.warehouse.publication import AuditError, audit, publish
from pipelines.warehouse.resources import BuildSetupError, Warehouse, prepare_staging


def _paths(tmp_path) -> Paths:
    return Paths(tmp_path / "raw", tmp_path / "warehouse.duckdb", tmp_path / "marts").resolved()


def _warehouse(path, marts: dict[str, int], log_rows=((10, 9, 1),)) -> None:
    con = duckdb.connect(str(path))
    con.execute("create schema raw; create schema marts")
    con.execute(
        "create table raw.ingestion_log (fichier varchar, lignes_lues int, lignes_chargees int, "
        "lignes_rejetees int)"
    )
    for i, (lus, ok, rej) in enumerate(log_rows):
        con.execute(
            "insert into raw.ingestion_log values (?, ?, ?, ?)", [f"f{i}.csv", lus, ok, rej]
        )
    for name, rows in marts.items():
        con.execute(f"create table marts.{name} as select range as n from range({rows})")
    con.close()


def test_staging_sits_beside_the_published_files_with_the_same_file_name(tmp_path):
    paths = _paths(tmp_path)
    assert paths.staging_warehouse == tmp_path / ".warehouse.duckdb.construction/warehouse.duckdb"
    assert paths.staging_marts == tmp_path / ".marts.construction"


def test_prepare_staging_empty_or_copy_and_stale_removed(tmp_path):
    paths = _paths(tmp_path)
    with pytest.raises(BuildSetupError, match="aucun entrepôt publié"):
        prepare_staging(paths, copy_published=True)
    _warehouse(paths.warehouse, {"a": 3})
    (paths.staging_marts / "old.parquet").write_text("what a killed build left")
    prepare_staging(paths, copy_published=False)
    assert list(paths.staging_dir.iterdir()) == [] and list(paths.staging_marts.iterdir()) == []
    prepare_staging(paths, copy_published=True)
    assert paths.staging_warehouse.read_bytes() == paths.warehouse.read_bytes()


def test_audit_counts_marts_and_refuses_what_is_missing_or_unbalanced(tmp_path):
    staging = tmp_path / "w.duckdb"
    with pytest.raises(AuditError, match="aucune construction à publier"):
        audit(staging, ["a"])
    _warehouse(staging, {"a": 3, "b": 0})
    assert audit(staging, ["a", "b"]) == {"a": 3, "b": 0}
    with pytest.raises(AuditError, match="marts absents de la construction: c"):
        audit(staging, ["a", "c"])
    unbalanced = tmp_path / "u.duckdb"
    _warehouse(unbalanced, {"a": 1}, log_rows=((10, 9, 1), (5, 3, 1)))
    with pytest.raises(AuditError, match="f1.csv: 5 lignes lues mais 3 chargées \\+ 1 rejetées"):
        audit(unbalanced, ["a"])


def test_publish_replaces_warehouse_and_marts_and_removes_staging(tmp_path):
    """A layout from before publications (a real file and a real folder) becomes two links
    through ``courante``; marts not rebuilt are carried over; staging removed."""
    paths = _paths(tmp_path)
    _warehouse(paths.warehouse, {"a": 1})
    paths.marts_dir.mkdir()
    (paths.marts_dir / "a.parquet").write_text("old")
    (paths.marts_dir / "kept.parquet").write_text("published before, not rebuilt")
    (paths.marts_dir / "scdl").mkdir()
    (paths.marts_dir / "scdl" / "old.csv").write_text("old")
    prepare_staging(paths, copy_published=False)
    _warehouse(paths.staging_warehouse, {"a": 7})
    (paths.staging_marts / "a.parquet").write_text("new")
    (paths.staging_marts / "scdl").mkdir()
    (paths.staging_marts / "scdl" / "new.csv").write_text("new")
    publish(paths, "b1")
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    assert con.execute("select count(*) from marts.a").fetchone() == (7,)
    con.close()
    assert (paths.marts_dir / "a.parquet").read_text() == "new"
    assert (paths.marts_dir / "kept.parquet").exists()
    assert [p.name for p in (paths.marts_dir / "scdl").iterdir()] == ["new.csv"]
    assert not paths.staging_dir.exists() and not paths.staging_marts.exists()
    assert (
        os.readlink(paths.warehouse) == ".warehouse.duckdb.publications/courante/warehouse.duckdb"
    )
    assert os.readlink(paths.marts_dir) == ".warehouse.duckdb.publications/courante/marts"
    assert os.readlink(tmp_path / ".warehouse.duckdb.publications" / "courante") == "b1"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".warehouse.duckdb.publications",
        "marts",
        "warehouse.duckdb",
    ]


def test_build_lock_is_reentrant_in_a_process_and_exclusive_between_processes(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    holder = (
        "import sys, time; from pathlib import Path; from pipelines.operations import BuildLock; "
        "lock = BuildLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True); "
        "time.sleep(30)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, str(warehouse)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(OperationError, match="une autre construction est en cours"):
            BuildLock(warehouse).acquire()
        with pytest.raises(OperationError):
            BuildLock(warehouse, wait=0.3).acquire()  # waits, then gives up
    finally:
        proc.kill()
        proc.wait()
    with BuildLock(warehouse), BuildLock(warehouse):  # re-entrant: the CLI, then the run
        pass
    with BuildLock(warehouse):  # released by the kernel when the holder died
        pass


def test_a_run_prepares_its_staging_once(tmp_path, monkeypatch):
    """Dagster sets the folders resource up twice per run (top-level and nested in the warehouse
    resource): the staging is prepared once per run, the lock taken and released."""
    import dagster as dg

    calls = []
    real = resources.prepare_staging
    monkeypatch.setattr(
        resources,
        "prepare_staging",
        lambda paths, copy_published: (calls.append(1), real(paths, copy_published)),
    )
    folders = resources.ProjectFolders(
        raw_dir=str(tmp_path / "raw"),
        warehouse=str(tmp_path / "warehouse.duckdb"),
        marts_dir=str(tmp_path / "marts"),
        allow_empty=True,
    )

    @dg.asset
    def probe(warehouse: Warehouse) -> None:
        with warehouse.connect() as con:
            con.execute("create table t as select 1 as x")

    for _ in range(2):
        result = dg.materialize(
            [probe],
            resources={"folders": folders, "warehouse": resources.Warehouse(folders=folders)},
        )
        assert result.success
    assert calls == [1, 1]
    assert (tmp_path / ".warehouse.duckdb.construction" / "warehouse.duckdb").is_file()
    assert not (tmp_path / "warehouse.duckdb").exists()  # nothing published without the asset
    with BuildLock(tmp_path / "warehouse.duckdb", wait=0):  # released after each run
        pass
