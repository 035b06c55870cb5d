"""``observatoire``: build the warehouse (a thin client of the Dagster job), fetch the official
files, write the rapport annuel."""

from __future__ import annotations

import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from pipelines.settings import (
    DEFAULT_MARTS_DIR,
    DEFAULT_RAW_DIR,
    DEFAULT_WAREHOUSE,
    Paths,
)

#: ``--warehouse``: the published warehouse a command reads (OBSERVATOIRE_WAREHOUSE by default).
published_warehouse_option = click.option(
    "--warehouse",
    type=click.Path(path_type=Path, dir_okay=False),
    default=lambda: str(Paths.from_env().warehouse),
    show_default="OBSERVATOIRE_WAREHOUSE",
)


def _prepare_manifest() -> bool:
    """Parse the dbt project when its manifest (the marts' names and YAML descriptions) is
    missing or stale; False when dbt cannot parse it. dbt is imported only then."""
    from pipelines.warehouse.manifest import manifest_is_fresh

    if manifest_is_fresh():
        return True
    try:
        from pipelines.warehouse.dbt import prepare_manifest

        prepare_manifest()
    except Exception:  # noqa: BLE001 - the descriptions are a help: the caller says what is lost
        return False
    return True


@contextmanager
def _read_published(warehouse: Path):
    """The published warehouse, read-only with DuckDB spatial loaded; a clear error when absent."""
    import duckdb

    from pipelines.duckdb_utils import load_spatial

    if not warehouse.is_file():
        raise click.ClickException(f"{warehouse}: entrepôt introuvable (observatoire build)")
    _prepare_manifest()
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        load_spatial(con)
        yield con
    finally:
        con.close()


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
@click.option(
    "--autoriser-vide",
    "allow_empty",
    is_flag=True,
    help="Construit et publie même si le dossier brut est vide, ou sans fichier pour une source "
    "que la construction publiée avait chargée (sinon la construction s'arrête avant de "
    "commencer: un dossier non monté ne remplace pas les marts publiés par des marts vides).",
)
@click.option(
    "--forcer",
    "force",
    is_flag=True,
    help="Reconstruit même si rien n'a changé depuis la construction publiée (mêmes fichiers "
    "bruts, même version du projet, mêmes options), qui sinon est gardée telle quelle.",
)
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Affiche les lignes de dbt (une par modèle et par test) au lieu de les écrire dans le "
    "journal de la construction.",
)
def build(
    raw_dir: Path,
    warehouse: Path,
    marts_dir: Path,
    as_of: str | None,
    annees: tuple[str, ...],
    allow_empty: bool,
    force: bool,
    verbose: bool,
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
    from pipelines.warehouse.launch import run_build

    try:
        code, reason = run_build(
            Paths(raw_dir, warehouse, marts_dir),
            record=not as_of,
            annees=list(annees) or None,
            verbose=verbose,
            # --as-of rebuilds a past build exactly, whatever inputs it had
            allow_empty=allow_empty or bool(as_of),
            force=force,
        )
    except OperationError as err:
        code, reason = 1, str(err)
    if code:
        click.echo(f"ÉCHEC: {reason}", err=True)
        sys.exit(code)


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
    help="Écrit le rapport annuel (HTML autonome + PDF) d'un territoire à partir des marts ; "
    "avec --focus, une note focus thématique.",
)
@click.option(
    "--territoire",
    "territory",
    help="Code court (VM), SIREN (245901160) ou nom du territoire ; sans lui : tous les "
    "territoires, chacun pour sa dernière année de programmation.",
)
@click.option("--annee", "year", type=int, help="Année de programmation (défaut : la dernière).")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Fichier HTML à écrire (le PDF est écrit à côté) ; défaut : "
    "<marts>/rapport/rapport_<territoire>_<annee>.html.",
)
@published_warehouse_option
@click.option(
    "--marts-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=lambda: str(Paths.from_env().marts_dir),
    show_default="OBSERVATOIRE_MARTS_DIR",
)
@click.option("--pdf/--no-pdf", default=True, show_default=True, help="Imprime aussi le PDF.")
@click.option(
    "--focus",
    "theme",
    help="Écrit une note focus (« Focus Osé ») au lieu du rapport : emploi, egalite, quartier.",
)
@click.option(
    "--qpv", help="Code du QPV de la note focus « quartier » (seul, il vaut --focus quartier)."
)
def report(
    territory: str | None,
    year: int | None,
    out: Path | None,
    warehouse: Path,
    marts_dir: Path,
    pdf: bool,
    theme: str | None,
    qpv: str | None,
) -> None:
    from pipelines.report import ReportError, write_latest_reports, write_report

    if theme is not None or qpv is not None:
        _focus(theme or "quartier", territory, year, qpv, out, warehouse, marts_dir, pdf)
        return
    try:
        if territory is None:
            if year is not None or out is not None:
                raise click.UsageError("--annee et --out demandent --territoire")
            reports = write_latest_reports(warehouse, marts_dir / "rapport", pdf=pdf)
            if not reports:
                raise click.ClickException(
                    f"{warehouse}: aucun territoire n'a de programmation dans l'entrepôt, "
                    "aucun rapport écrit (territoires: dossiers data/raw/territoires/<code>/, "
                    "voir exemples/territoires/)"
                )
        else:
            reports = [
                write_report(warehouse, territory, year, out, marts_dir / "rapport", pdf=pdf)
            ]
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    for r in reports:
        click.echo(f"rapport {r.territory} {r.year}: {r.html}")
        if r.pdf:
            click.echo(f"  PDF: {r.pdf}")
        elif r.pdf_error:
            click.echo(f"  {r.pdf_error}", err=True)


