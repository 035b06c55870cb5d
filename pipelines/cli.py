"""``observatoire``: build the warehouse, write the demo, and other commands."""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import click

from pipelines.settings import DEFAULT_MARTS_DIR, DEFAULT_RAW_DIR, DEFAULT_WAREHOUSE, Paths


def _echo_step(message: str) -> None:
    click.echo(message, err=False)


class _ProgressHandler(logging.Handler):
    """Prints one line per step start/end and per asset materialized or checked."""

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, float] = {}
        self.failure: str | None = None
        self.failed_checks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return
        kind = event.event_type_value
        step = event.step_key or ""
        if kind == "STEP_START":
            self.started[step] = time.perf_counter()
            _echo_step(f"▶ {step}")
        elif kind == "STEP_SUCCESS":
            took = time.perf_counter() - self.started.get(step, time.perf_counter())
            _echo_step(f"✔ {step} ({took:.1f} s)")
        elif kind == "STEP_FAILURE":
            data = event.step_failure_data
            if data and data.user_failure_data and data.user_failure_data.description:
                message = data.user_failure_data.description.strip().splitlines()[0]
            else:
                message = failure_reason(data.error if data else None)
            self.failure = self.failure or f"{step}: {message}"
            _echo_step(f"✘ {step}: {message}")
        elif kind == "ASSET_MATERIALIZATION" and step.startswith("dbt"):
            key = event.asset_key.to_user_string() if event.asset_key else "?"
            _echo_step(f"   · {key}")
        elif kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if data is not None and not data.passed and data.severity.value == "ERROR":
                self.failed_checks.append(f"{data.asset_key.to_user_string()} {data.check_name}")
            if data is not None and not data.passed:
                _echo_step(
                    f"   ! test en échec: {data.asset_key.to_user_string()} {data.check_name}"
                )


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


@click.group(help="Entrepôt de données et observatoire de la politique de la ville (QPV).")
@click.version_option(package_name="observatoire-qpv")
def main() -> None:
    pass


@main.command(help="Construit l'entrepôt DuckDB et exporte les marts (via Dagster et dbt).")
@click.option(
    "--raw-dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_RAW_DIR,
    show_default=True,
    help="Dossier des fichiers bruts (sig_ville/, insee/, ...).",
)
@click.option(
    "--warehouse",
    type=click.Path(path_type=Path),
    default=DEFAULT_WAREHOUSE,
    show_default=True,
    help="Fichier DuckDB de l'entrepôt publié.",
)
@click.option(
    "--marts-dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_MARTS_DIR,
    show_default=True,
    help="Dossier des exports Parquet des marts.",
)
@click.option(
    "--as-of",
    "as_of",
    default=None,
    metavar="BUILD_ID|AAAA-MM-JJ",
    help="Reconstruit un entrepôt passé à partir de ses fichiers archivés (écrit "
    "warehouse_<id>.duckdb et marts_<id>/ sauf --warehouse/--marts-dir donnés).",
)
@click.option(
    "--annee",
    "annees",
    multiple=True,
    metavar="AAAA",
    help="Ne reconstruit que cette année des programmations et bilans (répétable) et les "
    "modèles qui en dépendent, dans une copie de l'entrepôt publié publiée atomiquement; les "
    "autres années restent identiques. Sans entrepôt publié: construction complète.",
)
@click.pass_context
def build(
    ctx: click.Context,
    raw_dir: Path,
    warehouse: Path,
    marts_dir: Path,
    as_of: str | None,
    annees: tuple[str, ...],
) -> None:
    from pipelines.operations import OperationError, find_build, restore_inputs

    for annee in annees:
        if not re.fullmatch(r"\d{4}|sans-annee", annee):
            raise click.BadParameter(f"{annee!r}: une année sur 4 chiffres", param_hint="--annee")
    if annees and as_of:
        raise click.UsageError("--annee et --as-of ne se combinent pas")
    if as_of:
        try:
            manifest = find_build(warehouse, as_of)
        except OperationError as err:
            raise click.ClickException(str(err)) from None
        bid = manifest["build_id"]
        archive_of = warehouse
        warehouse = warehouse.with_name(f"{warehouse.stem}_{bid}{warehouse.suffix}")
        marts_dir = marts_dir.with_name(f"{marts_dir.name}_{bid}")
        raw_dir = warehouse.parent / f"raw_{bid}"
        if raw_dir.exists():
            shutil.rmtree(raw_dir)
        try:
            files = restore_inputs(archive_of, manifest, raw_dir)
        except OperationError as err:
            raise click.ClickException(str(err)) from None
        click.echo(
            f"Construction {bid} du {manifest['date']}: {len(files)} fichier(s) restaurés "
            f"dans {raw_dir}"
        )
    if not raw_dir.is_dir():
        raise click.ClickException(f"{raw_dir}: dossier des fichiers bruts introuvable")
    try:
        code, reason = run_build(
            Paths(raw_dir, warehouse, marts_dir), record=not as_of, annees=list(annees) or None
        )
    except OperationError as err:
        code, reason = 1, str(err)
    if code:
        click.echo(f"ÉCHEC: {reason}", err=True)
        sys.exit(code)


