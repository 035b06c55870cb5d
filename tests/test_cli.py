"""The command-line contract: help, exit codes, one-line reasons, empty sources, atomicity."""

from __future__ import annotations

import io
import subprocess
import time

import duckdb

from tests.conftest import CONSOLE_SCRIPT, build, run_cli

MARTS = {
    "agregats_qpv",
    "beneficiaires_genre",
    "bridge_qpv_commune",
    "controles_programmation",
    "depenses_objectif",
    "depenses_orientation",
    "dim_qpv",
    "effort_financier_qpv",
    "egalite_marqueur",
    "fiche_quartier",
    "indicateurs_qpv",
    "indicateurs_references",
    "lieux_qpv",
    "subventions_scdl",
    "taux_emploi_quartier",
}


def test_console_script_installed():
    result = subprocess.run([str(CONSOLE_SCRIPT), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "build" in result.stdout


def test_help_on_every_command():
    top = run_cli("--help")
    assert top.returncode == 0
    for command in ("build", "fetch", "report"):
        assert command in top.stdout
        sub = run_cli(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert f" {command} [OPTIONS]" in sub.stdout
    assert "--raw-dir" in run_cli("build", "--help").stdout


def test_missing_raw_dir_fails_with_reason(tmp_path):
    result = build(tmp_path / "nulle-part", tmp_path)
    assert result.returncode != 0
    assert "nulle-part" in result.stderr


def test_empty_raw_dir_gives_empty_marts(tmp_path):
    (tmp_path / "raw").mkdir()
    result = build(tmp_path / "raw", tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    tables = {
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        ).fetchall()
    }
    assert MARTS <= tables
    assert con.execute("select count(*) from marts.taux_emploi_quartier").fetchone()[0] == 0
    schemas = {
        r[0] for r in con.execute("select schema_name from information_schema.schemata").fetchall()
    }
    assert {"raw", "staging", "intermediate", "marts", "referentiels"} <= schemas
    for mart in MARTS:
        assert (tmp_path / "marts" / f"{mart}.parquet").is_file()
    assert "Marts écrits" in result.stdout


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only():
    """The dbt bar is redrawn in place (\\r) when its share changes, never on a pipe/file."""
    from pipelines.warehouse.launch import Progress

    out = _Terminal()
    progress = Progress(out, dbt_nodes=500)
    progress.started["dbt_entrepot"] = time.perf_counter()
    for done in range(1, 501):
        progress.done = done
        progress._bar("dbt_entrepot")
    frames = out.getvalue().split("\r")[1:]
    assert 30 <= len(frames) <= 100 + 30 + 2  # a frame when the percent or the bar changes
    assert frames[-1].startswith("  dbt_entrepot [" + "#" * 30 + "] 100%")
    piped = io.StringIO()
    quiet = Progress(piped, dbt_nodes=500)
    quiet.done = 250
    quiet._bar("dbt_entrepot")
    assert piped.getvalue() == ""
