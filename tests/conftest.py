"""Shared fixtures: paths to the real reference data and builds of the warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Builds write the rapport annuel; its PDF (a few seconds each) is printed by the report test only.
os.environ.setdefault("OBSERVATOIRE_RAPPORT_PDF", "0")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DEMO_DIR = ROOT / "data" / "demo"
# `python -m pipelines.cli` from the project root: the code of this checkout, whatever the
# editable install points to; test_cli checks the installed console script separately.
CLI = [sys.executable, "-m", "pipelines.cli"]
CONSOLE_SCRIPT = Path(sys.executable).parent / "observatoire"


def shared_data(*parts: str) -> Path:
    """A file of ../shared/data, or skip the test with a message when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"données de référence absentes: {path} (dossier ../shared/data non fourni)")
    return path


def run_cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the ``observatoire`` console script as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT
    )


def build(raw: Path, out: Path) -> subprocess.CompletedProcess:
    return run_cli(
        "build",
        "--raw-dir",
        str(raw),
        "--warehouse",
        str(out / "warehouse.duckdb"),
        "--marts-dir",
        str(out / "marts"),
    )


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory) -> Path:
    """The demo (real extract + fictitious suivi) written and built once for the session."""
    base = tmp_path_factory.mktemp("demo")
    done = run_cli("demo", "--raw-dir", str(base / "raw"))
    assert done.returncode == 0, done.stderr
    result = build(base / "raw", base)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (base / "build.log").write_text(result.stdout)
    return base
