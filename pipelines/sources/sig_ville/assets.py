"""Ingestion assets ``raw/qpv_contours`` (official contours) and ``raw/liste_qpv`` (official
list of QPV with their communes and EPCI), from ``data/raw/sig_ville/``.

The reader (geopandas, pyogrio, pyproj) is imported when an asset runs, not when the code
location loads.
"""

from __future__ import annotations

import pandas as pd

from pipelines.lib.assets import Ingested, ReadContext, concat, ingestion_asset
from pipelines.lib.files import list_files
from pipelines.lib.raw_schemas import REJECT_COLUMNS, file_log, unread_logs
from pipelines.lib.tables import IngestionError

SOURCE = "sig_ville"
FOLDER = "sig_ville"
LISTE_SOURCE = "liste_qpv"


def read_qpv_contours(ctx: ReadContext) -> Ingested:
    from pipelines.sources.communes.reader import COMMUNES, QPV, file_kind
    from pipelines.sources.sig_ville.reader import (
        CONTOURS_SUFFIXES,
        SHAPEFILE_PARTS,
        read_contours,
    )

    frames, rejects, logs = [], [], []
    for path in list_files(ctx.raw / FOLDER, CONTOURS_SUFFIXES):
        kind, reason = file_kind(path)
        if kind == COMMUNES:
            continue  # read by raw/communes_contours (and logged under the source communes)
        if kind != QPV:
            logs.append(file_log(SOURCE, path, 0, 0, 0, statut="non_lu", message=reason))
            continue
        result = read_contours(path)
        gdf = result.qpv
        frame = pd.DataFrame(gdf.drop(columns="geometry"))
        frame["geom_wkb"] = gdf.geometry.to_wkb()
        frames.append(frame)
        rejects.append(result.rejects)
        lus = sum(int(r.get("lus", 0)) for r in result.report)
        ctx.log.info(f"{path.name}: {result.report}")
        logs.append(file_log(SOURCE, path, lus, len(frame), len(result.rejects)))
    frame = concat(frames)
    check_one_file_per_code(frame, "source_fichier", "contours")
    logs.extend(
        unread_logs(SOURCE, ctx.raw / FOLDER, CONTOURS_SUFFIXES | SHAPEFILE_PARTS | {".csv"})
    )
    return Ingested(frame, concat(rejects), logs)


def check_one_file_per_code(
    frame: pd.DataFrame | None, column: str, what: str, key: str = "code_qpv"
) -> None:
    """A QPV code in two files (an old contour file beside the new one, two lists) would be
    published from one of them silently: refused, naming both files (keep one). ``key`` is the
    code column (``code_commune`` for the commune contours)."""
    if frame is None or frame.empty:
        return
    files = frame[[column, key]].drop_duplicates()
    dup = files[files.duplicated(key, keep=False)]
    if dup.empty:
        return
    code = dup[key].iloc[0]
    both = sorted(dup.loc[dup[key] == code, column].astype(str))
    count = dup[key].nunique()
    kind = "QPV" if key == "code_qpv" else "commune"
    raise IngestionError(
        f"{both[0]} et {both[1]} : {count} code(s) {kind} dans les deux fichiers de {what} (dont "
        f"{code}) : garder un seul fichier par géographie (déplacer l'ancien hors du dossier "
        "brut)"
    )


def read_listes_qpv(ctx: ReadContext) -> Ingested:
    from pipelines.sources.sig_ville.reader import ContoursError, read_liste_qpv

    frames, rejects, logs = [], [], []
    for path in list_files(ctx.raw / FOLDER, {".csv"}):
        try:
            frame = read_liste_qpv(path)
        except (ContoursError, IngestionError, ValueError) as err:
            raise IngestionError(f"{path}: {err}") from None
        rejected = pd.DataFrame(frame.attrs.get("rejets", []), columns=REJECT_COLUMNS)
        kept = frame.assign(_fichier=str(path))
        kept.attrs = {}  # pandas cannot concatenate frames whose attrs hold frames
        frames.append(kept)
        rejects.append(rejected)
        logs.append(
            file_log(LISTE_SOURCE, path, len(frame) + len(rejected), len(frame), len(rejected))
        )
    combined = concat(frames)
    check_one_file_per_code(combined, "_fichier", "liste des QPV")
    if combined is not None:
        combined = combined.drop(columns="_fichier")
    return Ingested(combined, concat(rejects), logs)


qpv_contours = ingestion_asset(
    table="qpv_contours",
    source=SOURCE,
    read=read_qpv_contours,
    kinds=("python", "duckdb", "geopandas"),
    description="Contours officiels des QPV (data/raw/sig_ville/: GeoJSON, GPKG, SHP, ZIP ANCT).",
)
liste_qpv = ingestion_asset(
    table="liste_qpv",
    source=LISTE_SOURCE,
    read=read_listes_qpv,
    description="Liste officielle des QPV avec communes et EPCI (data/raw/sig_ville/liste*.csv).",
)
