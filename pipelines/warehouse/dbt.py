"""dbt assets: seeds, staging -> intermediate -> marts, with dbt tests as asset checks.

dbt writes into the run's staging warehouse: the asset gives dbt a profile of its own
(``<staging>/dbt/profiles.yml``, the project's ``profiles.yml`` with the staging path), so no
environment variable names the warehouse. A build of some years gives dbt's process one variable,
the first year to recompute (:data:`YEAR_VARIABLE`), set only while dagster-dbt starts it.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import yaml
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from packaging.version import Version

from pipelines.duckdb_utils import ensure_spatial_installed, quote_identifier, sql_literal
from pipelines.settings import DBT_PROJECT_DIR
from pipelines.warehouse.manifest import manifest_is_fresh as _manifest_is_fresh
from pipelines.warehouse.manifest import territory_only_models
from pipelines.warehouse.resources import (
    ProjectFolders,
    release_warehouses,
    same_version_as_published,
)

LAYERS = ("staging", "intermediate", "marts")

#: What a build runs: seeds, models and data tests (the blocking checks), not unit tests.
BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test"]


#: dbt's command line as the project runs it: ``observatoire-dbt`` (pipelines/warehouse/
#: dbt_runner.py: dbt keeping its parse across builds), installed beside this Python (the venv
#: need not be activated, PATH untouched); plain ``dbt`` in an install that predates it.
DBT_EXECUTABLES = (
    str(Path(sys.executable).parent / "observatoire-dbt"),
    str(Path(sys.executable).parent / "dbt"),
)


def dbt_executable() -> str:
    return next((path for path in DBT_EXECUTABLES if Path(path).exists()), "dbt")


def seed_partial_parse(target: Path) -> None:
    """Give a build's dbt target the project's last parse (``partial_parse.msgpack``), so dbt
    re-parses only the files changed since (none, usually) instead of the whole project."""
    project = dbt_project()
    parsed = Path(project.project_dir) / project.target_path / PARSE_STATE
    if parsed.is_file() and not (target / "partial_parse.msgpack").exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(parsed, target / "partial_parse.msgpack")


@cache
def dbt_project() -> DbtProject:
    """The single DbtProject of the code location (path relative to this file).

    Its manifest is parsed here when missing or older than a file of the project (what
    ``prepare_if_dev`` does under ``dagster dev`` only, and with the ``dbt`` found on PATH).
    """
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
    if not manifest_is_fresh(project):
        _parse(project)
    return project


def manifest_is_fresh(project: DbtProject) -> bool:
    """True when the project's manifest is newer than every file of the dbt project."""
    return _manifest_is_fresh(Path(project.project_dir), Path(project.manifest_path))


class ProjectDbtResource(DbtCliResource):
    """dagster-dbt's resource, told the version of the dbt it runs instead of asking it.

    dagster-dbt learns the version by running ``dbt --version`` once per process, 2.4 s of
    imports here, in every build; the executable is this environment's dbt (dbt_executable()),
    whose version is the dbt-core package imported below.
    """

    @cached_property
    def _cli_version(self) -> Version:
        from dbt.version import __version__

        return Version(__version__)

    def _initialize_dbt_core_adapter(self, args):
        """No dbt adapter in Dagster's process.

        dagster-dbt builds one before every dbt command (it loads the project, the profile and
        every macro: 2.8 s of each build here) for two things only: ``fetch_row_counts()`` and
        ``fetch_column_metadata()``, which the project does not call (the assets stream dbt's
        events as they are). dagster-dbt takes None for « no adapter »
        (``tests/test_dbt_tests.py`` checks that the hook is still called)."""
        return None


#: The project's parse as ``observatoire-dbt`` left it, kept apart from dbt's own
#: ``partial_parse.msgpack``, which other dbt runs in the project (sqlfluff's dbt templater,
#: a plain ``dbt`` command) overwrite with a parse keyed on their own profile.
PARSE_STATE = "observatoire_partial_parse.msgpack"


def _parse(project: DbtProject) -> None:
    """``dbt parse`` of the project, one process at a time (a file lock: pytest's workers, a
    build and ``dagster dev`` may all find the manifest stale at once), into a folder of its
    own whose files then replace the project's target files one ``os.replace`` each: a reader
    never sees a half-written manifest.json."""
    import fcntl

    target = Path(project.project_dir) / project.target_path
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".parse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest_is_fresh(project):  # parsed by another process while this one waited
            return
        work = Path(tempfile.mkdtemp(prefix=".parse-", dir=target))
        try:
            ProjectDbtResource(project_dir=project, dbt_executable=dbt_executable()).cli(
                ["parse", "--quiet"], target_path=work
            ).wait()
            parsed = work / "partial_parse.msgpack"
            if parsed.is_file():
                shutil.copy2(parsed, work / PARSE_STATE)
            # the manifest last: its date is what manifest_is_fresh compares
            names = sorted(
                (p.name for p in work.iterdir() if p.is_file()),
                key=lambda name: name == "manifest.json",
            )
            for name in names:
                os.replace(work / name, target / name)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def prepare_manifest(force: bool = False) -> None:
    """Parse the dbt project (writes target/manifest.json) unless it is up to date."""
    ensure_spatial_installed()
    project = dbt_project()
    if force:
        # the manifest's date is older than now: _parse re-checks freshness under its lock
        manifest = Path(project.manifest_path)
        if manifest.is_file():
            os.utime(manifest, (0, 0))
    if not manifest_is_fresh(project):
        _parse(project)


def dbt_resource() -> DbtCliResource:
    return ProjectDbtResource(project_dir=dbt_project(), dbt_executable=dbt_executable())


