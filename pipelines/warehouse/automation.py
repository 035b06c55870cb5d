"""Jobs, annual schedule and raw-files sensor. Every job ends with the publication asset.

``build_entrepot`` is the whole build: ingestion, dbt (seeds, models, tests), exports, report,
then ``publication/entrepot``, which swaps the staging warehouse in once everything passed
(write-audit-publish, :mod:`pipelines.warehouse.publication`). ``observatoire build`` runs it;
so do the schedule, the sensor and the UI.

``suivi_par_annee`` is partitioned by ``annee``: the programmations and bilans of one year, the
dbt models downstream of them, the exports, the report and the publication, in a copy of the
published warehouse (the other years stay identical). The sensor starts it when every changed
file is a programmation or bilan file, one run per changed year (runs of the same warehouse wait
for each other's lock); anything else starts ``build_entrepot``.
"""

import json
from pathlib import Path

import dagster as dg

from pipelines.lib.files import sha256_bytes, sha256_file
from pipelines.settings import Paths
from pipelines.sources.programmations.partitions import (
    ANNEE,
    SUIVI_SOURCES,
    SUIVI_SUFFIXES,
    partition_of,
)
from pipelines.warehouse.resources import TAG_WAIT

BUILD_JOB = "build_entrepot"
SUIVI_JOB = "suivi_par_annee"
#: Seconds a run started by the sensor or the schedule waits for a build already running.
SENSOR_WAIT = 3600

build_entrepot = dg.define_asset_job(
    BUILD_JOB,
    selection=dg.AssetSelection.all(),
    description="Construction complète dans un entrepôt de construction (ingestion, dbt: seeds, "
    "modèles, tests; exports; rapport), puis publication atomique si tout a réussi.",
)

suivi_par_annee = dg.define_asset_job(
    SUIVI_JOB,
    selection=dg.AssetSelection.assets(
        *(dg.AssetKey(["raw", source]) for source in SUIVI_SOURCES)
    ).downstream(),  # partitioned by ``annee``: inferred from the yearly assets
    description="Une année des programmations et bilans reconstruite dans une copie de "
    "l'entrepôt publié, avec les modèles dbt qui en dépendent, les exports et le rapport, puis "
    "publication atomique.",
)

reconstruction_annuelle = dg.ScheduleDefinition(
    name="reconstruction_annuelle",
    job=build_entrepot,
    cron_schedule="0 6 1 10 *",  # 1er octobre, 6 h: après la publication des bases INSEE
    execution_timezone="Europe/Paris",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    tags={TAG_WAIT: str(SENSOR_WAIT)},
    description="Reconstruction annuelle de l'entrepôt (1er octobre, 6 h, heure de Paris).",
)


def raw_state(raw_dir: Path, previous: dict | None = None) -> dict[str, list]:
    """``{relative path: [size, mtime_ns, sha256]}`` of every raw file.

    A file whose size and mtime did not change keeps its previous hash (no re-read); a file
    touched without changing its bytes keeps the same hash, so it does not trigger a build.
    """
    previous = previous or {}
    state: dict[str, list] = {}
    if not raw_dir.is_dir():
        return state
    for path in sorted(p for p in raw_dir.rglob("*") if p.is_file()):
        rel = str(path.relative_to(raw_dir))
        stat = path.stat()
        old = previous.get(rel)
        if old and old[0] == stat.st_size and old[1] == stat.st_mtime_ns:
            state[rel] = old
        else:
            state[rel] = [stat.st_size, stat.st_mtime_ns, sha256_file(path)]
    return state


def content_key(state: dict[str, list]) -> str:
    """One hash for the whole raw dir: paths and content hashes, not mtimes."""
    pairs = sorted((rel, entry[2]) for rel, entry in state.items())
    return sha256_bytes(json.dumps(pairs).encode())


def suivi_partition(rel: str) -> str | None:
    """The ``annee`` partition of a raw file (path relative to the raw dir), or None when the
    file is not a programmation or bilan data file (then a change rebuilds everything)."""
    path = Path(rel)
    if len(path.parts) < 2 or path.parts[0] not in SUIVI_SOURCES:
        return None
    if path.suffix.lower() not in SUIVI_SUFFIXES or path.name.startswith((".", "~$")):
        return None
    if path.stem.lower().startswith(("readme", "lisez")):
        return None
    return partition_of(path)


def changed_years(changed: list[str]) -> list[str] | None:
    """The partitions to rebuild when only programmation/bilan files changed, else None."""
    years = [suivi_partition(rel) for rel in changed]
    if not changed or any(y is None for y in years):
        return None
    return sorted(set(years))


def _existing_years(context: dg.SensorEvaluationContext) -> set[str]:
    try:
        return set(context.instance.get_dynamic_partitions(ANNEE.name))
    except dg.DagsterInvariantViolationError:  # context built without an instance
        return set()


@dg.sensor(
    name="fichiers_bruts",
    jobs=[build_entrepot, suivi_par_annee],
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Lance une construction quand un fichier de data/raw/ apparaît, change ou "
    "disparaît (empreinte du contenu, pas la date de modification): seulement les années "
    "touchées quand seuls des fichiers de programmations/ ou bilans/ ont changé, tout sinon.",
)
def fichiers_bruts(context: dg.SensorEvaluationContext):
    cursor = json.loads(context.cursor) if context.cursor else {}
    state = raw_state(Paths.from_env().raw_dir, cursor.get("state"))
    key = content_key(state)
    context.update_cursor(json.dumps({"key": key, "state": state}))
    if cursor.get("key") == key:
        return dg.SkipReason("aucun fichier brut nouveau ou modifié")
    changed = sorted(
        rel
        for rel in set(state) | set(cursor.get("state", {}))
        if (state.get(rel) or [None] * 3)[2] != (cursor.get("state", {}).get(rel) or [None] * 3)[2]
    )
    tags = {"fichiers_modifies": ", ".join(changed)[:1000], TAG_WAIT: str(SENSOR_WAIT)}
    # first evaluation: the published warehouse may not reflect the files: rebuild everything
    years = changed_years(changed) if cursor.get("state") else None
    if years is None:
        return dg.RunRequest(run_key=key, job_name=BUILD_JOB, tags=tags)
    present = {p for rel in state if (p := suivi_partition(rel)) is not None}
    new = sorted((present | set(years)) - _existing_years(context))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{key}-{year}", job_name=SUIVI_JOB, partition_key=year, tags=tags
            )
            for year in years
        ],
        dynamic_partitions_requests=[ANNEE.build_add_request(new)] if new else [],
    )
