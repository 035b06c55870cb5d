"""Ingestion asset ``raw/programmations`` (and the read function shared with ``raw/bilans``).

Partitioned by year (:mod:`.partitions`). The QPV references (contours, official list, INSEE
bases) are loaded first: a QPV code no reference knows is kept and reported in
``raw.anomalies`` (type ``qpv_inconnu``). Columns holding personal data never enter the
warehouse (:mod:`pipelines.lib.privacy`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from pipelines.duckdb_utils import tables_in
from pipelines.lib.assets import Ingested, ReadContext, ingestion_asset
from pipelines.lib.privacy import drop_personal_columns
from pipelines.lib.raw_schemas import file_log
from pipelines.sources.programmations.partitions import ANNEE, partition_of, suivi_files
from pipelines.sources.programmations.reader import SuiviResult
from pipelines.sources.programmations.rules import parse_programmations
from pipelines.sources.territoires.attach import attach_territories, territory_index

#: Raw tables holding QPV codes: loaded before the yearly sources, read by known_qpv_codes.
QPV_REFERENCES = {
    "qpv_contours": "select distinct code_qpv from raw.qpv_contours",
    "liste_qpv": "select distinct code_qpv from raw.liste_qpv",
    "insee_valeurs": (
        "select distinct code_territoire from raw.insee_valeurs where type_territoire = 'qpv'"
    ),
    "territoires_perimetre_qpv": "select distinct code_qpv from raw.territoires_perimetre_qpv",
}

Parser = Callable[..., SuiviResult]


def known_qpv_codes(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every QPV code a reference knows: the territories' perimeters, the contours, the
    official list and the INSEE bases, read from the raw tables when they are loaded (in a full
    build their assets run first). This is the set of codes of ``dim_qpv``.
    """
    codes: set[str] = set()
    loaded = tables_in(con, "raw")
    for table, sql in QPV_REFERENCES.items():
        if table in loaded:  # a reference not loaded in this warehouse is skipped
            codes |= {str(r[0]).strip().upper() for r in con.execute(sql).fetchall() if r[0]}
    return codes


def perimeters(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """Territory -> its QPV codes (both geographies), from the territory folders' perimeters
    (raw.territoires_perimetre_qpv, loaded first); {} without territory folders."""
    out: dict[str, set[str]] = {}
    if "territoires_perimetre_qpv" not in tables_in(con, "raw"):
        return out
    for territoire, code in con.execute(
        "select territoire, upper(trim(code_qpv)) from raw.territoires_perimetre_qpv "
        "where code_qpv is not null"
    ).fetchall():
        out.setdefault(territoire, set()).add(code)
    return out


def read_suivi(source: str, parse: Parser) -> Callable[[ReadContext], Ingested]:
    """The read function of a yearly source (programmations or bilans) parsed by ``parse``."""

    def read(ctx: ReadContext) -> Ingested:
        paths = suivi_files(ctx.raw, source)
        if ctx.partition is not None:
            paths = [p for p in paths if partition_of(p) == ctx.partition]
        extra = ctx.raw / "referentiels" / "entetes_alias.csv"
        with ctx.warehouse.connect() as con:
            known = known_qpv_codes(con)
            options = {"perimetre": perimeters(con)} if source == "programmations" else {}
            territories = territory_index(con)
        # a SuiviError (a file unreadable at all) fails the asset, naming the file
        result = parse(
            paths, extra_aliases=extra if extra.is_file() else None, known_qpv=known, **options
        )
        # the parsers name files by their base name: give the full path everywhere
        full = {p.name: str(p) for p in paths}

        def with_paths(frame: pd.DataFrame | None, column: str) -> pd.DataFrame | None:
            if frame is None or frame.empty or column not in frame:
                return frame
            names = frame[column].to_numpy(dtype=object)
            codes, distinct = pd.factorize(names)  # one lookup per file, not per line
            paths = np.array([full.get(n, n) for n in distinct] + [None], dtype=object)[codes]
            paths[codes < 0] = names[codes < 0]  # a missing name stays as it is
            return frame.assign(**{column: paths})

        logs = [
            file_log(
                source,
                Path(full.get(f["fichier"], f["fichier"])),
                int(f["lignes_lues"]),
                int(f["lignes_chargees"]),
                int(f["lignes_rejetees"]),
            )
            for f in result.files
        ]
        frame = with_paths(result.rows, "source_fichier")
        if frame is not None and "autres_colonnes" in frame:
            frame = frame.assign(
                autres_colonnes=frame["autres_colonnes"].map(
                    lambda v: v if v is None or isinstance(v, str) else json.dumps(v)
                )
            )
        # each line's territory: a folder's code, or an EPCI's SIREN (IngestionError otherwise)
        frame = attach_territories(frame, territories)
        rejects = with_paths(result.rejects, "fichier")
        anomalies = with_paths(result.anomalies, "fichier")
        frame, personal = drop_personal_columns(frame, source)
        for message in personal["message"]:
            ctx.log.warning(message)
        if not personal.empty:
            anomalies = pd.concat(
                [a for a in (anomalies, personal.drop(columns="source")) if a is not None],
                ignore_index=True,
            )
        unknown = 0 if anomalies is None else int((anomalies["type"] == "qpv_inconnu").sum())
        key = ctx.partition
        rows = 0 if frame is None else len(frame)
        ctx.log.info(
            f"{'année ' + key if key else 'toutes les années'}: {len(paths)} fichier(s), "
            f"{rows} lignes, {len(result.rejects)} rejets, {unknown} code(s) QPV inconnu(s)"
        )
        if unknown:
            ctx.log.warning(
                f"{unknown} ligne(s) avec un code QPV inconnu (raw.anomalies, type qpv_inconnu)"
            )
        return Ingested(
            frame,
            rejects,
            logs,
            anomalies,
            files=paths,
            metadata={
                "codes_qpv_inconnus": dg.MetadataValue.int(unknown),
                "partition": dg.MetadataValue.text(key or "toutes"),
            },
        )

    return read


def suivi_asset(source: str, parse: Parser, description: str) -> dg.AssetsDefinition:
    """A yearly source's asset ``raw/<source>``, partitioned by ``annee``."""
    return ingestion_asset(
        table=source,
        source=source,
        read=read_suivi(source, parse),
        description=description,
        partitions_def=ANNEE,
        partition_of=partition_of,
        # the QPV references are loaded first: unknown QPV codes are reported against them
        # (raw.territoires_perimetre_qpv is written by the asset raw/territoires)
        deps=tuple(t for t in QPV_REFERENCES if not t.startswith("territoires_"))
        + ("territoires",),
    )


programmations = suivi_asset(
    "programmations",
    parse_programmations,
    "Programmations annuelles (data/raw/programmations/*.csv|xlsx), action x financeur.",
)
