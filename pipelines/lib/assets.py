"""Ingestion assets: raw files of ``data/raw/<source>/`` -> tables of the ``raw`` schema.

Each asset reads every file of its folder (a missing folder gives an empty table), writes its
table, its rejected rows (``raw.rejets``) and one ``raw.ingestion_log`` record per file, and
reports rows read / loaded / rejected as metadata. A file that cannot be read at all fails the
asset with a one-line reason naming the file.

The yearly sources (programmations, bilans) are partitioned by year (dynamic partitions
``annee``). The partition of a file is the year in its name (``VM_programmation_2027.csv`` ->
``2027``; a name without a year -> ``sans-annee``). Materialized for one partition, the asset
reads only the files of that year and replaces only the rows that came from them (in its table
and in rejets / ingestion_log / anomalies): the other years are not touched. Materialized
without a partition (``observatoire build``, job ``build_entrepot``), it reads every file and
replaces the whole table, as before.
"""

import csv
import json
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from pipelines.defs.resources import ProjectFolders, Warehouse
from pipelines.lib.privacy import drop_personal_columns
from pipelines.lib.raw_schemas import (
    file_log,
    replace_file_rows,
    replace_source_rows,
    replace_table,
)
from pipelines.lib.tables import REJECT_COLUMNS, IngestionError
from pipelines.settings import REFERENTIELS_DIR
from pipelines.sources.insee.reader import list_insee_files, read_insee_file
from pipelines.sources.programmations.reader import year_from_path

GROUP = "ingestion"
SEUIL_REJETS = 0.05

ANNEE = dg.DynamicPartitionsDefinition(name="annee")
SANS_ANNEE = "sans-annee"
SUIVI_SOURCES = ("programmations", "bilans")
SUIVI_SUFFIXES = {".csv", ".txt", ".tsv", ".xlsx", ".xlsm"}
QPV_REFERENCES = {
    "qpv_contours": "select code_qpv from raw.qpv_contours",
    "liste_qpv": "select code_qpv from raw.liste_qpv",
    "insee_valeurs": "select code_territoire from raw.insee_valeurs where type_territoire = 'qpv'",
}


def partition_of(path: str | Path) -> str:
    """The ``annee`` partition of a programmation/bilan file: the year in its name."""
    year = year_from_path(Path(path))
    return str(year) if year is not None else SANS_ANNEE


def suivi_files(raw_dir: Path, source: str) -> list[Path]:
    """The files of a yearly source (``programmations`` or ``bilans``) in the raw dir."""
    return _files(raw_dir / source, SUIVI_SUFFIXES)


