"""Ingestion asset ``raw/communes_contours``: the commune contours of ``data/raw/communes/`` and
those placed beside the QPV contours in ``data/raw/sig_ville/`` (recognised by their attributes:
:func:`~pipelines.sources.communes.reader.file_kind`).

In ``communes/`` a file that holds no commune contours (QPV contours, an unknown layer) is not
read and listed in ``raw.ingestion_log`` with the reason; an unreadable file fails the asset,
naming it. In ``sig_ville/`` only the commune files are read here: the QPV files, the other
files and the unreadable ones are the business of ``raw/qpv_contours``. A commune code in two
files is refused, naming both (keep one file per commune).

The reader (geopandas, pyogrio, pyproj) is imported when the asset runs.
"""

from __future__ import annotations

import pandas as pd

from pipelines.lib.assets import Ingested, ReadContext, concat, ingestion_asset
from pipelines.lib.files import list_files
from pipelines.lib.raw_schemas import file_log, unread_logs
from pipelines.lib.tables import IngestionError

SOURCE = "communes"
FOLDER = "communes"
SIG_VILLE = "sig_ville"


def read_communes_contours(ctx: ReadContext) -> Ingested:
    from pipelines.sources.communes.reader import COMMUNES, file_kind, read_communes
    from pipelines.sources.sig_ville.assets import check_one_file_per_code
    from pipelines.sources.sig_ville.reader import (
        CONTOURS_SUFFIXES,
        SHAPEFILE_PARTS,
        ContoursError,
    )

    frames, rejects, logs = [], [], []
    for folder in (FOLDER, SIG_VILLE):
        for path in list_files(ctx.raw / folder, CONTOURS_SUFFIXES):
            try:
                kind, reason = file_kind(path)
            except ContoursError as err:
                if folder == SIG_VILLE:
                    continue  # raw/qpv_contours fails on it, naming it
                raise IngestionError(f"{path}: {err}") from None
            if kind != COMMUNES:
                if folder == FOLDER:
                    logs.append(file_log(SOURCE, path, 0, 0, 0, statut="non_lu", message=reason))
                continue
            try:
                result = read_communes(path)
            except ContoursError as err:
                raise IngestionError(f"{path}: {err}") from None
            gdf = result.communes
            frame = pd.DataFrame(gdf.drop(columns="geometry"))
            frame["geom_wkb"] = gdf.geometry.to_wkb()
            frames.append(frame)
            rejects.append(result.rejects)
            ctx.log.info(f"{path.name}: {result.report}")
            merged = sum(int(r["fusionnes"]) for r in result.report)
            message = f"{len(frame)} commune(s)" + (
                f" ; {merged} entité(s) de même code réunie(s)" if merged else ""
            )
            # merged features are loaded (into their commune's contour): read = loaded + rejected
            logs.append(
                file_log(
                    SOURCE,
                    path,
                    result.read,
                    result.read - len(result.rejects),
                    len(result.rejects),
                    message=message,
                )
            )
    frame = concat(frames)
    if frame is not None:
        check_one_file_per_code(frame, "source_fichier", "contours de communes", "code_commune")
    logs.extend(unread_logs(SOURCE, ctx.raw / FOLDER, CONTOURS_SUFFIXES | SHAPEFILE_PARTS))
    return Ingested(frame, concat(rejects), logs)


communes_contours = ingestion_asset(
    table="communes_contours",
    source=SOURCE,
    read=read_communes_contours,
    kinds=("python", "duckdb", "geopandas"),
    description="Contours des communes (data/raw/communes/ ou data/raw/sig_ville/ : GeoJSON, "
    "GPKG, SHP, ZIP), tracés sous les QPV dans les cartes du rapport.",
)