class Translator(DagsterDbtTranslator):
    """Keys ``<layer>/<model>`` (sources keep ``raw/<table>``), groups by layer."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            # every dbt source over the raw schema is the Python asset raw/<table>, whatever the
            # source's name (each system declares its own source file)
            return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "seed":
            return "referentiels"
        return dbt_resource_props.get("schema") or "dbt"


def write_build_profile(warehouse: Path, folder: Path) -> Path:
    """The project's dbt profile with its target pointed at ``warehouse``; returns its folder."""
    profiles = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text(encoding="utf-8"))
    for profile in profiles.values():
        if isinstance(profile, dict):
            for output in profile.get("outputs", {}).values():
                output["path"] = str(warehouse)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profiles.yml").write_text(yaml.safe_dump(profiles), encoding="utf-8")
    return folder


def run_dbt(
    warehouse: Path, folder: Path, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``dbt <args>`` on ``warehouse`` with a build's profile, from the project's last parse (as a
    build runs it), dbt's files and log in ``folder`` (the tests' and the bench tools' dbt)."""
    profiles = write_build_profile(warehouse, folder / "dbt")
    seed_partial_parse(folder / "target")
    return subprocess.run(
        [
            dbt_executable(),
            *args,
            "--profiles-dir",
            str(profiles),
            "--target-path",
            str(folder / "target"),
            "--log-path",
            str(folder / "logs"),
        ],
        capture_output=True,
        text=True,
        cwd=DBT_PROJECT_DIR,
        timeout=timeout,
    )


#: The first programmation year a build of some years recomputes in the yearly dbt models
#: (``annees_reconstruites``, dbt_project/macros), given to dbt's process only.
YEAR_VARIABLE = "OBSERVATOIRE_ANNEE_DEPUIS"


def yearly_args(
    folders: ProjectFolders, partition: str | None
) -> tuple[list[str], str | None, list[str]]:
    """dbt's arguments, the value of :data:`YEAR_VARIABLE` and the models left out (their
    published tables kept), for the models keyed by programmation year.

    In a full build (an empty staging warehouse): none, every model is built in full. In a run
    of one ``annee`` partition, which starts from a copy of the published warehouse: the year,
    so that the yearly models recompute that year and the later ones and keep the others, and
    the models that depend on the programmations only through the territories they name when
    that set is the published one (:func:`same_territories`). When the published warehouse was
    built by another version of the project or with other options (its build manifest says
    so; or it has none), its tables may not have the columns of this version:
    ``--full-refresh`` rebuilds the yearly models in full."""
    if partition is None or folders.direct:
        return [], None, []
    if not same_version_as_published(folders.paths.warehouse):
        return ["--full-refresh"], None, []
    kept = []
    if same_territories(folders.staging_warehouse, folders.paths.warehouse):
        # the territories named by the programmations and bilans are those of the published
        # warehouse: ref_territoires and what depends on it only through it are unchanged
        kept = territory_only_models()
    args = ["--exclude", " ".join(kept)] if kept else []  # one value: dbt's syntax
    return args, str(int(partition)), kept


#: The territories the programmations and bilans name (``ref_territoires`` reads nothing else
#: of them).
NAMED_TERRITORIES = (
    "select territoire from {db}.raw.programmations union select territoire from {db}.raw.bilans"
)


def same_territories(staging: Path, published: Path) -> bool:
    """Whether the programmations and bilans of ``staging`` name the same territories as those
    of ``published`` (False when either cannot be read)."""
    try:
        con = duckdb.connect(str(staging), read_only=True)
    except duckdb.Error:
        return False
    try:
        [(own,)] = con.execute("select current_database()").fetchall()
        con.execute(f"attach {sql_literal(str(published))} as publie (read_only)")
        mine, theirs = (
            {r[0] for r in con.execute(NAMED_TERRITORIES.format(db=db)).fetchall()}
            for db in (quote_identifier(own), "publie")
        )
        return mine == theirs
    except duckdb.Error:
        return False
    finally:
        con.close()


@contextmanager
def environment_variable(name: str, value: str | None) -> Iterator[None]:
    """``name`` set to ``value`` (removed when None) in this process's environment, which the
    dbt process started meanwhile inherits (dagster-dbt takes no environment of its own), then
    restored."""
    before = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def build_dbt_assets():
    project = dbt_project()

    @dbt_assets(
        manifest=project.manifest_path,
        dagster_dbt_translator=Translator(),
        name="dbt_entrepot",
    )
    def dbt_entrepot(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, folders: ProjectFolders
    ):
        ensure_spatial_installed()
        release_warehouses()  # dbt, another process, writes the staging warehouse now
        staging = folders.staging_warehouse
        profiles = write_build_profile(staging, staging.parent / "dbt")
        target = staging.parent / "dbt" / "target"
        seed_partial_parse(target)
        # unit tests check the SQL against fixtures, not the data: they run in the test suite
        # (tests/test_dbt_tests.py), not in every build; dbt's files stay in the staging folder
        args, year, kept = yearly_args(folders, context.run.tags.get("dagster/partition"))
        # the models left out (same territories): their tables in the staging warehouse are the
        # published ones, as they are; said so first (outputs go parents first, and none of
        # them depends on a model dbt runs), so that the exports and publication that depend on
        # them run (an output not produced would skip them)
        keys = {key.path[-1]: key for key in context.selected_asset_keys}
        for name in kept:
            if name in keys:
                yield dg.Output(
                    None,
                    output_name=context.assets_def.get_output_name_for_asset_key(keys[name]),
                    metadata={"repris": "table de l'entrepôt publié, inchangée"},
                )
        with environment_variable(YEAR_VARIABLE, year):  # dbt's process starts here
            invocation = dbt.cli(
                BUILD_ARGS + args + ["--profiles-dir", str(profiles)],
                context=context,
                target_path=target,
            )
        yield from invocation.stream()

    return dbt_entrepot
