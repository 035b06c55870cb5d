"""Shared fixtures: paths to the real reference data and the one demo build of the session.

Layers (docs/developpement/index.md, « Tests et style »): unit tests of readers, parsers and
rules need no build; asset tests materialize a few assets on a temporary DuckDB; dbt data tests
run inside every build, dbt unit tests once (tests/test_dbt_tests.py); end-to-end tests share
ONE demo build per test session (``demo_build``), made through the ``observatoire`` command as a
user would, once even with several pytest-xdist workers (a file lock: the first worker builds,
the others wait and reuse it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.demo_build import DemoBuildError, build_demo, memory_folder

# Builds write the rapport annuel; its PDF (a few seconds each) is printed by the report test only.
os.environ.setdefault("OBSERVATOIRE_RAPPORT_PDF", "0")
os.environ["DAGSTER_DISABLE_TELEMETRY"] = "1"

#: For a build whose test reads tables only: no rapport annuel, no workbook (a build writes none
#: beyond this many territories, and says so).
NO_DOCUMENTS = {"OBSERVATOIRE_RAPPORTS_MAX": "0", "OBSERVATOIRE_CLASSEURS_MAX": "0"}

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


def materialize_direct(assets, raw: Path, warehouse: Path, **kwargs):
    """``dagster.materialize`` of ``assets`` reading ``raw`` and writing straight into
    ``warehouse`` (no staging, no publication: the asset-test layer)."""
    import dagster as dg

    from pipelines.warehouse.resources import ProjectFolders, Warehouse

    folders = ProjectFolders(
        raw_dir=str(raw),
        warehouse=str(warehouse),
        marts_dir=str(warehouse.parent / "m"),
        direct=True,
    )
    resources = {"folders": folders, "warehouse": Warehouse(folders=folders)}
    return dg.materialize(assets, resources=resources, **kwargs)


def run_dbt(warehouse: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
    """:func:`pipelines.warehouse.dbt.run_dbt` (imported when called: dagster-dbt is slow to
    import, and most test modules need no dbt)."""
    from pipelines.warehouse.dbt import run_dbt as run

    return run(warehouse, folder, *args)


def build_direct(raw: Path, base: Path, *select: str) -> Path:
    """What a build computes, without the CLI, the publication and the outputs: every source
    asset reading ``raw`` into ``base/warehouse.duckdb``, then ``dbt build`` of ``select`` and
    their upstream models (everything when no selection), with the build's data tests. About a
    third of a build's time; for scenarios whose assertions are on tables."""
    from pipelines.sources import source_assets
    from pipelines.warehouse.dbt import BUILD_ARGS

    warehouse = base / "warehouse.duckdb"
    result = materialize_direct(source_assets, raw, warehouse)
    assert result.success
    selection = (
        ["--select", *(f"+{name}" for name in select), "--indirect-selection", "cautious"]
        if select
        else []
    )
    done = run_dbt(warehouse, base, *BUILD_ARGS, *selection)
    assert done.returncode == 0, done.stdout[-4000:]
    return warehouse


def failure_of(result) -> str:
    """What the failed steps of a ``materialize(..., raise_on_error=False)`` say."""
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data is not None:
                texts.append(data.user_failure_data.description or "")
            if data.error is not None:
                texts.append(data.error.message)
    return "\n".join(texts)


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
def dagster_home() -> Path:
    """A Dagster instance per worker (the CLI records its runs there, as make does), in RAM
    (tests/demo_build.py: ``memory_folder``)."""
    home = memory_folder("dagster")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory, pytestconfig) -> Path:
    """The demo (real extract + fictitious suivi) written and built once for the session."""
    try:
        return build_demo(_session_root(tmp_path_factory, pytestconfig))
    except DemoBuildError as err:
        pytest.fail(f"construction de la démo en échec:\n{err}")


# -- scheduling ------------------------------------------------------------------------------
# pytest-xdist hands whole modules (--dist loadscope) to whichever worker is free, in the order
# below: the national build and the demo build start at once, one per worker; then the modules
# that need no demo, then those that read or copy the demo build (built by then), heaviest
# first within each kind. The same order in every worker.

#: Started first, one per worker: the two builds everything else waits for or competes with.
FIRST = ("test_indicateurs_marts.py", "test_build_demo.py")
#: Modules that make their own build(s), by cost: first among their kind.
HEAVY = {
    "test_operations.py": 3,
    "test_as_of.py": 2,
    "test_cli.py": 2,
    "test_partitions_annee.py": 2,
    "test_dbt_tests.py": 1,
    "test_quatrieme_epci.py": 1,
    "test_insee_free_names.py": 1,
    "test_territoires.py": 1,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    by_module: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_module.setdefault(item.nodeid.split("::")[0], []).append(item)

    def module_key(item: pytest.Item) -> tuple:
        module = item.nodeid.split("::")[0]
        name = Path(module).name
        if name in FIRST:
            return (0, FIRST.index(name), module)
        needs_demo = any("demo_build" in i.fixturenames for i in by_module[module])
        return (2 if needs_demo else 1, -HEAVY.get(name, 0), module)

    items.sort(key=module_key)  # stable: the order of the tests inside a module is kept
