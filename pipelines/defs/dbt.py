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


def prepare_manifest() -> None:
    """Parse the dbt project (writes target/manifest.json); needed before loading the assets."""
    ensure_dbt_on_path()
    ensure_spatial_installed()
    project = dbt_project()
    project.preparer.prepare(project)


def dbt_resource() -> DbtCliResource:
    ensure_dbt_on_path()
    return DbtCliResource(project_dir=dbt_project())


class Translator(DagsterDbtTranslator):
    """Keys ``<layer>/<model>`` (sources keep ``raw/<table>``), groups by layer."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
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
