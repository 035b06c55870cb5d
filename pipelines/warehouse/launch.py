"""Run the build job on the persistent Dagster instance and show its progress.

``observatoire build`` is a thin client of the job ``build_entrepot`` (or, per year, of
``suivi_par_annee``): it builds the Definitions with the user's folders and a progress logger,
executes the job in process on the instance of ``DAGSTER_HOME`` (what ``make ui`` shows), prints
one line per step, and reads the build summary from the publication asset's metadata. dbt's
per-node lines go to ``<warehouse dir>/logs/construction-<date>.log`` unless ``verbose``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import TextIO

from pipelines.settings import Paths


class Progress(logging.Handler):
    """Prints one line per step (with its duration) and a bar for the dbt step on a terminal.

    Fed by the Dagster events of the run (the CLI's logger); writes to ``stream`` (the real
    stdout, while dbt's own per-node lines go to the build log unless ``--verbose``).
    """

    def __init__(self, stream: TextIO, dbt_nodes: int = 0) -> None:
        super().__init__()
        self.stream = stream
        self.tty = stream.isatty()
        self.dbt_nodes = dbt_nodes
        self.done = 0
        self.started: dict[str, float] = {}
        self.failure: str | None = None
        self.failed_checks: list[str] = []
        self.warned_checks: list[str] = []
        self._last_bar = ""

    def echo(self, message: str) -> None:
        self.stream.write(message + "\n")
        self.stream.flush()

    def _bar(self, step: str) -> None:
        if not (self.tty and self.dbt_nodes):
            return
        share = min(1.0, self.done / self.dbt_nodes)
        took = time.perf_counter() - self.started.get(step, time.perf_counter())
        line = f"  {step} [{'#' * int(30 * share)}{'.' * (30 - int(30 * share))}] {share:4.0%}"
        line += f" ({took:.0f} s)"
        if line != self._last_bar:  # redrawn when the share or the second changes
            self._last_bar = line
            self.stream.write("\r" + line)
            self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return
        kind = event.event_type_value
        step = event.step_key or ""
        if kind == "STEP_START":
            self.started[step] = time.perf_counter()
            self.done = 0
            if step.startswith("dbt"):
                self._bar(step)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and self.tty and step.startswith("dbt"):
            self.stream.write("\r\033[K")
        if kind == "STEP_SUCCESS":
            took = time.perf_counter() - self.started.get(step, time.perf_counter())
            self.echo(f"✔ {step} ({took:.1f} s)")
        elif kind == "STEP_FAILURE":
            data = event.step_failure_data
            if data and data.user_failure_data and data.user_failure_data.description:
                message = dbt_exit_line(data.user_failure_data.description)
            else:
                message = failure_reason(data.error if data else None)
            self.failure = self.failure or f"{step}: {message}"
            self.echo(f"✘ {step}: {message}")
        elif kind in ("ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION") and step.startswith("dbt"):
            self.done += 1
            self._bar(step)
        if kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if data is None or data.passed:
                return
            name = f"{data.asset_key.to_user_string()} {data.check_name}"
            if data.severity.value == "ERROR":
                self.failed_checks.append(name)
            else:
                self.warned_checks.append(name)


class UngatedChecks(logging.Filter):
    """Collects Dagster's « Blocking asset check … emitted no result » warnings (one per check of
    a model dbt did not run: in a build of some years, the models whose published tables are
    kept) instead of letting Python print each one; :meth:`line` says them in one line."""

    LOGGER = "dagster._core.execution.plan.active"
    PATTERN = re.compile(r"^Blocking asset check '(([^':]+):[^']*)' emitted no result")

    def __init__(self) -> None:
        super().__init__()
        # check -> table (Dagster says it once per downstream step: counted once)
        self.checks: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        found = self.PATTERN.match(record.getMessage())
        if found is None:
            return True
        self.checks[found.group(1)] = found.group(2).rsplit("/", 1)[-1]
        return False

    def line(self) -> str | None:
        if not self.checks:
            return None
        tables = sorted(set(self.checks.values()))
        return (
            f"Contrôles non relancés, leurs tables n'ayant pas été recalculées : "
            f"{len(self.checks)} contrôle(s) de {len(tables)} table(s) ({', '.join(tables)})"
        )


def dbt_exit_line(description: str) -> str:
    """The first line of a step's failure, in French for dagster-dbt's « The dbt CLI process
    with command ... failed with exit code N » (what a failed dbt test gives)."""
    text = description.strip()
    if text.startswith("The dbt CLI process"):
        errors = dbt_error_line(text)
        if errors and not re.search(r"\bFAIL\b|Failure in test", errors):  # a model's error
            return "dbt: " + errors
        code = re.search(r"exit code `?(\d+)", text)
        return (
            f"dbt a échoué (code {code.group(1) if code else '?'}): contrôles ou modèles en "
            "échec, détaillés ci-dessous"
        )
    return text.splitlines()[0] if text else "échec"


def dbt_error_line(text: str) -> str | None:
    """dbt's own error lines (from a dagster-dbt exception), joined on one line."""
    marker = "Errors parsed from dbt logs:"
    if marker not in text:
        return None
    tail = text.split(marker, 1)[1]
    lines = [
        ln.strip()
        for ln in tail.splitlines()
        if ln.strip()
        and ln.strip() not in {"Encountered an error:", "Raw Error:"}
        and not set(ln.strip()) <= {"-"}
    ]
    return " — ".join(lines[:4])[:400]


