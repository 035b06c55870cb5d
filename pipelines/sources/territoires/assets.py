"""Ingestion asset ``raw/territoires``: the territory folders of ``data/raw/territoires/``.

Writes ``raw.territoires`` (one row per folder) and one ``raw.territoires_<file>`` table per
référentiel file kind (:data:`~pipelines.sources.territoires.reader.FILES`), every table
present (empty without folders). Any error in a folder stops the build with every error found
(file, line, column): a territory's rules and perimeter are all right or not used at all.
"""

import dagster as dg
import pandas as pd

from pipelines.lib.assets import (
    GROUP,
    Ingested,
    ReadContext,
    check_results,
    check_specs,
    metadata,
    write_source,
)
from pipelines.lib.raw_schemas import file_log
from pipelines.lib.tables import IngestionError
from pipelines.sources.territoires.reader import FILES, SOURCE, territory_rows, verify
from pipelines.warehouse.resources import ProjectFolders, Warehouse

DESCRIPTION = (
    "Territoires des contrats de ville déclarés dans data/raw/territoires/<code>/ "
    "(territoire.yml et référentiels: périmètre QPV, orientations, statuts, règles de "
    "financement, alias de financeurs, quartiers d'intérêt communautaire, échelles du marqueur "
    "égalité)."
)

#: errors printed in the failure message (all of them: ``observatoire territoire verifier``)
SHOWN_ERRORS = 20


def read_territories(ctx: ReadContext) -> Ingested:
    root = ctx.raw / SOURCE
    if not root.is_dir():
        return Ingested(territory_rows([]), None, [], tables=dict.fromkeys(_tables()))
    territories, errors = verify(root)
    if errors:
        shown = "\n".join(errors[:SHOWN_ERRORS])
        more = len(errors) - SHOWN_ERRORS
        tail = f"\n... et {more} autre(s) erreur(s)" if more > 0 else ""
        raise IngestionError(
            f"{len(errors)} erreur(s) dans les dossiers de territoire "
            f"(détail: observatoire territoire verifier {root}):\n{shown}{tail}"
        )
    tables: dict[str, pd.DataFrame | None] = dict.fromkeys(_tables())
    logs = []
    for territory in territories:
        yml = territory.folder / "territoire.yml"
        logs.append(file_log(SOURCE, yml, 1, 1, 0))
        for name, spec in FILES.items():
            frame = territory.tables.get(spec.table)
            if frame is None:
                continue
            tables[spec.table] = pd.concat(
                [f for f in (tables[spec.table], frame) if f is not None], ignore_index=True
            )
            logs.append(file_log(SOURCE, territory.folder / name, len(frame), len(frame), 0))
    ctx.log.info(f"territoires: {len(territories)} dossier(s): {[t.code for t in territories]}")
    return Ingested(territory_rows(territories), None, logs, tables=tables)


def _tables() -> list[str]:
    return [spec.table for spec in FILES.values()]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["raw", table],
            group_name=GROUP,
            kinds={"python", "duckdb"},
            description=DESCRIPTION
            if table == SOURCE
            else f"{table.removeprefix('territoires_')}.csv des dossiers de territoire.",
        )
        for table in (SOURCE, *_tables())
    ],
    check_specs=check_specs(SOURCE),
    name="raw__territoires",
)
def territoires(context: dg.AssetExecutionContext, warehouse: Warehouse, folders: ProjectFolders):
    try:
        got = read_territories(ReadContext(folders.raw, warehouse, None, context.log))
    except IngestionError as err:
        raise dg.Failure(description=str(err)) from None
    with warehouse.connect() as con:
        rows = write_source(con, SOURCE, SOURCE, got)
    yield dg.MaterializeResult(
        asset_key=["raw", SOURCE],
        metadata=metadata(SOURCE, rows, got.logs, got.rejects),
        check_results=check_results(SOURCE, got.logs),
    )
    for table, frame in got.tables.items():
        yield dg.MaterializeResult(
            asset_key=["raw", table],
            metadata={"lignes_table": dg.MetadataValue.int(0 if frame is None else len(frame))},
        )
