"""Export asset: every mart of the ``marts`` schema to ``MARTS_DIR/<table>.parquet``.

Tables with a GEOMETRY column are written as GeoParquet (DuckDB spatial writes the ``geo``
metadata with the CRS) by DuckDB itself.
"""

import dagster as dg

from pipelines.defs.dbt import mart_names
from pipelines.defs.resources import ProjectFolders, Warehouse


def build_export_asset():
    marts = mart_names()

    @dg.asset(
        key=["exports", "marts_parquet"],
        group_name="exports",
        kinds={"parquet"},
        deps=[dg.AssetKey(["marts", name]) for name in marts],
        description="Chaque mart exporté en Parquet (GeoParquet pour dim_qpv) dans data/marts/.",
    )
    def marts_parquet(
        context: dg.AssetExecutionContext, warehouse: Warehouse, folders: ProjectFolders
    ) -> dg.MaterializeResult:
        out = folders.marts
        out.mkdir(parents=True, exist_ok=True)
        written = {}
        with warehouse.connect() as con:
            tables = [
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables "
                    "where table_schema = 'marts' order by 1"
                ).fetchall()
            ]
            for table in tables:
                target = out / f"{table}.parquet"
                tmp = target.with_suffix(".parquet.tmp")
                con.execute(
                    f"COPY (SELECT * FROM marts.{table}) TO '{tmp}' "
                    "(FORMAT parquet, COMPRESSION zstd)"
                )
                tmp.replace(target)
                rows = con.execute(f"select count(*) from marts.{table}").fetchone()[0]
                written[table] = rows
                context.log.info(f"{target}: {rows} lignes")
        return dg.MaterializeResult(
            metadata={
                "dossier": dg.MetadataValue.path(str(out)),
                "marts": dg.MetadataValue.json(written),
            }
        )

    return marts_parquet
