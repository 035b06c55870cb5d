"""Asset ``raw/lieux``: geocoded places (``data/raw/lieux/``) assigned to the QPV containing them.

``raw/lieux`` reads every ``.csv`` / ``.txt`` / ``.tsv`` / ``.parquet`` of ``RAW/lieux/``
(équipements, lieux d'action, lieux de résidence des bénéficiaires: an identifier, the
coordinates, optional ``type`` and ``dossier``) with :mod:`.reader`, assigns each record to the
QPV containing it with :mod:`geo.points` (the rule of ``dbt_project/macros/assign_qpv.sql``
against ``raw.qpv_contours``, one pass per geography present) and writes ``raw.lieux``. Only
the identifier, type, dossier, coordinates and the assignment are kept: every other column of
the file (names, addresses...) is dropped at reading. Invalid and swapped coordinates go to
``raw.rejets``, and so do the records of a BAN geocoder's file (adresse.data.gouv.fr
``/search/csv``) whose ``result_score`` is under ``OBSERVATOIRE_SCORE_BAN_MIN`` (0,5 by
default): never assigned, kept with their score (:mod:`.reader`). The counts per QPV are
the dbt mart ``marts.lieux_qpv``: individual places are never published.

Why the assignment is in this asset and the counting in dbt: the files are found, opened and
checked (columns, coordinate system, encoding) in Python, then the macro runs on them (the same
SQL as the national benchmark), while the counts are plain SQL that dbt documents and tests with
the other marts.
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from pipelines.lib.files import list_files
from pipelines.lib.raw_schemas import (
    RAW_SCHEMA,
    file_log,
    replace_source_rows,
    replace_table,
    unread_logs,
)
from pipelines.lib.tables import IngestionError
from pipelines.warehouse.resources import ProjectFolders, Warehouse

SOURCE = "lieux"
FOLDER = "lieux"
SUFFIXES = {".csv", ".txt", ".tsv", ".parquet"}
# the schema of raw.lieux is declared in pipelines/lib/raw_schemas.py

#: Candidate column names (normalised) for the optional attributes of a place.
TYPE_NAMES = ["type", "type_lieu", "categorie", "nature", "type_de_lieu"]
DOSSIER_NAMES = ["dossier", "numero_dossier", "num_dossier", "n_dossier", "action", "code_action"]


def _geographies(con) -> list[str | None]:
    rows = con.execute(
        f"SELECT DISTINCT geographie FROM {RAW_SCHEMA}.qpv_contours "
        "WHERE geom IS NOT NULL ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def assign_folder(con, folder: Path, log=None) -> dict:
    """Read, assign and write ``raw.lieux`` / rejects / log for every file of ``folder``.

    Each file is read once (:func:`.reader.load_points`) into a temporary table; the rule
    (:func:`geo.points.assignment_sql`) runs on it once per geography, straight into
    ``raw.lieux``. Records of a BAN geocoder's file under the score threshold are not assigned:
    they go to ``raw.rejets`` with their score.

    Returns a summary: per file and per geography, rows read and rows per status. Raises
    ``geo.points.PointsError`` (file unreadable, columns not found, CRS unknown) and
    ``RuntimeError`` when the statuses do not add up to the rows read.
    """
    from geo.points import choose_geographie

    replace_table(con, "lieux", None)
    files = list_files(folder, SUFFIXES)
    unread = unread_logs(SOURCE, folder, SUFFIXES)
    polygons = f"{RAW_SCHEMA}.qpv_contours"
    geographies = _geographies(con) if files else []
    if files and not geographies:
        if log:
            log.warning(
                "Aucun contour de QPV chargé (raw.qpv_contours vide) : les lieux sont vérifiés "
                "mais affectés à aucun QPV"
            )
        geographies = [choose_geographie(con, polygons, None)]
    summary: dict = {"fichiers": [], "par_geographie": {}}
    rejects: list[pd.DataFrame] = []
    logs: list[dict] = list(unread)
    index: dict[str | None, int] = {}
    for path in files:
        file_entry, rejected = _assign_file(con, path, polygons, geographies, summary, index)
        rejects.append(rejected)
        logs.append(
            file_log(
                SOURCE,
                path,
                file_entry["lignes"],
                file_entry["lignes"] - len(rejected),
                len(rejected),
            )
        )
        summary["fichiers"].append(file_entry)
        if log:
            log.info(f"{path.name}: {file_entry}")
    frame = pd.concat(rejects, ignore_index=True) if rejects else None
    replace_source_rows(con, "rejets", SOURCE, frame)
    replace_source_rows(con, "ingestion_log", SOURCE, pd.DataFrame(logs) if logs else None)
    summary["lignes_table"] = con.execute(f"SELECT count(*) FROM {RAW_SCHEMA}.lieux").fetchone()[0]
    summary["rejets"] = 0 if frame is None else len(frame)
    summary["index"] = [{"geographie": g, "qpv": n} for g, n in index.items()]
    return summary


def _text(name: str | None, alias: str = "") -> str:
    """A column of the loaded file as text (NULL when the file has none)."""
    if name is None:
        return "NULL"
    return f'CAST({alias}"{name.replace(chr(34), chr(34) * 2)}" AS VARCHAR)'


def _assign_file(
    con, path: Path, polygons: str, geographies: list, summary: dict, index: dict
) -> tuple[dict, pd.DataFrame]:
    """One file: loaded once, assigned per geography into ``raw.lieux``; returns its summary
    entry and its rejected rows (score under the threshold, invalid or swapped coordinates)."""
    from geo.points import (
        STATUTS,
        assignment_sql,
        choose_geographie,
        count_statuses,
        load_spatial,
        qpv_codes,
        quote_relation,
        sql_string,
    )
    from pipelines.sources.lieux.reader import (
        ENV_SCORE_MIN,
        KEPT,
        LINE,
        SCORE_NUMBER,
        french_number,
        load_points,
        read_points,
    )

    load_spatial(con)
    source = read_points(
        con, path, extra={"type": TYPE_NAMES, "dossier": DOSSIER_NAMES}, checked=False
    )
    loaded = load_points(con, source)
    table = f'temp."{loaded.table}"'
    n_file = loaded.rows
    assigned = n_file - loaded.low_score
    identifiant = _text(source.identifiant)
    if source.identifiant is None:
        identifiant = f"CAST({LINE} AS VARCHAR)"
    file_entry = {"fichier": str(path), "lignes": int(n_file), "crs": loaded.points.crs}
    if source.score is not None:
        file_entry["score_insuffisant"] = loaded.low_score
    this_file = f"source_fichier = {sql_string(str(path))}"
    first_geographie = None
    try:
        for position, wanted in enumerate(geographies):
            geographie = choose_geographie(con, polygons, wanted)
            codes = qpv_codes(con, polygons, geographie)
            rule = assignment_sql(
                loaded.points, quote_relation(polygons), geographie, keep=loaded.columns
            )
            con.execute(
                f"""INSERT INTO {RAW_SCHEMA}.lieux BY NAME
                SELECT ? AS source_fichier, {LINE} AS source_ligne,
                    {identifiant} AS identifiant,
                    nullif(trim({_text(source.extra.get("type"))}), '') AS type_lieu,
                    nullif(trim({_text(source.extra.get("dossier"))}), '') AS dossier,
                    lon_wgs84 AS lon, lat_wgs84 AS lat, ? AS crs_source, geographie_qpv,
                    statut, motif, code_qpv, CAST(nb_qpv AS INTEGER) AS nb_qpv,
                    code_qpv_apres_inversion
                FROM ({rule})
                ORDER BY {LINE}""",
                [str(path), loaded.points.crs],
            )
            index[geographie] = len(codes)
            same = (
                "geographie_qpv IS NULL"
                if geographie is None
                else (f"geographie_qpv = {sql_string(geographie)}")
            )
            counts = count_statuses(
                con, f"(SELECT * FROM {RAW_SCHEMA}.lieux WHERE {this_file} AND {same})"
            )
            total = sum(counts[s] for s in STATUTS)
            if total != assigned or counts["lus"] != assigned:
                raise RuntimeError(
                    f"{path}: {assigned} lignes à affecter mais {total} affectées, hors QPV ou "
                    f"invalides (géographie {geographie})"
                )
            key = geographie or "aucune"
            file_entry[key] = counts
            agg = summary["par_geographie"].setdefault(key, dict.fromkeys(counts, 0))
            for name, value in counts.items():
                agg[name] += value
            if position == 0:
                first_geographie = same
        coordinates = f"""SELECT ? AS fichier, NULL AS feuille, s.{LINE} AS ligne,
                ? AS colonne,
                coalesce({_text(source.x, "s.")}, '') || ' ; '
                    || coalesce({_text(source.y, "s.")}, '')
                    AS valeur_brute,
                l.motif
            FROM {RAW_SCHEMA}.lieux AS l
            INNER JOIN {table} AS s ON l.source_ligne = s.{LINE}
            WHERE l.{this_file} AND l.{first_geographie}
                AND l.statut IN ('coordonnees_invalides', 'lon_lat_inverses')"""
        parameters = [str(path), f"{source.x} ; {source.y}"]
        if source.score is not None:
            threshold = french_number(loaded.threshold)
            status = _text(source.status)
            coordinates += f"""
            UNION ALL
            SELECT ?, NULL, {LINE}, ?, coalesce({_text(source.score)}, ''),
                CASE WHEN {SCORE_NUMBER} IS NULL THEN
                    'adresse non trouvée par le géocodeur (score vide'
                    || coalesce(', result_status = ' || nullif(trim({status}), ''), '')
                    || ') : lieu non affecté'
                ELSE 'score de géocodage inférieur au seuil {threshold} ({ENV_SCORE_MIN}) : '
                    || 'lieu non affecté' END
            FROM {table} WHERE NOT {KEPT}"""
            parameters += [str(path), source.score]
        rejected = con.execute(f"SELECT * FROM ({coordinates}) ORDER BY ligne", parameters).df()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return file_entry, rejected


@dg.asset(
    key=["raw", "lieux"],
    group_name="ingestion",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["raw", "qpv_contours"])],
    description=(
        "Lieux géocodés (data/raw/lieux/*.csv|parquet : équipements, lieux d'action, résidences "
        "des bénéficiaires) affectés au QPV qui les contient, par géographie (2015/2024), avec "
        "un statut par ligne (dans_qpv, hors_qpv, coordonnees_invalides, lon_lat_inverses) ; "
        "lignes d'un fichier du géocodeur de la BAN de score inférieur à "
        "OBSERVATOIRE_SCORE_BAN_MIN (0,5) non affectées, dans raw.rejets."
    ),
)
def lieux(
    context: dg.AssetExecutionContext, warehouse: Warehouse, folders: ProjectFolders
) -> dg.MaterializeResult:
    from geo.points import PointsError

    with warehouse.connect() as con:
        try:
            summary = assign_folder(con, folders.raw / FOLDER, context.log)
        except (PointsError, IngestionError, RuntimeError) as err:
            raise dg.Failure(description=str(err)) from None
    lus = sum(f["lignes"] for f in summary["fichiers"])
    metadata = {
        "table": dg.MetadataValue.text(f"{RAW_SCHEMA}.lieux"),
        "fichiers": dg.MetadataValue.int(len(summary["fichiers"])),
        "lignes_lues": dg.MetadataValue.int(lus),
        "lignes_table": dg.MetadataValue.int(int(summary["lignes_table"])),
        "rejets": dg.MetadataValue.int(int(summary["rejets"])),
        "score_ban_insuffisant": dg.MetadataValue.int(
            sum(int(f.get("score_insuffisant", 0)) for f in summary["fichiers"])
        ),
        "par_geographie": dg.MetadataValue.json(summary["par_geographie"]),
        "fichiers_lus": dg.MetadataValue.json(summary["fichiers"]),
        "index": dg.MetadataValue.json(summary["index"]),
    }
    for geographie, counts in summary["par_geographie"].items():
        for name in ("dans_qpv", "hors_qpv", "coordonnees_invalides", "lon_lat_inverses"):
            metadata[f"{name}_{geographie}"] = dg.MetadataValue.int(int(counts[name]))
        metadata[f"ambigus_{geographie}"] = dg.MetadataValue.int(int(counts["ambigus"]))
    return dg.MaterializeResult(metadata=metadata)
