"""The ingestion asset factory: raw files of ``data/raw/<source>/`` -> tables of the ``raw`` schema.

Every ingestion asset is made by :func:`ingestion_asset` from a source's read function. The
asset reads every file of its folder (a missing folder gives an empty table), writes its table,
its rejected rows (``raw.rejets``), one ``raw.ingestion_log`` record per file (SHA-256, size,
rows read / loaded / rejected) and its anomalies (``raw.anomalies``), and reports as metadata the
files read with their hashes and the rows read / loaded / rejected. A file that cannot be read
at all fails the asset with a one-line reason naming the file (:class:`IngestionError`).

Each asset has two checks: ``lignes_comptees`` (blocking: for every file, rows read = rows
loaded + rows rejected, nothing is published otherwise) and ``taux_de_rejet`` (a warning when
more than 5 % of a file's rows are rejected).

Partitioned sources (the yearly programmations and bilans, partitions ``annee``): materialized
for one partition, the asset reads only that partition's files and replaces only the rows that
came from them (in its table and in rejets / ingestion_log / anomalies), the other partitions
are not touched; materialized without a partition it reads every file and replaces everything.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd

from pipelines.duckdb_utils import tables_in
from pipelines.lib.raw_schemas import replace_file_rows, replace_source_rows, replace_table
from pipelines.lib.spill import SpilledTable
from pipelines.lib.tables import IngestionError
from pipelines.warehouse.resources import ProjectFolders, Warehouse

GROUP = "ingestion"
SEUIL_REJETS = 0.05


@dataclass
class ReadContext:
    """What a source's read function gets: the raw dir, the warehouse (to read references
    loaded by other assets), the partition being built (None: every file) and the run's log."""

    raw: Path
    warehouse: Warehouse
    partition: str | None
    log: Any


@dataclass
class Ingested:
    """What a source's read function returns.

    ``logs`` has one ``raw.ingestion_log`` record per file (:func:`~pipelines.lib.raw_schemas.
    file_log`); ``files`` are the files of the partition read (partitioned sources only);
    ``metadata`` is added to the asset's metadata.
    """

    rows: pd.DataFrame | None
    rejects: pd.DataFrame | None
    logs: list[dict]
    anomalies: pd.DataFrame | None = None
    files: list[Path] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: other raw tables the source replaces whole ({table: rows}), e.g. a territory's files
    tables: dict[str, pd.DataFrame | None] = field(default_factory=dict)


def concat(frames: Iterable[pd.DataFrame | SpilledTable | None]) -> Any:
    """The frames one under the other (None when there is none); rows spilled to disk
    (:class:`~pipelines.lib.spill.SpilledTable`) stay on disk."""
    kept = [f for f in frames if f is not None]
    if kept and all(isinstance(f, SpilledTable) for f in kept):
        return SpilledTable.union(kept)
    kept = [f.to_pandas() if isinstance(f, SpilledTable) else f for f in kept]
    return pd.concat(kept, ignore_index=True) if kept else None


def check_specs(table: str) -> list[dg.AssetCheckSpec]:
    """Python validations of an ingestion asset, surfaced as asset checks."""
    key = dg.AssetKey(["raw", table])
    return [
        dg.AssetCheckSpec(
            "lignes_comptees",
            asset=key,
            blocking=True,
            description="Pour chaque fichier: lignes lues = lignes chargées + lignes rejetées "
            "(bloquant: rien n'est publié sinon).",
        ),
        dg.AssetCheckSpec(
            "taux_de_rejet",
            asset=key,
            description=f"Avertit quand plus de {SEUIL_REJETS:.0%} des lignes d'un fichier sont "
            "rejetées (détail dans raw.rejets).",
        ),
    ]


def check_results(table: str, logs: list[dict]) -> list[dg.AssetCheckResult]:
    """The two checks of :func:`check_specs` evaluated on the files' ingestion_log records."""
    key = dg.AssetKey(["raw", table])
    gaps = [
        x["fichier"]
        for x in logs
        if int(x["lignes_lues"]) != int(x["lignes_chargees"]) + int(x["lignes_rejetees"])
    ]
    high = [
        f"{x['fichier']}: {x['lignes_rejetees']}/{x['lignes_lues']}"
        for x in logs
        if int(x["lignes_lues"])
        and int(x["lignes_rejetees"]) > SEUIL_REJETS * int(x["lignes_lues"])
    ]
    return [
        dg.AssetCheckResult(
            asset_key=key,
            check_name="lignes_comptees",
            passed=not gaps,
            metadata={"fichiers_en_ecart": dg.MetadataValue.json(gaps)},
        ),
        dg.AssetCheckResult(
            asset_key=key,
            check_name="taux_de_rejet",
            passed=not high,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"fichiers": dg.MetadataValue.json(high)},
        ),
    ]


