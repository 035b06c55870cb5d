"""Ingestion assets: raw files of ``data/raw/<source>/`` -> tables of the ``raw`` schema.

Each asset reads every file of its folder (a missing folder gives an empty table), writes its
table, its rejected rows (``raw.rejets``) and one ``raw.ingestion_log`` record per file, and
reports rows read / loaded / rejected as metadata. A file that cannot be read at all fails the
asset with a one-line reason naming the file.
"""

import json
from pathlib import Path

import dagster as dg
import pandas as pd

from pipelines.defs.raw_tables import file_log, replace_source_rows, replace_table
from pipelines.defs.resources import ProjectFolders, Warehouse
from pipelines.ingestion.common import REJECT_COLUMNS, IngestionError
from pipelines.ingestion.insee import list_insee_files, read_insee_file
from pipelines.ingestion.privacy import drop_personal_columns

GROUP = "ingestion"
SEUIL_REJETS = 0.05


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


def _result(summary: dict, table: str, rows: int, logs: list[dict]) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata=_metadata(summary, table, rows, logs), check_results=check_results(table, logs)
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


def _suivi_asset(source: str, table: str, parse_name: str, description: str):
    @dg.asset(
        key=["raw", table],
        group_name=GROUP,
        check_specs=check_specs(table),
        kinds={"python", "duckdb"},
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext, warehouse: Warehouse, folders: ProjectFolders
    ) -> dg.MaterializeResult:
        import importlib

        from pipelines.suivi import SuiviError

        parse = getattr(importlib.import_module(f"pipelines.suivi.{table}"), parse_name)
        paths = _files(folders.raw / source, {".csv", ".txt", ".tsv", ".xlsx", ".xlsm"})
        extra = folders.raw / "referentiels" / "entetes_alias.csv"
        try:
            result = parse(paths, extra_aliases=extra if extra.is_file() else None)
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
        with warehouse.connect() as con:
            rows = _write(con, source, table, frame, rejects, logs, anomalies)
        context.log.info(f"{len(paths)} fichier(s), {rows} lignes, {len(result.rejects)} rejets")
        return _result(_summary(logs, result.rejects), table, rows, logs)

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
