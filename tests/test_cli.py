"""The command-line contract: help, exit codes, one-line reasons, empty sources, atomicity."""

from __future__ import annotations

import io
import subprocess
import time

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


def test_empty_raw_dir_is_refused_before_any_work(tmp_path):
    """An empty (or unmounted) raw folder stops the build at once (no Dagster run, no dbt):
    it never replaces the published marts with empty ones. ``--autoriser-vide`` lifts it
    (tests/test_reliability_publication.py)."""
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / ".DS_Store").write_text("a hidden file is not an input")
    started = time.monotonic()
    result = build(tmp_path / "raw", tmp_path)
    assert result.returncode == 1
    reason = result.stderr.strip().splitlines()[-1]
    assert reason.startswith("ÉCHEC: ") and "aucun fichier brut" in reason
    assert "--autoriser-vide" in reason and str(tmp_path / "raw") in reason
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # nothing written
    assert time.monotonic() - started < 60


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
