"""dbt assets: seeds, staging -> intermediate -> marts, with dbt tests as asset checks."""

import json
import os
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from pipelines.duckdb_utils import ensure_spatial_installed
from pipelines.settings import DBT_PROJECT_DIR

LAYERS = ("staging", "intermediate", "marts")


@cache
def dbt_project() -> DbtProject:
    """The single DbtProject of the code location (path relative to this file)."""
    ensure_dbt_on_path()
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
    project.prepare_if_dev()
    return project


def ensure_dbt_on_path() -> None:
    """Put the ``dbt`` installed beside this Python on PATH (venv not activated)."""
    bindir = str(Path(sys.executable).parent)
    if (Path(bindir) / "dbt").exists() and bindir not in os.environ.get("PATH", "").split(":"):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def manifest_is_fresh(project: DbtProject) -> bool:
    """True when target/manifest.json is newer than every file of the dbt project."""
    manifest = project.manifest_path
    if not manifest.is_file():
        return False
    built = manifest.stat().st_mtime
    root = Path(project.project_dir)
    for folder in ("models", "seeds", "macros", "tests"):
        for path in (root / folder).rglob("*"):
            if path.is_file() and path.stat().st_mtime > built:
                return False
    return all(
        (root / name).stat().st_mtime <= built for name in ("dbt_project.yml", "profiles.yml")
    )


def prepare_manifest(force: bool = False) -> None:
    """Parse the dbt project (writes target/manifest.json) unless it is up to date."""
    ensure_dbt_on_path()
    ensure_spatial_installed()
    project = dbt_project()
    if force or not manifest_is_fresh(project):
        project.preparer.prepare(project)


def dbt_resource() -> DbtCliResource:
    ensure_dbt_on_path()
    return DbtCliResource(project_dir=dbt_project())


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


def mart_names() -> list[str]:
    """Names of the models in the ``marts`` folder, read from the manifest."""
    manifest = json.loads(dbt_project().manifest_path.read_text())
    return sorted(
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] == "marts"
    )


def build_dbt_assets():
    project = dbt_project()

    @dbt_assets(
        manifest=project.manifest_path,
        dagster_dbt_translator=Translator(),
        name="dbt_entrepot",
    )
    def dbt_entrepot(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        ensure_spatial_installed()
        yield from dbt.cli(["build"], context=context).stream()

    return dbt_entrepot