def summary(logs: list[dict], rejects: pd.DataFrame | None) -> dict[str, int]:
    """Files read and rows read / loaded / rejected (from the logs), and rejects recorded."""
    return {
        "fichiers": len(logs),
        "lignes_lues": sum(int(x["lignes_lues"]) for x in logs),
        "lignes_chargees": sum(int(x["lignes_chargees"]) for x in logs),
        "lignes_rejetees": sum(int(x["lignes_rejetees"]) for x in logs),
        "rejets_total": 0 if rejects is None else len(rejects),
    }


_FILE_KEYS = (
    "fichier",
    "empreinte_sha256",
    "statut",
    "lignes_lues",
    "lignes_chargees",
    "lignes_rejetees",
)


def metadata(table: str, rows: int, logs: list[dict], rejects: pd.DataFrame | None) -> dict:
    """The metadata of every ingestion asset: counts, table, and the files read with hashes."""
    return {
        **{k: dg.MetadataValue.int(v) for k, v in summary(logs, rejects).items()},
        "table": dg.MetadataValue.text(f"raw.{table}"),
        "lignes_table": dg.MetadataValue.int(rows),
        "fichiers_lus": dg.MetadataValue.json([{k: x.get(k) for k in _FILE_KEYS} for x in logs]),
    }


def write_source(con: duckdb.DuckDBPyConnection, source: str, table: str, got: Ingested) -> int:
    """Replace ``raw.<table>`` and the source's rows of the shared tables."""
    rows = replace_table(con, table, got.rows)
    for other, frame in got.tables.items():
        replace_table(con, other, frame)
    replace_source_rows(con, "rejets", source, got.rejects)
    replace_source_rows(con, "ingestion_log", source, pd.DataFrame(got.logs) if got.logs else None)
    replace_source_rows(con, "anomalies", source, got.anomalies)
    return rows


def partition_files(
    con: duckdb.DuckDBPyConnection,
    source: str,
    table: str,
    key: str,
    current: list[str],
    partition_of: Callable[[str], str],
) -> list[str]:
    """Files of partition ``key``: those present now and those loaded before (maybe removed)."""
    files = set(current)
    loaded = tables_in(con, "raw")
    for tbl, column, by_source in (
        (table, "source_fichier", False),
        ("rejets", "fichier", True),
        ("ingestion_log", "fichier", True),
        ("anomalies", "fichier", True),
    ):
        if tbl not in loaded:
            continue
        sql = f'select distinct "{column}" from raw.{tbl}' + (
            " where source = ?" if by_source else ""
        )
        found = con.execute(sql, [source] if by_source else []).fetchall()
        files |= {f for (f,) in found if f and partition_of(f) == key}
    return sorted(files)


def write_partition(
    con: duckdb.DuckDBPyConnection,
    source: str,
    table: str,
    key: str,
    got: Ingested,
    partition_of: Callable[[str], str],
) -> int:
    """Replace the rows of partition ``key`` only; returns the rows of the partition."""
    files = partition_files(con, source, table, key, [str(p) for p in got.files], partition_of)
    replace_file_rows(con, table, files, got.rows)
    replace_file_rows(con, "rejets", files, got.rejects, source=source)
    logs = pd.DataFrame(got.logs) if got.logs else None
    replace_file_rows(con, "ingestion_log", files, logs, source=source)
    replace_file_rows(con, "anomalies", files, got.anomalies, source=source)
    return 0 if got.rows is None else len(got.rows)


def ingestion_asset(
    *,
    table: str,
    source: str,
    read: Callable[[ReadContext], Ingested],
    description: str,
    kinds: Iterable[str] = ("python", "duckdb"),
    deps: Iterable[str] = (),
    partitions_def: dg.PartitionsDefinition | None = None,
    partition_of: Callable[[str], str] | None = None,
) -> dg.AssetsDefinition:
    """The asset ``raw/<table>``: ``read`` then write, with metadata and the two checks.

    ``source`` names the source's rows in the shared tables; ``deps`` are raw tables read by
    ``read`` (through the warehouse) that must be loaded first; a partitioned asset needs
    ``partition_of(file) -> partition key`` to replace only its partition's rows.
    """
    if partitions_def is not None and partition_of is None:
        raise ValueError(f"raw/{table}: un asset partitionné a besoin de partition_of")

    @dg.asset(
        key=["raw", table],
        group_name=GROUP,
        check_specs=check_specs(table),
        kinds=set(kinds),
        partitions_def=partitions_def,
        deps=[dg.AssetKey(["raw", t]) for t in deps],
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext, warehouse: Warehouse, folders: ProjectFolders
    ) -> dg.MaterializeResult:
        key = context.partition_key if context.has_partition_key else None
        try:
            got = read(ReadContext(folders.raw, warehouse, key, context.log))
        except IngestionError as err:
            raise dg.Failure(description=str(err)) from None
        with warehouse.connect() as con:
            if key is None or partition_of is None:
                rows = write_source(con, source, table, got)
            else:
                rows = write_partition(con, source, table, key, got, partition_of)
        return dg.MaterializeResult(
            metadata={**metadata(table, rows, got.logs, got.rejects), **got.metadata},
            check_results=check_results(table, got.logs),
        )

    return _asset
