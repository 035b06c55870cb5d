"""Annual schedule, raw-files sensor, and the atomic publication job they start.

The asset job ``build_entrepot`` materializes assets where the resources point (handy in the
UI). Publication for analysts goes through ``publication_atomique``: the same build as
``observatoire build``, in a new warehouse file swapped in only when every blocking check
passed. The schedule and the sensor start that job.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg

from pipelines.settings import Paths

PUBLICATION_JOB = "publication_atomique"


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
            state[rel] = [stat.st_size, stat.st_mtime_ns, _sha256(path)]
    return state


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_key(state: dict[str, list]) -> str:
    """One hash for the whole raw dir: paths and content hashes, not mtimes."""
    pairs = sorted((rel, entry[2]) for rel, entry in state.items())
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


@dg.sensor(
    name="fichiers_bruts",
    job=publication_atomique,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Lance une publication quand un fichier de data/raw/ apparaît, change ou "
    "disparaît (empreinte du contenu, pas la date de modification).",
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
    return dg.RunRequest(run_key=key, tags={"fichiers_modifies": ", ".join(changed)[:1000]})