def _focus(theme, territory, year, qpv, out, warehouse, marts_dir, pdf) -> None:
    """`report --focus`: a note focus per territory (an unknown theme or QPV exits with 2)."""
    from pipelines.report import ReportError
    from pipelines.report.focus import FocusUsageError, write_focus

    try:
        results = write_focus(
            warehouse, theme, territory, year, qpv, out, marts_dir / "rapport", pdf=pdf
        )
    except FocusUsageError as exc:
        raise click.UsageError(str(exc)) from exc
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    for r in results:
        click.echo(f"note focus {r.theme} {r.territory} {r.year}: {r.html}")
        if r.pdf:
            click.echo(f"  PDF: {r.pdf}")
        elif r.pdf_error:
            click.echo(f"  {r.pdf_error}", err=True)


@main.group(help="Exports des marts publiés pour d'autres outils.")
def export() -> None:
    pass


@export.command(
    "excel",
    help="Classeurs Excel (un par territoire et année de programmation) et CSV Excel-FR (;, "
    "virgule décimale, BOM) des marts de l'entrepôt publié, secret statistique appliqué.",
)
@published_warehouse_option
@click.option(
    "--dossier",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("export_excel"),
    show_default=True,
    help="Dossier où écrire csv/ et tableurs/.",
)
@click.option("--territoire", "territories", multiple=True, help="Code du territoire (VM...).")
@click.option("--annee", "years", type=int, multiple=True, help="Année de programmation.")
@click.option("--sans-csv", is_flag=True, help="Les classeurs seulement.")
def export_excel(
    warehouse: Path,
    folder: Path,
    territories: tuple[str, ...],
    years: tuple[int, ...],
    sans_csv: bool,
) -> None:
    from pipelines.publication.tableurs import export_spreadsheets

    with _read_published(warehouse) as con:
        result = export_spreadsheets(con, folder, list(territories), list(years), csv=not sans_csv)
    if territories and not result.workbooks:
        raise click.ClickException(
            f"aucun classeur écrit : territoire(s) {', '.join(territories)}"
            + (f", année(s) {', '.join(map(str, years))}" if years else "")
            + " sans donnée dans l'entrepôt"
        )
    click.echo(f"{len(result.csv_files)} CSV dans {folder / 'csv'}")
    for path in result.workbooks:
        click.echo(f"classeur : {path}")


