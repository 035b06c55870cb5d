"""The publication asset: the last step of every build (write-audit-publish).

Every other asset of a run writes into the staging warehouse and marts folder
(:mod:`pipelines.warehouse.resources`). Dagster runs this asset only when all of them succeeded
and no blocking check failed (ingestion row counts, dbt tests of severity ``error``). It then
audits the staging warehouse once more, archives the inputs (by content hash, with a build
manifest for ``--as-of``), and publishes the staging warehouse and marts together with one
atomic switch of a link (:func:`publish`): analysts see the old warehouse and marts or the new
ones, never a mix or a half-written file.
"""

import os
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

from pipelines.duckdb_utils import quote_identifier, tables_in
from pipelines.lib.files import link_or_copy
from pipelines.operations import (
    CURRENT,
    OperationError,
    PublishError,
    archive_inputs,
    no_writer,
    publications_dir,
    write_manifest,
)
from pipelines.settings import Paths
from pipelines.warehouse.resources import ProjectFolders, release_warehouses

KEY = dg.AssetKey(["publication", "entrepot"])
#: Name of the marts folder inside a publication.
MARTS = "marts"


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
        missing = sorted(set(marts) - tables_in(con, "marts"))
        if missing:
            raise AuditError(f"marts absents de la construction: {', '.join(missing)}")
        gaps = con.execute(
            "select fichier, lignes_lues, lignes_chargees, lignes_rejetees from raw.ingestion_log "
            "where lignes_lues <> lignes_chargees + lignes_rejetees"
        ).fetchall()
        if gaps:
            f, lus, ok, rej = gaps[0]
            raise AuditError(f"{f}: {lus} lignes lues mais {ok} chargées + {rej} rejetées")
        return {
            t: con.execute(f"select count(*) from marts.{quote_identifier(t)}").fetchone()[0]
            for t in marts
        }
    finally:
        con.close()


def _territory_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    """One line per territory with programmations: declared or taken from the EPCI référentiel,
    with or without its hierarchy and rules (what the controls and the orientations rest on)."""
    if "ref_territoires" not in tables_in(con, "referentiels"):
        return []
    rows = con.execute(
        """
        select
            t.territoire,
            t.nom,
            t.origine,
            exists (
                select 1 from referentiels.ref_orientations o where o.territoire = t.territoire
            ),
            (select count(*) from referentiels.ref_regles_financement r
             where r.territoire = t.territoire)
        from referentiels.ref_territoires t
        where t.territoire in (select territoire from raw.programmations)
        order by 1
        """
    ).fetchall()
    if not rows:
        return []
    lines = ["Territoires des programmations:"]
    for code, nom, origine, hierarchy, rules in rows:
        where = (
            "EPCI du référentiel, sans dossier de territoire"
            if origine == "referentiel_epci"
            else f"dossier territoires/{code}/"
        )
        hierarchy_text = (
            "hiérarchie d'intervention déclarée"
            if hierarchy
            else "orientations telles qu'écrites dans les fichiers (aucune hiérarchie déclarée)"
        )
        rules_text = f"{rules} règle(s) de financement" if rules else "aucune règle évaluée"
        lines.append(f"  {code} {nom} ({where}): {hierarchy_text}, {rules_text}")
    return lines


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
        if "programmations" in {source for source, *_ in rows}:
            conflits = con.execute(
                "select count(*) from raw.anomalies where type = 'demande_en_conflit'"
            ).fetchone()[0]
            lines.append(
                f"Demandes en conflit (dossier × financeur répété avec d'autres montants; la "
                f"dernière ligne est retenue, rien n'est additionné): {conflits} (détail dans "
                "raw.anomalies, type demande_en_conflit)"
            )
        lines += _territory_lines(con)
        lines.extend(_insee_warnings(con))
        counts = sorted(mart_rows.items())
        lines.append(
            f"Marts écrits ({len(counts)}, {sum(n for _, n in counts)} lignes; vides: "
            + (", ".join(t for t, n in counts if n == 0) or "aucun")
            + ")"
        )
        return "\n".join(lines)
    finally:
        con.close()