def run_build(
    paths: Paths, record: bool = True, annees: list[str] | None = None, instance=None
) -> tuple[int, str | None]:
    """Build into a new warehouse file and publish it (atomic rename) only on success.

    Returns (exit code, one-line reason). The previously published warehouse and marts are left
    untouched by a failed (or killed) build. One build at a time per warehouse.

    With ``annees`` (partitions ``annee`` of the programmations and bilans), the new file is a
    copy of the published warehouse in which only those years, and the dbt models downstream of
    the yearly sources, are rebuilt (job ``suivi_par_annee``, one run per year, recorded in
    ``instance`` when given); without a published warehouse, everything is built.
    """
    from pipelines.operations import build_lock

    with build_lock(paths.warehouse):
        if annees and not paths.warehouse.is_file():
            click.echo(f"{paths.warehouse}: aucun entrepôt publié, construction complète")
            annees = None
        return _run_build(paths, record, annees, instance)


def _run_build(
    paths: Paths, record: bool, annees: list[str] | None = None, instance=None
) -> tuple[int, str | None]:
    from pipelines.operations import archive_inputs, remove_stale_builds, write_manifest

    started = time.perf_counter()
    paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_builds(paths.warehouse, paths.marts_dir):
        click.echo(f"Fichier temporaire d'une construction interrompue supprimé: {stale}")
    build_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    # the new file gets the published file's name, in a temp folder beside it: DuckDB names the
    # catalog after the file, and dbt's views refer to it, so it must not change on publication
    tmp_dir = paths.warehouse.with_name(f".{paths.warehouse.name}.build-{build_id}")
    tmp_dir.mkdir()
    tmp_wh = tmp_dir / paths.warehouse.name
    tmp_marts = paths.marts_dir.with_name(f".{paths.marts_dir.name}.build-{build_id}")
    staging = Paths(paths.raw_dir, tmp_wh, tmp_marts)
    staging.export_env()
    if annees:
        shutil.copy2(paths.warehouse, tmp_wh)  # the published file is never written to
    click.echo(
        f"Construction {build_id}"
        + (f" (années {', '.join(annees)})" if annees else "")
        + f": {paths.raw_dir} -> {paths.warehouse}"
    )

    from pipelines.defs.dbt import prepare_manifest

    try:
        prepare_manifest()
    except Exception as err:  # noqa: BLE001 - dbt parse errors: reported as one line
        _cleanup(tmp_dir, tmp_marts)
        detail = dbt_error_line(str(err)) or str(err).strip().splitlines()[0]
        return 1, f"projet dbt invalide (dbt parse): {detail}"
    import dagster as dg

    from pipelines.definitions import BUILD_JOB, build_definitions

    handler = _ProgressHandler()

    @dg.logger
    def progress(_init_context):
        lg = logging.Logger("observatoire", level=logging.DEBUG)
        lg.addHandler(handler)
        return lg

    defs = build_definitions(loggers={"progress": progress})
    try:
        if annees:
            ok = _run_years(defs, annees, instance or dg.DagsterInstance.ephemeral())
        else:
            result = defs.resolve_job_def(BUILD_JOB).execute_in_process(
                instance=dg.DagsterInstance.ephemeral(),
                raise_on_error=False,
                run_config={"loggers": {"progress": {}}},
            )
            ok = result.success
    except Exception as err:  # noqa: BLE001 - reported as one line
        ok = False
        handler.failure = handler.failure or f"{type(err).__name__}: {err}".splitlines()[0]
    if not ok:
        _cleanup(tmp_dir, tmp_marts)
        if handler.failed_checks:
            n = len(handler.failed_checks)
            return 1, (
                f"{n} contrôle(s) bloquant(s) en échec, rien n'est publié: "
                + ", ".join(handler.failed_checks[:3])
                + (" ..." if n > 3 else "")
            )
        return 1, handler.failure or "la construction a échoué (voir les étapes ci-dessus)"

    summary = _summary(tmp_wh)
    manifest = archive_inputs(tmp_wh, paths.warehouse, paths.raw_dir, build_id) if record else None
    if manifest is not None and annees:
        manifest["annees"] = list(annees)
    _publish(tmp_wh, paths.warehouse, tmp_marts, paths.marts_dir)
    _cleanup(tmp_dir)
    Paths(paths.raw_dir, paths.warehouse, paths.marts_dir).export_env()
    click.echo(summary)
    if manifest is not None:
        manifest_path = write_manifest(paths.warehouse, manifest)
        click.echo(f"Entrées archivées ({len(manifest['fichiers'])} fichiers): {manifest_path}")
    rapports = sorted((paths.marts_dir / "rapport").glob("rapport_*.html"))
    if rapports:
        pdfs = sum(1 for r in rapports if r.with_suffix(".pdf").exists())
        click.echo(
            f"Rapports annuels ({len(rapports)} HTML, {pdfs} PDF): {paths.marts_dir / 'rapport'}"
        )
    click.echo(
        f"Entrepôt publié: {paths.warehouse} ; marts: {paths.marts_dir} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return 0, None


def _run_years(defs, annees: list[str], instance) -> bool:
    """One run of the partitioned job ``suivi_par_annee`` per year; stops at the first failure."""
    from pipelines.defs.automation import SUIVI_JOB
    from pipelines.sources.programmations.partitions import ANNEE

    missing = [a for a in annees if not instance.has_dynamic_partition(ANNEE.name, a)]
    if missing:
        instance.add_dynamic_partitions(ANNEE.name, missing)
    job = defs.resolve_job_def(SUIVI_JOB)
    for annee in annees:
        result = job.execute_in_process(
            instance=instance,
            partition_key=annee,
            raise_on_error=False,
            run_config={"loggers": {"progress": {}}},
        )
        if not result.success:
            return False
    return True


def _cleanup(*targets: Path) -> None:
    for target in targets:
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists():
            target.unlink()
        wal = target.with_name(target.name + ".wal")
        if wal.exists():
            wal.unlink()


def _publish(tmp_wh: Path, warehouse: Path, tmp_marts: Path, marts_dir: Path) -> None:
    """Atomic replace of the warehouse file; each mart file replaced atomically too."""
    os.replace(tmp_wh, warehouse)
    wal = warehouse.with_name(warehouse.name + ".wal")
    if wal.exists():
        wal.unlink()
    marts_dir.mkdir(parents=True, exist_ok=True)
    if tmp_marts.is_dir():
        for item in tmp_marts.iterdir():
            target = marts_dir / item.name
            if item.is_dir() and target.is_dir():
                # a folder (scdl/) cannot replace a non-empty one: swap, then drop the old one
                old = target.with_name(f".{target.name}.ancien")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
                os.replace(item, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(item, target)
        shutil.rmtree(tmp_marts, ignore_errors=True)


def _summary(warehouse: Path) -> str:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        lines = ["", "Résumé par source (fichiers lus, lignes chargées, lignes rejetées):"]
        rows = con.execute(
            "select source, count(*), sum(lignes_chargees), sum(lignes_rejetees) "
            "from raw.ingestion_log group by 1 order by 1"
        ).fetchall()
        rejets = dict(con.execute("select source, count(*) from raw.rejets group by 1").fetchall())
        if not rows:
            lines.append("  (aucun fichier brut)")
        for source, files, loaded, rejected in rows:
            lines.append(
                f"  {source:<16} {files:>3} fichier(s)  {loaded or 0:>9} chargées  "
                f"{rejected or 0:>6} rejetées  ({rejets.get(source, 0)} rejets détaillés "
                "dans raw.rejets)"
            )
        inconnus = con.execute(
            "select source, count(*) from raw.anomalies where type = 'qpv_inconnu' "
            "group by 1 order by 1"
        ).fetchall()
        if inconnus:
            lines.append(
                "Codes QPV inconnus (lignes gardées, détail dans raw.anomalies, type "
                "qpv_inconnu): " + ", ".join(f"{source} {n}" for source, n in inconnus)
            )
        lines.append("Marts écrits:")
        for (table,) in con.execute(
            "select table_name from information_schema.tables "
            "where table_schema = 'marts' order by 1"
        ).fetchall():
            count = con.execute(f"select count(*) from marts.{table}").fetchone()[0]
            lines.append(f"  marts.{table:<28} {count:>8} lignes")
        return "\n".join(lines)
    finally:
        con.close()


@main.command(help="Écrit les fichiers bruts de la démo dans --raw-dir s'ils sont absents.")
@click.option(
    "--raw-dir", type=click.Path(path_type=Path), default=DEFAULT_RAW_DIR, show_default=True
)
@click.option("--force", is_flag=True, help="Réécrit la démo même si le dossier existe.")
def demo(raw_dir: Path, force: bool) -> None:
    from pipelines.demo.install import install_demo

    written = install_demo(raw_dir, force=force)
    if written:
        click.echo(f"Démo écrite dans {raw_dir}: {len(written)} fichier(s)")
    else:
        click.echo(f"{raw_dir} contient déjà des fichiers: démo non réécrite (--force)")


@main.command(
    help="Télécharge les fichiers officiels (contours ANCT, bases INSEE) dans --raw-dir, avec "
    "empreintes, reprise et journal (la seule commande qui utilise le réseau)."
)
@click.option(
    "--raw-dir", type=click.Path(path_type=Path), default=DEFAULT_RAW_DIR, show_default=True
)
@click.option(
    "--source", "sources", multiple=True, help="Source à télécharger (toutes par défaut)."
)
@click.option(
    "--base-url",
    "base_urls",
    multiple=True,
    metavar="SOURCE=URL",
    help="Adresse de remplacement d'une source (miroir, serveur local); répétable.",
)
@click.option("--force", is_flag=True, help="Retélécharge même si le fichier est à jour.")
def fetch(raw_dir: Path, sources: tuple[str, ...], base_urls: tuple[str, ...], force: bool) -> None:
    from pipelines.fetch import run_cli

    sys.exit(run_cli(raw_dir, sources, base_urls, force, click.echo))


@main.command(
    "extract-demo",
    help="(Mainteneurs) Refait l'extrait réel de la démo depuis "
    "les fichiers nationaux (../shared/data).",
)
@click.option("--shared-data", type=click.Path(path_type=Path, exists=True), required=True)
def extract_demo(shared_data: Path) -> None:
    from pipelines.demo.extract import build_extract

    for path in build_extract(shared_data):
        click.echo(f"écrit: {path}")


@main.command(
    help="Écrit le rapport annuel (HTML autonome + PDF) d'un territoire à partir des marts.",
)
@click.option(
    "--territoire",
    help="Code court (VM), SIREN (245901160) ou nom du territoire ; sans lui : tous les "
    "territoires, chacun pour sa dernière année de programmation.",
)
@click.option("--annee", type=int, help="Année de programmation (défaut : la dernière).")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Fichier HTML à écrire (le PDF est écrit à côté) ; défaut : "
    "<marts>/rapport/rapport_<territoire>_<annee>.html.",
)
@click.option(
    "--warehouse",
    type=click.Path(path_type=Path, dir_okay=False),
    default=lambda: str(Paths.from_env().warehouse),
    show_default="OBSERVATOIRE_WAREHOUSE",
)
@click.option(
    "--marts-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=lambda: str(Paths.from_env().marts_dir),
    show_default="OBSERVATOIRE_MARTS_DIR",
)
@click.option("--pdf/--no-pdf", default=True, show_default=True, help="Imprime aussi le PDF.")
def report(
    territoire: str | None,
    annee: int | None,
    out: Path | None,
    warehouse: Path,
    marts_dir: Path,
    pdf: bool,
) -> None:
    from pipelines.report import RapportError, ecrire_rapport, ecrire_rapports_recents

    try:
        if territoire is None:
            if annee is not None or out is not None:
                raise click.UsageError("--annee et --out demandent --territoire")
            rapports = ecrire_rapports_recents(warehouse, marts_dir / "rapport", pdf=pdf)
            if not rapports:
                raise click.ClickException(
                    f"{warehouse}: aucun territoire n'a de programmation dans l'entrepôt, "
                    "aucun rapport écrit (territoires: dbt_project/seeds/referentiels/"
                    "ref_territoires.csv)"
                )
        else:
            rapports = [
                ecrire_rapport(warehouse, territoire, annee, out, marts_dir / "rapport", pdf=pdf)
            ]
    except RapportError as exc:
        raise click.ClickException(str(exc)) from exc
    for r in rapports:
        click.echo(f"rapport {r.territoire} {r.annee}: {r.html}")
        if r.pdf:
            click.echo(f"  PDF: {r.pdf}")
        elif r.pdf_erreur:
            click.echo(f"  {r.pdf_erreur}", err=True)


if __name__ == "__main__":
    main()
