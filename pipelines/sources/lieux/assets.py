"""Asset ``raw/lieux``: geocoded places (``data/raw/lieux/``) assigned to the QPV containing them.

``raw/lieux`` reads every ``.csv`` / ``.txt`` / ``.tsv`` / ``.parquet`` of ``RAW/lieux/``
(équipements, lieux d'action, lieux de résidence des bénéficiaires: an identifier, the
coordinates, optional ``type`` and ``dossier``) with :mod:`.reader`, assigns each record to the
QPV containing it with :mod:`geo.points` (the rule of ``dbt_project/macros/assign_qpv.sql``
against ``raw.qpv_contours``, one pass per geography present) and writes ``raw.lieux``. Only
the identifier, type, dossier, coordinates and the assignment are kept: every other column of
the file (names, addresses...) is dropped at reading. Invalid and swapped coordinates go to
``raw.rejets``. The counts per QPV are the dbt mart
``marts.lieux_qpv``: individual places are never published.

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

    Returns a summary: per file and per geography, rows read and rows per status. Raises
    ``geo.points.PointsError`` (file unreadable, columns not found, CRS unknown) and
    ``RuntimeError`` when the statuses do not add up to the rows read.
    """
    from geo.points import STATUTS, assign_points, choose_geographie
    from pipelines.sources.lieux.reader import PointsSource, read_points

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
        source = read_points(con, path, extra={"type": TYPE_NAMES, "dossier": DOSSIER_NAMES})
        first_line = 2 if path.suffix.lower() != ".parquet" else 1
        numbered = PointsSource(
            path=source.path,
            sql=f"(SELECT row_number() OVER () + {first_line - 1} AS _ligne, * FROM {source.sql})",
            columns=["_ligne", *source.columns],
            x=source.x,
            y=source.y,
            numeric=source.numeric,
            crs=source.crs,
            identifiant=source.identifiant,
            extra=source.extra,
            types=source.types,
        )
        n_file = con.execute(f"SELECT count(*) FROM {source.sql}").fetchone()[0]
        keep = ["_ligne", source.x, source.y]
        for col in (source.identifiant, source.extra.get("type"), source.extra.get("dossier")):
            if col is not None and col not in keep:
                keep.append(col)
        file_entry = {"fichier": str(path), "lignes": int(n_file), "crs": source.crs}
        for position, geographie in enumerate(geographies):
            result = assign_points(
                con,
                numbered,
                polygons=polygons,
                geographie=geographie,
                keep=keep,
                output_table="temp._lieux_affectes",
            )
            index[result.geographie] = result.qpv
            counts = result.counts
            total = sum(counts[s] for s in STATUTS)
            if total != n_file or counts["lus"] != n_file:
                raise RuntimeError(
                    f"{path}: {n_file} lignes lues mais {total} affectées, hors QPV ou "
                    f"invalides (géographie {result.geographie})"
                )
            key = result.geographie or "aucune"
            file_entry[key] = counts
            agg = summary["par_geographie"].setdefault(key, dict.fromkeys(counts, 0))
            for name, value in counts.items():
                agg[name] += value

            def col(name: str | None) -> str:
                if name is None:
                    return "NULL"
                return f'CAST("{name.replace(chr(34), chr(34) * 2)}" AS VARCHAR)'

            identifiant = col(source.identifiant)
            if source.identifiant is None:
                identifiant = "CAST(_ligne AS VARCHAR)"
            con.execute(
                f"""INSERT INTO {RAW_SCHEMA}.lieux BY NAME
                SELECT ? AS source_fichier, _ligne AS source_ligne,
                    {identifiant} AS identifiant,
                    nullif(trim({col(source.extra.get("type"))}), '') AS type_lieu,
                    nullif(trim({col(source.extra.get("dossier"))}), '') AS dossier,
                    lon_wgs84 AS lon, lat_wgs84 AS lat, ? AS crs_source, geographie_qpv,
                    statut, motif, code_qpv, nb_qpv, code_qpv_apres_inversion
                FROM temp._lieux_affectes
                ORDER BY _ligne""",
                [str(path), source.crs],
            )
            if position == 0:
                rejected = con.execute(
                    f"""SELECT ? AS fichier, NULL AS feuille, _ligne AS ligne,
                        ? AS colonne,
                        coalesce({col(source.x)}, '') || ' ; ' || coalesce({col(source.y)}, '')
                            AS valeur_brute,
                        motif
                    FROM temp._lieux_affectes
                    WHERE statut IN ('coordonnees_invalides', 'lon_lat_inverses')
                    ORDER BY _ligne""",
                    [str(path), f"{source.x} ; {source.y}"],
                ).df()
                rejects.append(rejected)
                logs.append(
                    file_log(
                        SOURCE,
                        path,
                        int(n_file),
                        int(n_file) - len(rejected),
                        len(rejected),
                    )
                )
            con.execute("DROP TABLE IF EXISTS temp._lieux_affectes")
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


@dg.asset(
    key=["raw", "lieux"],
    group_name="ingestion",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["raw", "qpv_contours"])],
    description=(
        "Lieux géocodés (data/raw/lieux/*.csv|parquet : équipements, lieux d'action, résidences "
        "des bénéficiaires) affectés au QPV qui les contient, par géographie (2015/2024), avec "
        "un statut par ligne (dans_qpv, hors_qpv, coordonnees_invalides, lon_lat_inverses)."
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
        "par_geographie": dg.MetadataValue.json(summary["par_geographie"]),
        "fichiers_lus": dg.MetadataValue.json(summary["fichiers"]),
        "index": dg.MetadataValue.json(summary["index"]),
    }
    for geographie, counts in summary["par_geographie"].items():
        for name in ("dans_qpv", "hors_qpv", "coordonnees_invalides", "lon_lat_inverses"):
            metadata[f"{name}_{geographie}"] = dg.MetadataValue.int(int(counts[name]))
        metadata[f"ambigus_{geographie}"] = dg.MetadataValue.int(int(counts["ambigus"]))
    return dg.MaterializeResult(metadata=metadata)
