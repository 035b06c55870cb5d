"""The dbt project's manifest (``target/manifest.json``), read as JSON.

The commands that only need the marts' names and YAML descriptions (exports, workbooks, PostGIS,
reports, the progress display) read it here, without importing dbt or dagster-dbt (4 s of imports
on this 2-core machine, in every command). It is written by ``dbt parse``
(``pipelines.warehouse.dbt.prepare_manifest``), which a build runs first and the CLI's commands
run when :func:`manifest_is_fresh` says the manifest is missing or older than the project.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.settings import DBT_PROJECT_DIR

#: dagster-dbt's ``DbtProject.manifest_path`` for this project (its default target path).
MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"


def manifest_is_fresh(project_dir: Path = DBT_PROJECT_DIR, manifest: Path = MANIFEST_PATH) -> bool:
    """True when the manifest is newer than every file of the dbt project."""
    if not manifest.is_file():
        return False
    built = manifest.stat().st_mtime
    for folder in ("models", "seeds", "macros", "tests"):
        for path in (project_dir / folder).rglob("*"):
            if path.is_file() and path.stat().st_mtime > built:
                return False
    return all(
        (project_dir / name).stat().st_mtime <= built
        for name in ("dbt_project.yml", "profiles.yml")
    )


def read_manifest() -> dict[str, Any]:
    """The manifest as the last ``dbt parse`` wrote it."""
    return json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))


def _marts(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node.get("schema") == "marts"
    ]


def mart_names() -> list[str]:
    """Names of the models in the ``marts`` folder."""
    return sorted(node["name"] for node in _marts(read_manifest()))


def mart_descriptions() -> dict[str, tuple[str, dict[str, str]]]:
    """{mart: (description, {column: description})} from the marts' YAML; empty when the
    manifest cannot be read (descriptions are a help, never a reason to fail)."""
    try:
        manifest = read_manifest()
    except Exception:  # noqa: BLE001
        return {}
    return {
        node["name"]: (
            (node.get("description") or "").strip(),
            {c: (v.get("description") or "").strip() for c, v in node["columns"].items()},
        )
        for node in _marts(manifest)
    }


def dbt_node_count() -> int:
    """Models, seeds and data tests of the manifest: the events of a full dbt step."""
    return sum(
        1
        for node in read_manifest()["nodes"].values()
        if node["resource_type"] in ("model", "seed", "test")
    )
