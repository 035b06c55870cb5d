"""A build with nothing changed since the published one does nothing (and says so).

The published state is made by the project's own functions (archive of the inputs, the
publication switch, the manifest) on a tiny warehouse, without a Dagster run or dbt: a build
that would go on is stopped where dbt starts (``prepare_manifest``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from pipelines import operations
from pipelines.lib.files import sha256_file
from pipelines.operations import archive_inputs, unchanged_since, write_manifest
from pipelines.settings import Paths
from pipelines.warehouse import dbt
from pipelines.warehouse.launch import run_build
from pipelines.warehouse.publication import publish


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _publish(tmp_path: Path, build_id: str, annees: list[str] | None = None) -> Paths:
    """Publish a tiny warehouse of the files of ``raw/`` as a build would (archive, switch,
    manifest), and return the paths."""
    paths = Paths(tmp_path / "raw", tmp_path / "warehouse.duckdb", tmp_path / "marts").resolved()
    paths.staging_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(paths.staging_warehouse))
    con.execute("create schema raw")
    con.execute(
        "create table raw.ingestion_log (source varchar, fichier varchar, empreinte_sha256 varchar)"
    )
    for path in sorted(paths.raw_dir.rglob("*.csv")):
        con.execute(
            "insert into raw.ingestion_log values (?, ?, ?)",
            [path.parent.name, str(path), sha256_file(path)],
        )
    con.close()
    _write(paths.staging_marts / "dim_qpv.parquet", build_id)
    manifest = archive_inputs(paths.staging_warehouse, paths.warehouse, paths.raw_dir, build_id)
    if annees:
        manifest["annees"] = annees
    publish(paths, build_id)
    write_manifest(paths.warehouse, manifest)
    return paths


@pytest.fixture
def published(tmp_path, monkeypatch):
    """The raw folder of a published build, and a dbt that says when a build reaches it."""

    def dbt_reached(*_args, **_kwargs):
        raise RuntimeError("dbt atteint")

    monkeypatch.setattr(dbt, "prepare_manifest", dbt_reached)
    monkeypatch.delenv("OBSERVATOIRE_SEUIL_SECRET", raising=False)
    _write(tmp_path / "raw" / "insee" / "IPRO_2022.csv", "CODGEO;TX_TOT_EMPL\nQP059001;51,2\n")
    _write(tmp_path / "raw" / "programmations" / "VM_2026.csv", "Dossier;Montant\n1;100\n")
    _write(tmp_path / "raw" / "alias_entetes.csv", "entete,champ\n")
    return _publish(tmp_path, "20260101T000000-aaaaaa")


def _build(paths: Paths, **kwargs) -> tuple[int, str | None, str]:
    out = io.StringIO()
    code, reason = run_build(paths, stream=out, **kwargs)
    return code, reason, out.getvalue()


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def test_nothing_changed_nothing_built(published):
    before = _snapshot(published.warehouse.parent)
    code, reason, out = _build(published)
    assert (code, reason) == (0, None)
    assert out.startswith(
        "Rien n'a changé depuis la construction 20260101T000000-aaaaaa : entrepôt inchangé ("
    )
    assert "--forcer pour reconstruire" in out
    assert _snapshot(published.warehouse.parent) == before  # not a byte written


def test_forcer_rebuilds_anyway(published):
    code, reason, out = _build(published, force=True)
    assert code == 1 and "dbt atteint" in reason and "Rien n'a changé" not in out


@pytest.mark.parametrize(
    "change",
    ["same size, other content", "file added", "file removed", "hidden file added"],
)
def test_any_change_of_the_raw_files_builds(published, change):
    prog = published.raw_dir / "programmations" / "VM_2026.csv"
    if change == "same size, other content":
        prog.write_text(prog.read_text(encoding="utf-8").replace("100", "900"), encoding="utf-8")
    elif change == "file added":
        _write(published.raw_dir / "programmations" / "VM_2027.csv", "Dossier;Montant\n")
    elif change == "file removed":
        (published.raw_dir / "alias_entetes.csv").unlink()
    else:
        _write(published.raw_dir / "lieux" / ".cache", "x")
    code, reason, _ = _build(published)
    assert code == 1 and "dbt atteint" in reason


def test_another_code_version_or_option_builds(published, monkeypatch):
    assert unchanged_since(published.raw_dir, published.warehouse, published.marts_dir)
    monkeypatch.setenv("OBSERVATOIRE_SEUIL_SECRET", "5")
    assert unchanged_since(published.raw_dir, published.warehouse, published.marts_dir) is None
    monkeypatch.delenv("OBSERVATOIRE_SEUIL_SECRET")
    monkeypatch.setattr(operations, "code_version", lambda: "0" * 64)
    code, reason, _ = _build(published)
    assert code == 1 and "dbt atteint" in reason


def test_code_version_follows_the_project_files(tmp_path):
    for folder in operations.CODE_FOLDERS:
        _write(tmp_path / folder / "a.sql", "select 1")
    first = operations.code_version(tmp_path)
    _write(tmp_path / "dbt_project" / "target" / "manifest.json", "{}")  # dbt's output
    _write(tmp_path / "pipelines" / "__pycache__" / "a.pyc", "x")
    assert operations.code_version(tmp_path) == first
    _write(tmp_path / "dbt_project" / "a.sql", "select 2")
    assert operations.code_version(tmp_path) != first


def test_other_paths_or_an_older_manifest_build(published, tmp_path):
    # another marts folder, another raw folder with the same files
    other = Paths(published.raw_dir, published.warehouse, tmp_path / "autres_marts")
    assert _build(other)[0] == 1
    copy = tmp_path / "copie"
    for path in published.raw_dir.rglob("*"):
        if path.is_file():
            _write(copy / path.relative_to(published.raw_dir), path.read_text(encoding="utf-8"))
    assert _build(Paths(copy, published.warehouse, published.marts_dir))[0] == 1
    # a manifest written before this version (no code version): built
    manifest_file = published.warehouse.parent / "builds" / "20260101T000000-aaaaaa.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    del manifest["version_code"]
    manifest_file.write_text(json.dumps(manifest), encoding="utf-8")
    assert _build(published)[0] == 1


def test_a_build_of_some_years_skips_only_those_years(published, tmp_path):
    paths = _publish(tmp_path, "20260102T000000-bbbbbb", annees=["2026"])
    assert paths == published
    code, _, out = _build(paths, annees=["2026"])
    assert code == 0 and "construction 20260102T000000-bbbbbb : entrepôt inchangé" in out
    # another year, or a full build (a series over two years is checked by a full build only)
    assert _build(paths, annees=["2027"])[0] == 1
    assert _build(paths)[0] == 1


def test_after_a_full_build_a_year_with_no_change_is_skipped(published):
    code, _, out = _build(published, annees=["2026"])
    assert code == 0 and "entrepôt inchangé" in out


def test_cli_forcer(monkeypatch, tmp_path):
    from pipelines import cli
    from pipelines.warehouse import launch

    seen = {}

    def fake_run_build(paths, **kwargs):
        seen.update(kwargs)
        return 0, None

    monkeypatch.setattr(launch, "run_build", fake_run_build)
    (tmp_path / "raw").mkdir()
    runner = CliRunner()
    args = ["build", "--raw-dir", str(tmp_path / "raw"), "--warehouse", str(tmp_path / "w.duckdb")]
    assert runner.invoke(cli.main, [*args, "--forcer"]).exit_code == 0
    assert seen["force"] is True
    assert runner.invoke(cli.main, args).exit_code == 0
    assert seen["force"] is False
    assert "--forcer" in runner.invoke(cli.main, ["build", "--help"]).output
