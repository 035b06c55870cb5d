"""Export asset: every mart of the ``marts`` schema to ``MARTS_DIR/<table>.parquet``.

Counts of people are masked under the statistical-secrecy threshold in what is published
(``pipelines/publication/secret.py``); the warehouse keeps the true values.

Tables with a GEOMETRY column are written as GeoParquet (DuckDB spatial writes the ``geo``
metadata with the CRS) by DuckDB itself.
"""

import dagster as dg

from geo.export import export_dim_qpv
from pipelines.publication.scdl import export_scdl
from pipelines.publication.secret import load_specs, mask_counts
from pipelines.warehouse.dbt import mart_names
from pipelines.warehouse.resources import ProjectFolders, Warehouse


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
            specs = load_specs()
            masked_cells = {}
            for table in tables:
                target = out / f"{table}.parquet"
                tmp = target.with_suffix(".parquet.tmp")
                source = f"marts.{table}"
                if table in specs:
                    # published figures respect statistical secrecy (pipelines/publication)
                    frame = mask_counts(con.execute(f"select * from {source}").df(), specs[table])
                    masked_cells[table] = int(frame["secret_statistique"].sum())
                    con.register("_publie", frame)
                    source = "_publie"
                con.execute(
                    f"COPY (SELECT * FROM {source}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)"
                )
                if source == "_publie":
                    con.unregister("_publie")
                tmp.replace(target)
                rows = con.execute(f"select count(*) from marts.{table}").fetchone()[0]
                written[table] = rows
                context.log.info(f"{target}: {rows} lignes")
            if "dim_qpv" in tables:
                # GeoParquet with its CRS, GeoPackage and GeoJSON that open in QGIS as they are
                geo_files = export_dim_qpv(con, out)
                context.log.info(f"dim_qpv: {sorted(str(p) for p in geo_files.values())}")
            if "subventions_scdl" in tables:
                scdl = export_scdl(con, out)
                context.log.info(f"SCDL subventions: {len(scdl.files)} fichier(s) dans {out}/scdl")
                for name, fields in scdl.incomplete.items():
                    context.log.warning(f"SCDL {name}: champs à compléter {fields}")
                written["scdl_fichiers"] = len(scdl.files)
        return dg.MaterializeResult(
            metadata={
                "dossier": dg.MetadataValue.path(str(out)),
                "marts": dg.MetadataValue.json(written),
                "lignes_avec_secret_statistique": dg.MetadataValue.json(masked_cells),
            }
        )

    return marts_parquet
