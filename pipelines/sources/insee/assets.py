"""Ingestion asset ``raw/insee_valeurs``: the INSEE QPV bases of ``data/raw/insee/``, long form.

A file may have a parameter file beside it, ``<stem>.yml`` (``millesime``, ``base``), for a
name that gives neither. Variables of a file that names no base are recognised by their name
(:mod:`.dictionary`); ambiguous variables and files whose values reach no indicator are written
to ``raw.anomalies`` (types ``insee_variable_ambigue``, ``insee_sans_indicateur``) and said in
the build summary.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.lib.assets import Ingested, ReadContext, concat, ingestion_asset
from pipelines.lib.files import TABLE_SUFFIXES
from pipelines.lib.raw_schemas import file_log, unread_logs
from pipelines.lib.spill import SpilledTable
from pipelines.lib.tables import IngestionError
from pipelines.sources.insee.dictionary import VariableDictionary, default_dictionary
from pipelines.sources.insee.parameters import file_parameters
from pipelines.sources.insee.reader import (
    VALUE_TYPES,
    InseeFile,
    list_insee_files,
    millesime_from_name,
    read_insee_file,
    source_of,
)

SOURCE = "insee"
PARAMETER_SUFFIXES = {".yml", ".yaml"}


def read_insee(ctx: ReadContext) -> Ingested:
    folder = ctx.raw / "insee"
    dictionary = default_dictionary()
    frames, rejects, anomalies = [], [], []
    logs = unread_logs(SOURCE, folder, TABLE_SUFFIXES | PARAMETER_SUFFIXES)
    files = list_insee_files(folder)
    params = {path: file_parameters(path) for path in files}
    logs.extend(orphan_parameter_logs(folder, files))
    check_one_file_per_base(files, dictionary, {p: v for p, (_, v) in params.items()})
    results: list[InseeFile] = []
    for path in files:
        sidecar, given = params[path]
        result = read_insee_file(
            path, source=given.get("base"), millesime=given.get("millesime"), dictionary=dictionary
        )
        results.append(result)
        report = result.report
        note = file_note(result, sidecar)
        ctx.log.info(
            f"{path.name}: {report['lignes_chargees']} lignes, "
            f"{report['valeurs']} valeurs ({report['valeurs_secretes']} secrètes), "
            f"{len(result.rejects)} rejets" + (f" ; {note}" if note else "")
        )
        for warning in result.anomalies["message"]:
            ctx.log.warning(warning)
        frames.append(result.values_table)  # on disk: inserted without a pandas frame
        rejects.append(result.rejects_table)
        anomalies.append(result.anomalies)
        logs.append(
            file_log(
                SOURCE,
                path,
                report["lignes_lues"],
                report["lignes_chargees"],
                report["lignes_rejetees"],
                message=note or None,
            )
        )
    check_no_overlap(results, dictionary)
    found = [a for a in anomalies if len(a)]
    # every file's values in one Parquet file: inserted by one statement (one per file costs
    # more than the reading, docs/performance.md « Lecture des bases INSEE »)
    values = SpilledTable.one_file(frames, dict(VALUE_TYPES)) if frames else None
    return Ingested(values, concat(rejects), logs, anomalies=concat(found))


def file_note(result: InseeFile, sidecar: Path | None) -> str:
    """What the ingestion log says of how a file reached the dictionary."""
    report = result.report
    parts = []
    if sidecar is not None:
        parts.append(f"paramètres {sidecar.name}")
    if len(report["millesimes"]) > 1:
        parts.append("millésimes " + ", ".join(str(y) for y in report["millesimes"]))
    if not report["base_nommee"]:
        counts: dict[str, int] = {}
        for base in report["variables_reconnues"].values():
            counts[base] = counts.get(base, 0) + 1
        recognised = ", ".join(f"{b} {n}" for b, n in sorted(counts.items())) or "aucune"
        parts.append(f"base non nommée : variables reconnues par leur nom ({recognised})")
        if report["variables_ambigues"]:
            parts.append("ambiguës : " + ", ".join(sorted(report["variables_ambigues"])))
    if not report["variables_indicateur"]:
        parts.append("aucune valeur n'atteint un indicateur (raw.anomalies)")
    return " ; ".join(parts)


def orphan_parameter_logs(folder: Path, files: list[Path]) -> list[dict]:
    """A parameter file with no data file of the same name is logged as not read."""
    if not folder.is_dir():
        return []
    stems = {(p.parent, p.stem) for p in files}
    return [
        file_log(
            SOURCE,
            path,
            0,
            0,
            0,
            statut="non_lu",
            message="fichier de paramètres sans fichier de données de même nom : non lu",
        )
        for path in sorted(folder.rglob("*"))
        if path.suffix.lower() in PARAMETER_SUFFIXES
        and path.is_file()
        and not path.name.startswith(".")
        and (path.parent, path.stem) not in stems
    ]


def check_one_file_per_base(
    files: list, dictionary: VariableDictionary | None = None, params: dict | None = None
) -> None:
    """Two files of one base and millésime (``IPRO_2022.csv`` and ``IPRO_2022_v2.csv``) would
    both publish every value: refused, naming both (keep one in the folder). Checked on the
    names (and parameters) before reading; files naming no base are checked after reading
    (:func:`check_no_overlap`)."""
    bases = (dictionary or default_dictionary()).bases
    seen: dict[tuple[str, int | None], object] = {}
    for path in files:
        given = (params or {}).get(path, {})
        key = (
            given.get("base") or source_of(path),
            given.get("millesime") or millesime_from_name(path.name),
        )
        if key[0] not in bases or key[1] is None:
            continue
        if key in seen:
            raise IngestionError(
                f"{path}: même base {key[0]} et même millésime {key[1]} que {seen[key]} : "
                "garder un seul fichier par base et par millésime (déplacer l'autre hors du "
                "dossier brut)"
            )
        seen[key] = path


def check_no_overlap(results: list[InseeFile], dictionary: VariableDictionary) -> None:
    """Two files giving the same variable of the same base and millésime (a free-named extract
    beside the national base, say) would publish it twice: refused, naming both files."""
    seen: dict[tuple[str, int, str], Path] = {}
    for result in results:
        combos = result.combos
        keys = combos.loc[combos["source"].isin(list(dictionary.bases))]
        keys = keys[["source", "millesime", "variable"]].drop_duplicates()
        for base, year, variable in keys.itertuples(index=False):
            key = (base, int(year), variable)
            other = seen.setdefault(key, result.path)
            if other != result.path:
                raise IngestionError(
                    f"{result.path}: variable {variable} de la base {base}, millésime {year}, "
                    f"déjà donnée par {other} : garder un seul fichier par base et par "
                    "millésime (déplacer l'autre hors du dossier brut)"
                )


insee_valeurs = ingestion_asset(
    table="insee_valeurs",
    source=SOURCE,
    read=read_insee,
    description=(
        "Bases INSEE QPV (data/raw/insee/*.csv|xlsx) en format long ; la base de chaque "
        "variable est donnée par le nom du fichier, ou reconnue au nom de la variable."
    ),
)
