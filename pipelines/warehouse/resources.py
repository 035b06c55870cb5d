"""Resources of a build: where it reads, the staging warehouse it writes, where it publishes.

A build is one Dagster run (write-audit-publish): every asset writes into a *staging* warehouse
and marts folder beside the published ones (``.warehouse.duckdb.construction/``,
``.marts.construction/``); the last asset, ``publication/entrepot``, audits the staging files and
swaps them in atomically. The published files are never written to by any other asset, so a
failed or killed build leaves them intact and readable.

``ProjectFolders`` prepares the staging folders when a run starts, under the build lock (one
build per warehouse): an unpartitioned run starts from an empty staging warehouse; a run of one
``annee`` partition starts from a copy of the published warehouse, so that only that year (and
what depends on it) is rebuilt. Paths come from the environment (``OBSERVATOIRE_*``, read at
launch time by ``dg.EnvVar``) or from the CLI, which builds its own resources.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from pipelines.duckdb_utils import load_spatial
from pipelines.operations import (
    BuildLock,
    check_inputs,
    no_writer,
    remove_stale_builds,
    tie_dbt_to_process,
)
from pipelines.settings import Paths

#: Run tag: seconds a run waits for another build of the same warehouse (sensor runs wait).
TAG_WAIT = "observatoire/attente_verrou"
#: Run tag (``oui``): build and publish even without some or all inputs (``--autoriser-vide``).
TAG_ALLOW_EMPTY = "observatoire/autoriser_vide"


#: (run id, staging folder) already prepared in this process.
_PREPARED: set[tuple[str | None, str]] = set()


class BuildSetupError(Exception):
    """A run cannot prepare its staging warehouse."""


class ProjectFolders(dg.ConfigurableResource):
    """The raw folder a build reads, and the published warehouse and marts it replaces."""

    raw_dir: str
    warehouse: str
    marts_dir: str
    #: Archive the inputs and write the build manifest on publication (off for ``--as-of``).
    archiver: bool = True
    #: Assets write straight into ``warehouse`` and ``marts_dir``, with no staging, lock or
    #: publication (asset tests and one-off materializations on a scratch DuckDB).
    direct: bool = False
    #: Build and publish even when the raw folder is empty or lacks a source of the published
    #: build (``--autoriser-vide``; run tag ``observatoire/autoriser_vide=oui``).
    allow_empty: bool = False

    _lock: BuildLock | None = PrivateAttr(default=None)

    @property
    def paths(self) -> Paths:
        """Published paths (absolute)."""
        return Paths(Path(self.raw_dir), Path(self.warehouse), Path(self.marts_dir)).resolved()

    @property
    def raw(self) -> Path:
        return self.paths.raw_dir

    @property
    def marts(self) -> Path:
        """Where this build's assets write the marts: the staging folder."""
        return self.paths.marts_dir if self.direct else self.paths.staging_marts

    @property
    def staging_warehouse(self) -> Path:
        """Where this build's assets write: the staging warehouse."""
        return self.paths.warehouse if self.direct else self.paths.staging_warehouse

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.direct:
            return
        tie_dbt_to_process()  # dbt dies with the run's process (each step's, in the UI)
        run = context.dagster_run
        tags = run.tags if run is not None else {}
        self._lock = BuildLock(
            self.paths.warehouse,
            wait=float(tags.get(TAG_WAIT, 0) or 0),
            marts_dir=self.paths.marts_dir,
        )
        self._lock.acquire()
        # the resource is set up twice per run (here, and nested in ``warehouse``): prepare once
        key = (context.run_id, str(self.paths.staging_dir))
        try:
            allowed = self.allow_empty or str(tags.get(TAG_ALLOW_EMPTY, "")).lower() in (
                "oui",
                "1",
                "true",
            )
            if not allowed:
                check_inputs(self.paths.raw_dir, self.paths.warehouse)
            with no_writer(self.paths.warehouse):  # fail now rather than after the build
                pass
            if key not in _PREPARED:
                prepare_staging(self.paths, copy_published="dagster/partition" in tags)
                _PREPARED.add(key)
        except BaseException:
            self._lock.release()
            self._lock = None
            raise

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def prepare_staging(paths: Paths, copy_published: bool) -> None:
    """Empty staging folders (what a killed build left is removed), or a copy of the published
    warehouse when only some partitions are rebuilt. Called under the build lock."""
    remove_stale_builds(paths.warehouse, paths.marts_dir)
    paths.staging_dir.mkdir(parents=True)
    paths.staging_marts.mkdir(parents=True)
    if copy_published:
        if not paths.warehouse.is_file():
            raise BuildSetupError(
                f"{paths.warehouse}: aucun entrepôt publié à compléter; lancer une construction "
                "complète (observatoire build sans --annee)"
            )
        shutil.copy2(paths.warehouse, paths.staging_warehouse)


#: One connection kept open per staging warehouse of this process, between the steps of a run:
#: every ``Warehouse.connect`` then opens the same DuckDB database instance, whose spatial
#: extension is loaded once. Loading it checks the extension's signature (a hash of its 80 MB
#: file, 0.35 s of CPU here) in every new instance: 16 times per demo build, and in every asset
#: of the tests' builds, before this.
_OPEN: dict[str, duckdb.DuckDBPyConnection] = {}


def release_warehouses() -> None:
    """Close the connections kept open by :class:`Warehouse` in this process: before another
    process writes the staging warehouse (dbt), before the publication reads and moves it, and
    at the end of every run."""
    while _OPEN:
        _, con = _OPEN.popitem()
        con.close()


class Warehouse(dg.ConfigurableResource):
    """The staging DuckDB warehouse of the run, with the spatial extension loaded."""

    folders: ProjectFolders

    @contextmanager
    def connect(self):
        path = str(self.folders.staging_warehouse)
        if path not in _OPEN:
            kept = duckdb.connect(path)
            load_spatial(kept)
            _OPEN[path] = kept
        con = duckdb.connect(path)  # the same database instance: spatial is already loaded
        try:
            load_spatial(con)
            yield con
        finally:
            con.close()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        release_warehouses()


def same_version_as_published(warehouse: Path) -> bool:
    """Whether the published ``warehouse`` was built by this version of the project with the
    same options (its build manifest says so): a build of some years may then keep what it did
    not change (the yearly dbt models' other years, the exports of unchanged marts). Without a
    manifest (``--as-of`` builds do not archive), no."""
    from pipelines.operations import build_options, code_version, last_manifest

    published = last_manifest(Path(warehouse))
    return (
        published is not None
        and published.get("version_code") == code_version()
        and published.get("options", {}) == build_options()
    )
