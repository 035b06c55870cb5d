"""Annual schedule, raw-files sensor, and the atomic publication jobs they start.

The asset job ``build_entrepot`` materializes assets where the resources point (handy in the
UI). Publication for analysts goes through ``publication_atomique``: the same build as
``observatoire build``, in a new warehouse file swapped in only when every blocking check
passed. The schedule and the sensor start that job.

Yearly sources: ``suivi_par_annee`` is the partitioned job (partitions ``annee``) of the
programmations and bilans assets and of everything downstream (dbt models, exports). The
sensor starts ``publication_annees`` when every changed file is a programmation or bilan
file: a copy of the published warehouse gets only the changed years rebuilt (and the dbt
models downstream of the yearly sources), then replaces the published file atomically.
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

PUBLICATION_JOB = "publication_atomique"
YEARS_PUBLICATION_JOB = "publication_annees"
SUIVI_JOB = "suivi_par_annee"

suivi_par_annee = dg.define_asset_job(
    SUIVI_JOB,
    selection=dg.AssetSelection.assets(
        *(dg.AssetKey(["raw", source]) for source in SUIVI_SOURCES)
    ).downstream(),  # partitioned by ``annee``: inferred from the yearly assets
    description="Une année des programmations et bilans, puis les modèles dbt qui en dépendent "
    "et les exports (dans l'entrepôt configuré; publication: publication_annees).",
)


@dg.op(description="Construit l'entrepôt dans un nouveau fichier et le publie s'il est valide.")
def construire_et_publier(context: dg.OpExecutionContext) -> None:
    from pipelines.cli import run_build

    paths = Paths.from_env()
    code, reason = run_build(paths)
    if code:
        raise dg.Failure(description=reason)
    context.log.info(f"entrepôt publié: {paths.warehouse}")


@dg.job(name=PUBLICATION_JOB, description="Construction complète et publication atomique.")
def publication_atomique() -> None:
    construire_et_publier()


@dg.op(
    config_schema={"annees": [str]},
    description="Reconstruit les années données dans une copie de l'entrepôt publié et la publie.",
)
def construire_et_publier_annees(context: dg.OpExecutionContext) -> None:
    from pipelines.cli import run_build

    paths = Paths.from_env()
    annees = list(context.op_config["annees"])
    code, reason = run_build(paths, annees=annees, instance=context.instance)
    if code:
        raise dg.Failure(description=reason)
    context.log.info(f"années {', '.join(annees)} publiées: {paths.warehouse}")


@dg.job(
    name=YEARS_PUBLICATION_JOB,
    description="Reconstruction de quelques années des programmations et bilans (et de ce qui "
    "en dépend) et publication atomique.",
)
def publication_annees() -> None:
    construire_et_publier_annees()


reconstruction_annuelle = dg.ScheduleDefinition(
    name="reconstruction_annuelle",
    job=publication_atomique,
    cron_schedule="0 6 1 10 *",  # 1er octobre, 6 h: après la publication des bases INSEE
    execution_timezone="Europe/Paris",
    default_status=dg.DefaultScheduleStatus.STOPPED,
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
    jobs=[publication_atomique, publication_annees],
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Lance une publication quand un fichier de data/raw/ apparaît, change ou "
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
    tags = {"fichiers_modifies": ", ".join(changed)[:1000]}
    # first evaluation: the published warehouse may not reflect the files: rebuild everything
    years = changed_years(changed) if cursor.get("state") else None
    if years is None:
        return dg.RunRequest(run_key=key, job_name=PUBLICATION_JOB, tags=tags)
    present = {p for rel in state if (p := suivi_partition(rel)) is not None}
    new = sorted((present | set(years)) - _existing_years(context))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=key,
                job_name=YEARS_PUBLICATION_JOB,
                run_config={"ops": {"construire_et_publier_annees": {"config": {"annees": years}}}},
                tags={**tags, "annees": ",".join(years)},
            )
        ],
        dynamic_partitions_requests=[ANNEE.build_add_request(new)] if new else [],
    )
