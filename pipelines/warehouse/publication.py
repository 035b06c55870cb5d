"""The publication asset: the last step of every build (write-audit-publish).

Every other asset of a run writes into the staging warehouse and marts folder
(:mod:`pipelines.warehouse.resources`). Dagster runs this asset only when all of them succeeded
and no blocking check failed (ingestion row counts, dbt tests of severity ``error``). It then
audits the staging warehouse once more, archives the inputs (by content hash, with a build
manifest for ``--as-of``), and swaps the staging files in with ``os.replace`` (atomic on one
file system): analysts see the old warehouse or the new one, never a mix or a half-written file.
"""

import os
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

from pipelines.operations import archive_inputs, write_manifest
from pipelines.settings import Paths
from pipelines.warehouse.resources import ProjectFolders

KEY = dg.AssetKey(["publication", "entrepot"])


class AuditError(Exception):
    """The staging warehouse is not fit for publication."""


def audit(staging: Path, marts: Sequence[str]) -> dict[str, int]:
    """Rows of every mart of the staging warehouse; raises AuditError when one is missing or
    when a file's rows read differ from rows loaded + rejected."""
    if not staging.is_file():
        raise AuditError(
            f"{staging}: aucune construction à publier (lancer la construction complète, job "
            "build_entrepot ou observatoire build)"
        )
    con = duckdb.connect(str(staging), read_only=True)
    try:
        tables = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        }
        missing = sorted(set(marts) - tables)
        if missing:
            raise AuditError(f"marts absents de la construction: {', '.join(missing)}")
        gaps = con.execute(
            "select fichier, lignes_lues, lignes_chargees, lignes_rejetees from raw.ingestion_log "
            "where lignes_lues <> lignes_chargees + lignes_rejetees"
        ).fetchall()
        if gaps:
            f, lus, ok, rej = gaps[0]
            raise AuditError(f"{f}: {lus} lignes lues mais {ok} chargées + {rej} rejetées")
        return {t: con.execute(f'select count(*) from marts."{t}"').fetchone()[0] for t in marts}
    finally:
        con.close()


def summary(warehouse: Path, mart_rows: dict[str, int]) -> str:
    """The build summary printed by the CLI: files and rows per source, marts written
    (``mart_rows``, the counts of :func:`audit`)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        lines = ["Résumé par source (fichiers lus, lignes chargées, lignes rejetées):"]
        rows = con.execute(
            "select source, count(*), sum(lignes_chargees), sum(lignes_rejetees) "
            "from raw.ingestion_log group by 1 order by 1"
        ).fetchall()
        rejets = dict(con.execute("select source, count(*) from raw.rejets group by 1").fetchall())
        if not rows:
            lines.append("  (aucun fichier brut)")
        for source, files, loaded, rejected in rows:
            lines.append(
                f"  {source:<18} {files:>3} fichier(s)  {loaded or 0:>9} chargées  "
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
        counts = sorted(mart_rows.items())
        lines.append(
            f"Marts écrits ({len(counts)}, {sum(n for _, n in counts)} lignes; vides: "
            + (", ".join(t for t, n in counts if n == 0) or "aucun")
            + ")"
        )
        return "\n".join(lines)
    finally:
        con.close()


def swap_in(paths: Paths) -> None:
    """Atomic replace of the warehouse file, then of each mart file; staging removed."""
    os.replace(paths.staging_warehouse, paths.warehouse)
    wal = paths.warehouse.with_name(paths.warehouse.name + ".wal")
    if wal.exists():  # a WAL of the old file must never be replayed on the new one
        wal.unlink()
    paths.marts_dir.mkdir(parents=True, exist_ok=True)
    if paths.staging_marts.is_dir():
        for item in paths.staging_marts.iterdir():
            target = paths.marts_dir / item.name
            if item.is_dir() and target.is_dir():
                # a folder (scdl/, rapport/) cannot replace a non-empty one: swap, drop the old
                old = target.with_name(f".{target.name}.ancien")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
                os.replace(item, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(item, target)
    shutil.rmtree(paths.staging_marts, ignore_errors=True)
    shutil.rmtree(paths.staging_dir, ignore_errors=True)


def build_id(context: dg.AssetExecutionContext) -> str:
    """``<UTC start of the run>-<first characters of the Dagster run id>``."""
    record = context.instance.get_run_record_by_id(context.run_id)
    start = record.start_time if record is not None and record.start_time else None
    when = datetime.fromtimestamp(start, UTC) if start else datetime.now(UTC)
    return when.strftime("%Y%m%dT%H%M%S") + "-" + context.run_id[:6]


def build_publication_asset(deps: Sequence[dg.AssetKey], marts: Sequence[str]):
    """The publication asset, downstream of every other asset of the build."""

    @dg.asset(
        key=KEY,
        group_name="publication",
        kinds={"duckdb"},
        deps=list(deps),
        description="Publication atomique: vérifie l'entrepôt en construction, archive les "
        "fichiers bruts (empreintes, manifeste de construction), puis remplace l'entrepôt et "
        "les marts publiés. Ne s'exécute que si tout ce qui précède a réussi.",
    )
    def entrepot(
        context: dg.AssetExecutionContext, folders: ProjectFolders
    ) -> dg.MaterializeResult:
        paths = folders.paths
        if folders.direct:
            raise dg.Failure(
                description="écriture directe (sans entrepôt de construction): rien à publier"
            )
        try:
            rows = audit(paths.staging_warehouse, marts)
        except AuditError as err:
            raise dg.Failure(description=f"rien n'est publié: {err}") from None
        text = summary(paths.staging_warehouse, rows)
        bid = build_id(context)
        manifest = None
        if folders.archiver:
            manifest = archive_inputs(paths.staging_warehouse, paths.warehouse, paths.raw_dir, bid)
            partition = context.run.tags.get("dagster/partition")
            if partition:
                manifest["annees"] = [partition]
        swap_in(paths)
        metadata = {
            "build_id": dg.MetadataValue.text(bid),
            "entrepot": dg.MetadataValue.path(str(paths.warehouse)),
            "marts": dg.MetadataValue.path(str(paths.marts_dir)),
            "lignes_par_mart": dg.MetadataValue.json(rows),
            "resume": dg.MetadataValue.text(text),
        }
        if manifest is not None:
            out = write_manifest(paths.warehouse, manifest)
            metadata["manifeste"] = dg.MetadataValue.path(str(out))
            metadata["fichiers_archives"] = dg.MetadataValue.int(len(manifest["fichiers"]))
        context.log.info(f"entrepôt publié: {paths.warehouse} ({bid})")
        return dg.MaterializeResult(metadata=metadata)

    return entrepot