@export.command(
    "qgis",
    help="Kit QGIS : un GeoPackage de couches thématiques stylées (QPV 2024 et 2015, zonages, "
    "taux d'emploi, effort financier, lieux) et un projet .qgz qui les ouvre, secret statistique "
    "appliqué.",
)
@published_warehouse_option
@click.option(
    "--dossier",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("export_qgis"),
    show_default=True,
    help="Dossier où écrire qgis/observatoire.gpkg et qgis/observatoire.qgz.",
)
def export_qgis_command(warehouse: Path, folder: Path) -> None:
    from pipelines.publication.qgis import QgisExportError, export_qgis

    with _read_published(warehouse) as con:
        try:
            result = export_qgis(con, folder)
        except QgisExportError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"GeoPackage : {result.gpkg}")
    click.echo(f"projet QGIS : {result.project}")
    for layer, count in result.layers.items():
        click.echo(f"  {layer} : {count} entité(s)")
    for note in result.notes:
        click.echo(f"  {note}")


@main.command(
    help="Publie les marts de l'entrepôt publié (secret statistique appliqué, géométries en "
    "Lambert-93, commentaires du mémento) dans un schéma d'un serveur PostgreSQL/PostGIS, "
    "remplacé d'un coup : un échec laisse le schéma précédent intact.",
)
@click.option(
    "--postgres",
    "url",
    envvar="OBSERVATOIRE_POSTGRES_URL",
    required=True,
    metavar="URL",
    help="Connexion libpq (postgresql://utilisateur@serveur:5432/base ou « host=... "
    "dbname=... ») ; mot de passe par PGPASSWORD ou ~/.pgpass. Défaut : "
    "OBSERVATOIRE_POSTGRES_URL.",
)
@click.option(
    "--schema",
    default="observatoire",
    show_default=True,
    envvar="OBSERVATOIRE_POSTGRES_SCHEMA",
    help="Schéma où publier les marts (remplacé à chaque publication).",
)
@click.option(
    "--role-lecture",
    "role",
    default="observatoire_lecture",
    show_default=True,
    envvar="OBSERVATOIRE_POSTGRES_ROLE_LECTURE",
    help="Rôle en lecture seule sur le schéma (créé NOLOGIN s'il n'existe pas ; "
    "GRANT <rôle> TO <analyste> pour donner l'accès).",
)
@published_warehouse_option
def publish(url: str, schema: str, role: str, warehouse: Path) -> None:
    from pipelines.publication.postgis import PostgisError, hide_password, publish_warehouse

    if not _prepare_manifest():  # the marts' YAML descriptions become the tables' comments
        click.echo("mémento illisible (dbt parse) : tables publiées sans commentaires", err=True)
    try:
        result = publish_warehouse(warehouse, url, schema, role)
    except PostgisError as err:
        raise click.ClickException(str(err)) from None
    click.echo(
        f"{len(result.rows)} marts ({sum(result.rows.values())} lignes) publiés dans "
        f"{hide_password(url)}, schéma {schema} ({result.seconds:.1f} s) ; lecture : "
        f"GRANT {role} TO <analyste>"
    )


@main.group(help="Dossiers de territoire (data/raw/territoires/<code>/ : territoire.yml...).")
def territoire() -> None:
    pass


@territoire.command(
    name="verifier",
    help="Vérifie un dossier de territoire, le dossier territoires/ ou un dossier brut, avant "
    "une construction: chaque erreur avec son fichier, sa ligne et sa colonne.",
)
@click.argument("dossier", type=click.Path(path_type=Path, exists=True, file_okay=False))
def territoire_verifier(dossier: Path) -> None:
    from pipelines.sources.territoires.reader import FILES, verify

    territories, errors = verify(dossier)
    for error in errors:
        click.echo(error, err=True)
    if errors:
        raise click.ClickException(f"{len(errors)} erreur(s) dans {dossier}")
    if not territories:
        raise click.ClickException(
            f"{dossier}: aucun dossier de territoire (un dossier <code>/ avec territoire.yml)"
        )
    for t in territories:
        files = [name for name, spec in FILES.items() if spec.table in t.tables]
        rows = sum(len(frame) for frame in t.tables.values())
        click.echo(
            f"{t.code}: {t.attributes.get('nom')} (SIREN {t.attributes.get('siren')}), "
            f"périmètre {t.attributes.get('perimetre')}, {len(files)} fichier(s), {rows} ligne(s)"
            + (f": {', '.join(files)}" if files else "")
        )


if __name__ == "__main__":
    main()