def _insee_warnings(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Summary lines for INSEE files whose values reach no indicator and for variables of a
    file naming no base that several bases publish (raw.anomalies, source insee)."""
    found = con.execute(
        "select type, list(distinct nom order by nom), count(*) from (select type, "
        "regexp_extract(fichier, '[^/\\\\]+$') as nom from raw.anomalies where source = 'insee' "
        "and type in ('insee_sans_indicateur', 'insee_variable_ambigue')) group by 1 order by 1"
    ).fetchall()
    lines = []
    for kind, files, n in found:
        if kind == "insee_sans_indicateur":
            lines.append(
                "Avertissement : fichier(s) INSEE dont aucune valeur n'atteint un indicateur "
                f"(valeurs gardées sans indicateur, raw.anomalies type {kind}): " + ", ".join(files)
            )
        else:
            lines.append(
                f"Avertissement : {n} variable(s) INSEE présente(s) dans plusieurs bases, sans "
                f"indicateur (raw.anomalies type {kind}): " + ", ".join(files)
            )
    return lines


def _point(link: Path, target: str) -> None:
    """Make ``link`` a symbolic link to ``target`` (atomic ``os.replace`` of a new link; a real
    folder, from before publications, is moved aside first and removed)."""
    if link.is_symlink() and os.readlink(link) == target:
        return
    tmp = link.with_name(f".{link.name}.lien")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    old = None
    if link.is_dir() and not link.is_symlink():
        old = link.with_name(f".{link.name}.ancien")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(link, old)
    os.replace(tmp, link)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(paths: Paths, build: str) -> Path:
    """Publish the staging warehouse and marts together, in one atomic switch.

    The staging files move into a new folder ``.<warehouse>.publications/<build>/``
    (``<warehouse file>`` and ``marts/``; marts of the published build that this build did not
    write, as in an ``--annee`` run, are carried over as hard links); then the link
    ``.<warehouse>.publications/courante`` is replaced by one pointing to it (``os.replace`` of a
    symbolic link: atomic). The user-facing paths are links through ``courante``
    (``warehouse.duckdb -> .warehouse.duckdb.publications/courante/warehouse.duckdb``,
    ``marts -> .warehouse.duckdb.publications/courante/marts``): they switch together, and a
    reader sees the old warehouse and marts or the new ones, never a mix. Older publications are
    then removed (a reader that has them open keeps reading them). Returns the new folder.

    Refused (PublishError, nothing published) while a program holds the published warehouse
    open for writing (:func:`no_writer`).
    """
    with no_writer(paths.warehouse):
        target = _switch(paths, build)
    root = publications_dir(paths.warehouse)
    for old in root.iterdir():
        if old.name not in (CURRENT, build):
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    shutil.rmtree(paths.staging_marts, ignore_errors=True)
    shutil.rmtree(paths.staging_dir, ignore_errors=True)
    return target


def _switch(paths: Paths, build: str) -> Path:
    root = publications_dir(paths.warehouse)
    root.mkdir(parents=True, exist_ok=True)
    target = root / build
    shutil.rmtree(target, ignore_errors=True)  # a killed publication of the same build
    target.mkdir()
    os.replace(paths.staging_warehouse, target / paths.warehouse.name)
    wal = paths.staging_warehouse.with_name(paths.staging_warehouse.name + ".wal")
    if wal.exists():  # (DuckDB checkpoints on close: normally none)
        os.replace(wal, target / wal.name)
    new_marts = target / MARTS
    if paths.staging_marts.is_dir():
        shutil.move(paths.staging_marts, new_marts)  # a rename on one file system
    new_marts.mkdir(exist_ok=True)
    if paths.marts_dir.is_dir():
        for item in paths.marts_dir.iterdir():
            kept = new_marts / item.name
            if kept.exists() or item.name.startswith("."):
                continue
            if item.is_dir():
                shutil.copytree(item, kept, copy_function=link_or_copy)
            else:
                link_or_copy(item, kept)
    tmp = root / f".{CURRENT}.lien"
    tmp.unlink(missing_ok=True)
    os.symlink(build, tmp)
    os.replace(tmp, root / CURRENT)  # the switch
    _fsync_dir(root)
    # links of the user-facing paths (made once: later switches go through ``courante``)
    current = root / CURRENT
    legacy_wal = paths.warehouse.with_name(paths.warehouse.name + ".wal")
    _point(paths.warehouse, os.path.relpath(current / paths.warehouse.name, paths.warehouse.parent))
    legacy_wal.unlink(missing_ok=True)  # the WAL of a replaced file is never replayed on another
    paths.marts_dir.parent.mkdir(parents=True, exist_ok=True)
    _point(paths.marts_dir, os.path.relpath(current / MARTS, paths.marts_dir.parent))
    return target


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
        release_warehouses()  # the staging warehouse is read, then moved
        try:
            rows = audit(paths.staging_warehouse, marts)
        except AuditError as err:
            raise dg.Failure(description=f"rien n'est publié: {err}") from None
        text = summary(paths.staging_warehouse, rows)
        bid = build_id(context)
        manifest = None
        if folders.archiver:
            try:
                manifest = archive_inputs(
                    paths.staging_warehouse, paths.warehouse, paths.raw_dir, bid
                )
            except OperationError as err:
                raise dg.Failure(description=str(err)) from None
            partition = context.run.tags.get("dagster/partition")
            if partition:
                manifest["annees"] = [partition]
        try:
            publish(paths, bid)
        except PublishError as err:
            raise dg.Failure(description=str(err)) from None
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
