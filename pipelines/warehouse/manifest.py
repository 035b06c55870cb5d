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


#: The yearly sources (``observatoire build --annee``) and the référentiel of territories, the
#: one model that reads them without being computed year by year.
YEARLY_SOURCES = (
    "source.observatoire_qpv.raw.programmations",
    "source.observatoire_qpv.raw.bilans",
)
TERRITORIES_MODEL = "model.observatoire_qpv.ref_territoires"


def _downstream(manifest: dict[str, Any], roots: set[str]) -> set[str]:
    """``roots`` and every node downstream of them (``child_map``)."""
    seen, todo = set(), list(roots)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(manifest["child_map"].get(node, []))
    return seen


def territory_only_models(manifest: dict[str, Any] | None = None) -> list[str]:
    """Models downstream of the yearly sources through ``ref_territoires`` only (``dim_qpv``,
    ``lieux_qpv``, ``fiche_quartier``...), parents first: ``ref_territoires`` reads the
    programmations and bilans for one thing, the territories they name; these models change
    with that set only, never with the lines of a year. None of them is downstream of a model
    that reads a year's lines."""
    manifest = manifest or read_manifest()
    if TERRITORIES_MODEL not in manifest["nodes"]:
        return []
    yearly = {
        child
        for source in YEARLY_SOURCES
        for child in manifest["child_map"].get(source, [])
        if child != TERRITORIES_MODEL
    }
    by_year = _downstream(manifest, yearly)
    kept = {
        node
        for node in _downstream(manifest, {TERRITORIES_MODEL}) - by_year
        if node in manifest["nodes"] and manifest["nodes"][node]["resource_type"] == "model"
    }
    return [manifest["nodes"][node]["name"] for node in _topological(manifest, kept)]


def _topological(manifest: dict[str, Any], nodes: set[str]) -> list[str]:
    """``nodes`` parents first (``parent_map``), ties by name."""
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        done.add(node)
        for parent in sorted(manifest["parent_map"].get(node, [])):
            if parent in nodes:
                visit(parent)
        order.append(node)

    for node in sorted(nodes):
        visit(node)
    return order
