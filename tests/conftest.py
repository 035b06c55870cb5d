"""Shared fixtures: paths to the real reference data and the one demo build of the session.

Layers (docs/developpement/index.md, « Tests et style »): unit tests of readers, parsers and
rules need no build; asset tests materialize a few assets on a temporary DuckDB; dbt unit and
data tests run inside every build; end-to-end tests share ONE demo build per test session
(``demo_build``), made through the ``observatoire`` command as a user would, once even with
several pytest-xdist workers (a file lock: the first worker builds, the others wait and reuse it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

# Builds write the rapport annuel; its PDF (a few seconds each) is printed by the report test only.
os.environ.setdefault("OBSERVATOIRE_RAPPORT_PDF", "0")
os.environ["DAGSTER_DISABLE_TELEMETRY"] = "1"

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


def build(
    raw: Path, out: Path, *extra: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    return run_cli(
        "build",
        "--raw-dir",
        str(raw),
        "--warehouse",
        str(out / "warehouse.duckdb"),
        "--marts-dir",
        str(out / "marts"),
        *extra,
        env=env,
    )


def _session_root(tmp_path_factory, config) -> Path:
    """The temp folder shared by every xdist worker of this session."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if hasattr(config, "workerinput") else base


@pytest.fixture(scope="session", autouse=True)
def dagster_home(tmp_path_factory) -> Path:
    """A Dagster instance per worker (the CLI records its runs there, as make does)."""
    home = tmp_path_factory.getbasetemp() / "dagster_home"
    home.mkdir(exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory, pytestconfig) -> Path:
    """The demo (real extract + fictitious suivi) written and built once for the session."""
    root = _session_root(tmp_path_factory, pytestconfig)
    base = root / "demo"
    with FileLock(str(root / "demo.lock")):
        failed = base / "build.failed"
        if failed.exists():
            pytest.fail(failed.read_text()[-3000:])
        if not (base / "build.done").exists():
            done = subprocess.run(
                [sys.executable, "-m", "tools.demo", "--raw-dir", str(base / "raw")],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            assert done.returncode == 0, done.stderr
            # its own Dagster instance: the instance test reads the run from there
            result = build(base / "raw", base, env={"DAGSTER_HOME": str(base / "dagster_home")})
            (base / "build.log").write_text(result.stdout + result.stderr)
            if result.returncode != 0:
                failed.write_text(result.stdout[-3000:] + result.stderr[-3000:])
                pytest.fail(failed.read_text())
            (base / "build.done").touch()
    return base