def known_qpv_codes(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every QPV code a reference knows: the perimeter seed and the loaded raw references.

    The seed ``ref_perimetre_qpv.csv`` is read from the dbt project (always there); the
    contours, the official list and the INSEE bases are read from the raw tables when they are
    loaded (in a full build their assets run first). This is the set of codes of ``dim_qpv``.
    """
    with (REFERENTIELS_DIR / "ref_perimetre_qpv.csv").open(encoding="utf-8") as fh:
        codes = {r["code_qpv"].strip().upper() for r in csv.DictReader(fh) if r["code_qpv"]}
    loaded = _raw_tables(con)
    for table, sql in QPV_REFERENCES.items():
        if table in loaded:  # a reference not loaded in this warehouse is skipped
            codes |= {str(r[0]).strip().upper() for r in con.execute(sql).fetchall() if r[0]}
    return codes


def _raw_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'raw'"
        ).fetchall()
    }


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


def _files(folder: Path, suffixes: set[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in suffixes
        and not p.name.startswith((".", "~$"))
        and not p.stem.lower().startswith(("readme", "lisez"))
    )


def _summary(logs: list[dict], rejects: pd.DataFrame | None) -> dict:
    return {
        "fichiers": len(logs),
        "lignes_lues": sum(int(x["lignes_lues"]) for x in logs),
        "lignes_chargees": sum(int(x["lignes_chargees"]) for x in logs),
        "lignes_rejetees": sum(int(x["lignes_rejetees"]) for x in logs),
        "rejets_total": 0 if rejects is None else len(rejects),
    }


def _metadata(summary: dict, table: str, rows: int, logs: list[dict]) -> dict:
    return {
        **{k: dg.MetadataValue.int(v) for k, v in summary.items()},
        "table": dg.MetadataValue.text(f"raw.{table}"),
        "lignes_table": dg.MetadataValue.int(rows),
        "fichiers_lus": dg.MetadataValue.json(
            [
                {
                    k: x[k]
                    for k in (
                        "fichier",
                        "empreinte_sha256",
                        "lignes_lues",
                        "lignes_chargees",
                        "lignes_rejetees",
                    )
                }
                for x in logs
            ]
        ),
    }


def _result(
    summary: dict, table: str, rows: int, logs: list[dict], extra: dict | None = None
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={**_metadata(summary, table, rows, logs), **(extra or {})},
        check_results=check_results(table, logs),
    )


def _write(con, source: str, table: str, frame, rejects, logs, anomalies=None) -> int:
    rows = replace_table(con, table, frame)
    replace_source_rows(con, "rejets", source, rejects)
    replace_source_rows(con, "ingestion_log", source, pd.DataFrame(logs) if logs else None)
    replace_source_rows(con, "anomalies", source, anomalies)
    return rows


@dg.asset(
    key=["raw", "insee_valeurs"],
    group_name=GROUP,
    check_specs=check_specs("insee_valeurs"),
    kinds={"python", "duckdb"},
    description="Bases INSEE QPV (data/raw/insee/*.csv|xlsx) en format long.",
)
def insee_valeurs(
    context: dg.AssetExecutionContext, warehouse: Warehouse, folders: ProjectFolders
) -> dg.MaterializeResult:
    frames, rejects, logs = [], [], []
    for path in list_insee_files(folders.raw / "insee"):
        try:
            result = read_insee_file(path)
        except IngestionError as err:
            raise dg.Failure(description=str(err)) from None
        context.log.info(
            f"{path.name}: {result.report['lignes_chargees']} lignes, "
            f"{result.report['valeurs']} valeurs ({result.report['valeurs_secretes']} secrètes), "
            f"{len(result.rejects)} rejets"
        )
        frames.append(result.values)
        rejects.append(result.rejects)
        logs.append(
            file_log(
                "insee",
                path,
                result.report["lignes_lues"],
                result.report["lignes_chargees"],
                result.report["lignes_rejetees"],
            )
        )
    frame = pd.concat(frames, ignore_index=True) if frames else None
    rej = pd.concat(rejects, ignore_index=True) if rejects else None
    with warehouse.connect() as con:
        rows = _write(con, "insee", "insee_valeurs", frame, rej, logs)
    return _result(_summary(logs, rej), "insee_valeurs", rows, logs)


@dg.asset(
    key=["raw", "qpv_contours"],
    group_name=GROUP,
    check_specs=check_specs("qpv_contours"),
    kinds={"python", "duckdb", "geopandas"},
    description="Contours officiels des QPV (data/raw/sig_ville/: GeoJSON, GPKG, SHP, ZIP ANCT).",
)
def qpv_contours(
    context: dg.AssetExecutionContext, warehouse: Warehouse, folders: ProjectFolders
) -> dg.MaterializeResult:
    from geo.contours import ContoursError, read_contours

    frames, rejects, logs = [], [], []
    for path in _files(folders.raw / "sig_ville", {".geojson", ".json", ".gpkg", ".shp", ".zip"}):
        try:
            result = read_contours(path)
        except ContoursError as err:
            raise dg.Failure(description=str(err)) from None
        gdf = result.qpv
        frame = pd.DataFrame(gdf.drop(columns="geometry"))
        frame["geom_wkb"] = gdf.geometry.to_wkb()
        frames.append(frame)
        rejects.append(result.rejects)
        lus = sum(int(r.get("lus", 0)) for r in result.report)
        context.log.info(f"{path.name}: {result.report}")
        logs.append(file_log("sig_ville", path, lus, len(frame), len(result.rejects)))
    frame = pd.concat(frames, ignore_index=True) if frames else None
    if frame is not None:
        frame = frame.drop_duplicates(subset=["code_qpv"], keep="first")
    rej = pd.concat(rejects, ignore_index=True) if rejects else None
    with warehouse.connect() as con:
        rows = _write(con, "sig_ville", "qpv_contours", frame, rej, logs)
    return _result(_summary(logs, rej), "qpv_contours", rows, logs)


@dg.asset(
    key=["raw", "liste_qpv"],
    group_name=GROUP,
    check_specs=check_specs("liste_qpv"),
    kinds={"python", "duckdb"},
    description="Liste officielle des QPV avec communes et EPCI (data/raw/sig_ville/liste*.csv).",
)
def liste_qpv(
    context: dg.AssetExecutionContext, warehouse: Warehouse, folders: ProjectFolders
) -> dg.MaterializeResult:
    from geo.contours import ContoursError, read_liste_qpv

    frames, rejects, logs = [], [], []
    for path in _files(folders.raw / "sig_ville", {".csv"}):
        try:
            frame = read_liste_qpv(path)
        except (ContoursError, IngestionError, ValueError) as err:
            raise dg.Failure(description=f"{path}: {err}") from None
        rejected = pd.DataFrame(frame.attrs.get("rejets", []), columns=REJECT_COLUMNS)
        frames.append(frame)
        rejects.append(rejected)
        logs.append(
            file_log("liste_qpv", path, len(frame) + len(rejected), len(frame), len(rejected))
        )
    frame = pd.concat(frames, ignore_index=True) if frames else None
    rej = pd.concat(rejects, ignore_index=True) if rejects else None
    with warehouse.connect() as con:
        rows = _write(con, "liste_qpv", "liste_qpv", frame, rej, logs)
    return _result(_summary(logs, rej), "liste_qpv", rows, logs)


def _partition_files(con, source: str, table: str, key: str, current: list[str]) -> list[str]:
    """Files of partition ``key``: those present now and those loaded before (maybe removed)."""
    files = set(current)
    loaded = _raw_tables(con)
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


def _write_partition(
    con, source: str, table: str, key: str, paths, frame, rejects, logs, anomalies
) -> int:
    """Replace the rows of partition ``key`` only; returns the rows of the partition."""
    files = _partition_files(con, source, table, key, [str(p) for p in paths])
    replace_file_rows(con, table, files, frame)
    replace_file_rows(con, "rejets", files, rejects, source=source)
    replace_file_rows(
        con, "ingestion_log", files, pd.DataFrame(logs) if logs else None, source=source
    )
    replace_file_rows(con, "anomalies", files, anomalies, source=source)
    return 0 if frame is None else len(frame)


def _suivi_asset(source: str, table: str, parse_name: str, description: str):
    @dg.asset(
        key=["raw", table],
        group_name=GROUP,
        check_specs=check_specs(table),
        kinds={"python", "duckdb"},
        partitions_def=ANNEE,
        # the QPV references are loaded first: unknown QPV codes are reported against them
        deps=[dg.AssetKey(["raw", t]) for t in ("qpv_contours", "liste_qpv", "insee_valeurs")],
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext, warehouse: Warehouse, folders: ProjectFolders
    ) -> dg.MaterializeResult:
        from pipelines.sources.bilans.reader import parse_bilans
        from pipelines.sources.programmations.reader import SuiviError, parse_programmations

        parse = {"parse_programmations": parse_programmations, "parse_bilans": parse_bilans}[
            parse_name
        ]
        paths = suivi_files(folders.raw, source)
        key = context.partition_key if context.has_partition_key else None
        if key is not None:
            paths = [p for p in paths if partition_of(p) == key]
        extra = folders.raw / "referentiels" / "entetes_alias.csv"
        with warehouse.connect() as con:
            known = known_qpv_codes(con)
        try:
            result = parse(paths, extra_aliases=extra if extra.is_file() else None, known_qpv=known)
        except SuiviError as err:
            raise dg.Failure(description=str(err)) from None
        # the parsers name files by their base name: give the full path everywhere
        full = {p.name: str(p) for p in paths}

        def with_paths(frame: pd.DataFrame | None, column: str) -> pd.DataFrame | None:
            if frame is None or frame.empty or column not in frame:
                return frame
            return frame.assign(**{column: frame[column].map(lambda n: full.get(n, n))})

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
        rejects = with_paths(result.rejects, "fichier")
        anomalies = with_paths(result.anomalies, "fichier")
        frame, personal = drop_personal_columns(frame, source)
        for message in personal["message"]:
            context.log.warning(message)
        if not personal.empty:
            anomalies = pd.concat(
                [a for a in (anomalies, personal.drop(columns="source")) if a is not None],
                ignore_index=True,
            )
        unknown = 0 if anomalies is None else int((anomalies["type"] == "qpv_inconnu").sum())
        with warehouse.connect() as con:
            if key is None:
                rows = _write(con, source, table, frame, rejects, logs, anomalies)
            else:
                rows = _write_partition(
                    con, source, table, key, paths, frame, rejects, logs, anomalies
                )
        context.log.info(
            f"{'année ' + key if key else 'toutes les années'}: {len(paths)} fichier(s), "
            f"{rows} lignes, {len(result.rejects)} rejets, {unknown} code(s) QPV inconnu(s)"
        )
        if unknown:
            context.log.warning(
                f"{unknown} ligne(s) avec un code QPV inconnu (raw.anomalies, type qpv_inconnu)"
            )
        summary = {**_summary(logs, result.rejects), "codes_qpv_inconnus": unknown}
        return _result(
            summary, table, rows, logs, {"partition": dg.MetadataValue.text(key or "toutes")}
        )

    return _asset


programmations = _suivi_asset(
    "programmations",
    "programmations",
    "parse_programmations",
    "Programmations annuelles (data/raw/programmations/*.csv|xlsx), action x financeur.",
)
bilans = _suivi_asset(
    "bilans",
    "bilans",
    "parse_bilans",
    "Bilans des actions (data/raw/bilans/*.csv|xlsx), action x QPV de résidence.",
)

ingestion_assets = [insee_valeurs, qpv_contours, liste_qpv, programmations, bilans]