def failure_reason(error) -> str:
    """One line out of a Dagster error chain: dbt's own error lines when dbt failed."""
    texts = []
    while error is not None:
        texts.append(error.message or "")
        error = error.cause or getattr(error, "context", None)
    dbt_line = dbt_error_line("\n".join(texts))
    if dbt_line:
        return "dbt: " + dbt_line
    for text in reversed(texts):
        first = text.strip().splitlines()[0] if text.strip() else ""
        if first and "Error occurred while executing" not in first:
            return first
    return "échec (voir les étapes ci-dessus)"


def run_build(
    paths: Paths,
    record: bool = True,
    annees: list[str] | None = None,
    verbose: bool = False,
    instance=None,
    stream: TextIO | None = None,
    allow_empty: bool = False,
    force: bool = False,
) -> tuple[int, str | None]:
    """Run the build job on the persistent Dagster instance; its last asset publishes.

    Returns (exit code, one-line reason). The previously published warehouse and marts are left
    untouched by a failed (or killed) build: every asset writes into staging files that the
    publication asset swaps in (:mod:`pipelines.warehouse.publication`). One build at a time per
    warehouse (the lock is held across the runs of ``--annee``).

    With ``annees``, one run of the partitioned job ``suivi_par_annee`` per year, each rebuilding
    its year (and the dbt models downstream of the yearly sources) in a copy of the published
    warehouse, then publishing it; the first failure stops. Without a published warehouse,
    everything is built.

    Unless ``allow_empty`` (``--autoriser-vide``), a raw folder with no file, or with no file
    for a source the published build loaded, stops the build before any work
    (:func:`pipelines.operations.check_inputs`): an unmounted folder never publishes empty marts.

    Unless ``force`` (``--forcer``), a build whose inputs (every file of the raw folder, by
    content), code version and options are those of the published build does nothing and says
    so (:func:`pipelines.operations.unchanged_since`): exit 0, the warehouse stays as it is.
    """

    from pipelines.operations import (
        BuildLock,
        MissingInputsError,
        check_inputs,
        tie_dbt_to_process,
        unchanged_since,
    )

    stream = stream or sys.stdout
    paths = paths.resolved()
    started = time.perf_counter()
    if not allow_empty:
        try:
            check_inputs(paths.raw_dir, paths.warehouse)
        except MissingInputsError as err:
            return 1, str(err)
    if record and not force:
        with BuildLock(paths.warehouse, marts_dir=paths.marts_dir):
            same = unchanged_since(paths.raw_dir, paths.warehouse, paths.marts_dir, annees)
        if same is not None:
            print(
                f"Rien n'a changé depuis la construction {same['build_id']} : entrepôt "
                f"inchangé ({paths.warehouse} ; mêmes fichiers bruts, même version du projet, "
                "mêmes options ; --forcer pour reconstruire quand même, "
                f"{time.perf_counter() - started:.1f} s)",
                file=stream,
                flush=True,
            )
            return 0, None
    # Dagster and dbt are imported only once a build is needed (seconds of imports)
    from pipelines.warehouse.automation import BUILD_JOB, SUIVI_JOB
    from pipelines.warehouse.dbt import prepare_manifest
    from pipelines.warehouse.instance import open_instance
    from pipelines.warehouse.manifest import dbt_node_count

    tie_dbt_to_process()  # dbt (parse, build) dies with this process, even on kill -9
    try:
        prepare_manifest()
    except Exception as err:  # noqa: BLE001 - dbt parse errors: reported as one line
        detail = dbt_error_line(str(err)) or str(err).strip().splitlines()[0]
        return 1, f"projet dbt invalide (dbt parse): {detail}"
    instance = instance or open_instance()
    progress = Progress(stream, dbt_node_count())
    defs = _definitions(paths, record, progress, allow_empty)
    with BuildLock(paths.warehouse, marts_dir=paths.marts_dir):
        if annees and not paths.warehouse.is_file():
            progress.echo(f"{paths.warehouse}: aucun entrepôt publié, construction complète")
            annees = None
        for stale in (paths.staging_dir, paths.staging_marts):
            if stale.exists():
                progress.echo(
                    f"Fichier temporaire d'une construction interrompue supprimé: {stale}"
                )
        progress.echo(
            "Construction"
            + (f" (années {', '.join(annees)})" if annees else "")
            + f": {paths.raw_dir} -> {paths.warehouse}"
        )
        runs = [(SUIVI_JOB, a) for a in annees] if annees else [(BUILD_JOB, None)]
        log_dir = paths.warehouse.parent / "logs"
        for job_name, partition in runs:
            if partition is not None:
                _ensure_partition(instance, partition)
                progress.echo(_yearly_line(paths, partition))
            log = log_dir / f"construction-{datetime.now():%Y%m%dT%H%M%S}.log"
            ungated = UngatedChecks()
            logging.getLogger(UngatedChecks.LOGGER).addFilter(ungated)
            try:
                with _dbt_output(log, verbose), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = defs.resolve_job_def(job_name).execute_in_process(
                        instance=instance,
                        partition_key=partition,
                        raise_on_error=False,
                        run_config={"loggers": {"progress": {}}},
                    )
                ok = result.success
            except Exception as err:  # noqa: BLE001 - reported as one line
                ok, result = False, None
                progress.failure = (
                    progress.failure or f"{type(err).__name__}: {err}".splitlines()[0]
                )
            finally:
                logging.getLogger(UngatedChecks.LOGGER).removeFilter(ungated)
            if ungated.line():
                progress.echo(ungated.line())
            if not ok:
                return 1, _failure(progress, log, paths)
            if not _published(result):
                # a run whose publication step was skipped (an upstream output not produced)
                # succeeds for Dagster: nothing was published, which is a failure here
                skipped = sorted(
                    e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"
                )
                return 1, (
                    "construction terminée sans publication : étapes sautées "
                    f"({', '.join(skipped) or 'publication'}) ; entrepôt publié inchangé "
                    f"(détail: {log})"
                )
            _report(progress, result, paths)
    progress.echo(
        f"Entrepôt publié: {paths.warehouse} ; marts: {paths.marts_dir} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return 0, None


def _published(result) -> bool:
    """Whether the run materialized the publication asset."""
    from pipelines.warehouse.publication import KEY

    return any(event.asset_key == KEY for event in result.get_asset_materialization_events())


def _definitions(paths: Paths, record: bool, progress: Progress, allow_empty: bool = False):
    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.warehouse.resources import ProjectFolders

    @dg.logger
    def progress_logger(_init_context):
        lg = logging.Logger("observatoire", level=logging.DEBUG)
        lg.addHandler(progress)
        return lg

    folders = ProjectFolders(
        raw_dir=str(paths.raw_dir),
        warehouse=str(paths.warehouse),
        marts_dir=str(paths.marts_dir),
        archiver=record,
        allow_empty=allow_empty,
    )
    return build_definitions(folders, loggers={"progress": progress_logger})


def _ensure_partition(instance, partition: str) -> None:
    from pipelines.sources.programmations.partitions import ANNEE

    if not instance.has_dynamic_partition(ANNEE.name, partition):
        instance.add_dynamic_partitions(ANNEE.name, [partition])


@contextlib.contextmanager
def _dbt_output(log: Path, verbose: bool):
    """dbt's per-node lines (written by dagster-dbt to stdout) go to the build log."""
    if verbose:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as fh, contextlib.redirect_stdout(fh):
        yield


def _failure(progress: Progress, log: Path, paths: Paths | None = None) -> str:
    """The reason of a failed build. Failed dbt tests are explained in French, one line each,
    with the raw files and lines of the failing rows
    (:func:`pipelines.warehouse.failures.explain_test_failures`), rather than by test name."""
    where = f" (détail: {log})" if log.is_file() else ""
    details = []
    if paths is not None:
        from pipelines.warehouse.failures import explain_test_failures

        try:
            details = explain_test_failures(paths)
        except Exception:  # noqa: BLE001 - an explanation never hides the failure itself
            details = []
    if details:
        return (
            "contrôle(s) bloquant(s) en échec, rien n'est publié:\n"
            + "\n".join(f"  - {line}" for line in details)
            + (f"\n{where.strip()}" if where else "")
        )
    if progress.failed_checks:
        n = len(progress.failed_checks)
        return (
            f"{n} contrôle(s) bloquant(s) en échec, rien n'est publié: "
            + ", ".join(progress.failed_checks[:3])
            + (" ..." if n > 3 else "")
            + where
        )
    return (progress.failure or "la construction a échoué (voir les étapes ci-dessus)") + where


def _yearly_line(paths: Paths, partition: str) -> str:
    """What a run of one year recomputes (:func:`pipelines.warehouse.dbt.yearly_args`)."""
    from pipelines.warehouse.resources import same_version_as_published

    if same_version_as_published(paths.warehouse):
        return (
            f"Année {partition} : les modèles annuels recalculent {partition} et les années "
            "suivantes, les autres sont reprises de l'entrepôt publié ; les contrôles bloquants "
            "ligne à ligne de ces modèles ne relisent que les années recalculées"
        )
    return (
        f"Année {partition} : modèles annuels recalculés en entier (l'entrepôt publié vient "
        "d'une autre version du projet ou d'autres options)"
    )


def _report(progress: Progress, result, paths: Paths) -> None:
    """The build summary, from the publication and report assets' metadata."""
    import dagster as dg

    from pipelines.warehouse.publication import KEY

    metadata = {}
    for event in result.get_asset_materialization_events():
        if event.asset_key == KEY:
            metadata = event.materialization.metadata
    if "resume" in metadata:
        progress.echo(metadata["resume"].value)
    if progress.warned_checks:
        progress.echo(
            f"Avertissements ({len(progress.warned_checks)} contrôles non bloquants): "
            + ", ".join(progress.warned_checks[:4])
            + (" ..." if len(progress.warned_checks) > 4 else "")
        )
    for event in result.get_asset_materialization_events():
        reused = event.materialization.metadata.get("marts_repris")
        if event.asset_key == dg.AssetKey(["exports", "marts_parquet"]) and reused and reused.value:
            progress.echo(
                f"Marts inchangés, fichiers repris de la publication précédente "
                f"({len(reused.value)}): {', '.join(reused.value)}"
            )
    if "manifeste" in metadata:
        progress.echo(
            f"Entrées archivées ({metadata['fichiers_archives'].value} fichiers): "
            f"{metadata['manifeste'].value}"
        )
    rapports = sorted((paths.marts_dir / "rapport").glob("rapport_*.html"))
    if rapports:
        pdfs = sum(1 for r in rapports if r.with_suffix(".pdf").exists())
        progress.echo(
            f"Rapports annuels ({len(rapports)} HTML, {pdfs} PDF): {paths.marts_dir / 'rapport'}"
        )
    # a report that could not be written does not stop the publication of the data, but is said
    report_metadata = {}
    for event in result.get_asset_materialization_events():
        if event.asset_key == dg.AssetKey(["rapport", "rapports_annuels"]):
            report_metadata = event.materialization.metadata
    failed = (
        dict(report_metadata["rapports_en_echec"].value or {})
        if ("rapports_en_echec" in report_metadata)
        else {}
    )
    if "erreur" in report_metadata:
        progress.echo(
            f"AVERTISSEMENT : rapports annuels non écrits : {report_metadata['erreur'].value}"
        )
    if failed:
        progress.echo(
            f"AVERTISSEMENT : {len(failed)} rapport(s) annuel(s) non écrit(s) (les données sont "
            "publiées) : "
            + " ; ".join(f"{code} ({reason})" for code, reason in sorted(failed.items())[:5])
            + (" ..." if len(failed) > 5 else "")
        )
    _report_postgis(progress, result)


def _report_postgis(progress: Progress, result) -> None:
    """The line of the optional copy to PostGIS: a server down never fails the build (the
    warehouse is published), it is said as an AVERTISSEMENT."""
    from pipelines.warehouse.postgis import KEY

    metadata = {}
    for event in result.get_asset_materialization_events():
        if event.asset_key == KEY:
            metadata = event.materialization.metadata
    if not metadata:
        return
    server = metadata["serveur"].value if "serveur" in metadata else ""
    schema = metadata["schema"].value if "schema" in metadata else ""
    if "erreur" in metadata:
        progress.echo(
            f"AVERTISSEMENT : marts non publiés dans PostgreSQL {server} (schéma {schema} "
            f"inchangé ; l'entrepôt est publié) : {metadata['erreur'].value}"
        )
    elif "lignes_par_mart" in metadata:
        rows = metadata["lignes_par_mart"].value or {}
        progress.echo(
            f"Marts publiés dans PostgreSQL {server}, schéma {schema} ({len(rows)} tables, "
            f"{sum(rows.values())} lignes)"
        )
