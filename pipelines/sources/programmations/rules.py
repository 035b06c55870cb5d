"""Programmations: one row per action x financeur from the lines of the exports, and the
anomalies worth a look (kept, reported in ``raw.anomalies``, never fixed silently).

The lines come from :mod:`.reader` (header detection, aliases, line loop); the cells are parsed
by :mod:`.cells`. A line becomes one row per financeur: in the "long" layout (a ``Financeur``
column) the line is one financeur; in the "wide" layout each ``<financeur> - <demandé/accordé>``
pair of columns gives one row.

Why this module is long: it holds every rule that turns the lines of an export into rows and
anomalies (layouts, repeated requests, series, QPV codes against the perimeters, amounts,
dates), in the order they apply; split across files, a reader would have to follow one line
through several modules to know why it was kept, rejected or flagged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.lib.cells import cell_text
from pipelines.lib.codes import QPV_LIKE_IN_TEXT, geographie_of
from pipelines.lib.raw_schemas import ANOMALY_COLUMNS, REJECT_COLUMNS
from pipelines.sources.programmations.cells import (
    check_siret,
    parse_bool,
    parse_date,
    parse_marqueur,
    parse_share,
    parse_small_int,
    qpv_codes,
    split_code,
    split_dossier,
)
from pipelines.sources.programmations.columns import (
    Distinct,
    TableColumns,
    run_tables_columns,
)
from pipelines.sources.programmations.reader import SuiviResult, frame

QPV_INCONNU = "qpv_inconnu"
QPV_MAL_FORME = "qpv_mal_forme"
DATE_ILLISIBLE = "date_illisible"
#: A dossier × financeur repeated with other amounts: the last line of the export is kept.
DEMANDE_EN_CONFLIT = "demande_en_conflit"
#: Geography 2024 in force from this programmation year (QN codes), 2015 before (QP codes).
GEOGRAPHIE_2024_DES = 2024

_QPV_ATTEMPT = re.compile(r"(?<![A-Z0-9])Q[PN][0-9A-Z]{2,9}(?![A-Z0-9])")


def malformed_qpv(value: Any) -> str | None:
    """Why a QPV cell holds a code-like token that is not a QPV code (``QN0592M``), or None."""
    text = cell_text(value)
    if text is None:
        return None
    bad = [
        token
        for token in dict.fromkeys(_QPV_ATTEMPT.findall(text.upper()))
        if not QPV_LIKE_IN_TEXT.fullmatch(token)
    ]
    if not bad:
        return None
    listed = ", ".join(f"« {t} »" for t in bad)
    return (
        f"code QPV mal formé {listed} (attendu QN + département + 2 chiffres + N/M/I/C, ou "
        "QP + département + 3 chiffres): ce quartier n'est pas compté, ligne gardée; corriger "
        "le code dans le fichier source"
    )


PROGRAMMATION_COLUMNS = [
    "territoire",
    "annee",
    "dossier",
    "dossier_base",
    "serie_pluriannuelle",
    "porteur_nom",
    "porteur_siret",
    "porteur_siren",
    "siret_valide",
    "porteur_type",
    "intitule",
    "orientation_code",
    "orientation_libelle",
    "objectif_code",
    "objectif_libelle",
    "objectif_parent_code",
    "qpv_codes",
    "qpv_texte",
    "echelle",
    "statut_libelle",
    "thematique_transversale_code",
    "thematique_transversale_libelle",
    "projet_quartier",
    "cout_total",
    "couts_indirects",
    "achats",
    "financeur_libelle",
    "montant_demande",
    "montant_accorde",
    "nature_subvention",
    "type_credits",
    "volet_regional",
    "rang_financement",
    "cpo",
    "cpo_duree",
    "marqueur_egalite",
    "part_public_qpv",
    "date_debut_action",
    "date_fin_action",
    "date_bilan",
    "date_bilan_intermediaire",
    "date_demande_report",
    "nombre_reunions_suivi",
    "suivi_renforce",
    "autres_colonnes",
    "source_fichier",
    "source_feuille",
    "source_ligne",
]

PROGRAMMATION_FIELDS = {
    "territoire",
    "annee",
    "dossier",
    "porteur_nom",
    "porteur_siret",
    "porteur_type",
    "intitule",
    "orientation",
    "objectif",
    "sous_objectif",
    "qpv",
    "echelle",
    "statut",
    "thematique_transversale",
    "projet_quartier",
    "cout_total",
    "couts_indirects",
    "achats",
    "financeur",
    "montant_demande",
    "montant_accorde",
    "total_demande",
    "total_accorde",
    "cpo",
    "cpo_duree",
    "rang_financement",
    "nature_subvention",
    "type_credits",
    "marqueur_egalite",
    "part_public_qpv",
    "date_bilan",
    "date_bilan_intermediaire",
    "date_debut_action",
    "date_fin_action",
    "date_demande_report",
    "nombre_reunions_suivi",
    "suivi_renforce",
    "volet_regional",
}


def unknown_qpv_anomalies(
    rows: pd.DataFrame | list[dict[str, Any]], code_field: str, known: set[str] | None
) -> list[dict[str, Any]]:
    """One ``qpv_inconnu`` anomaly per line naming a well-formed QPV code that no reference knows.

    ``known`` is the set of QPV codes of the references (see
    :func:`pipelines.sources.programmations.assets.known_qpv_codes`); ``None`` skips the check.
    The line is kept: an unknown code is reported, never dropped.
    """
    if known is None:
        return []
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(rows)
    if df.empty:
        return []

    def unknown_of(codes: Any) -> tuple[str, ...]:
        if codes is None or codes is pd.NA or (isinstance(codes, float) and codes != codes):
            return ()
        return tuple(
            c for c in str(codes).split(";") if QPV_LIKE_IN_TEXT.fullmatch(c) and c not in known
        )

    unknown = Distinct(df[code_field].to_numpy(dtype=object)).map(unknown_of)
    has = np.fromiter((bool(u) for u in unknown), dtype=bool, count=len(unknown))
    feuille = df["source_feuille"] if "source_feuille" in df else pd.Series(None, index=df.index)
    tags = pd.DataFrame(
        {"f": df["source_fichier"], "s": feuille.astype(object), "l": df["source_ligne"]}
    )
    first = ~tags.duplicated(keep="first").to_numpy()
    keep = np.flatnonzero(has & first)
    anomalies: list[dict[str, Any]] = []
    columns = df.get("_qpv_colonne", pd.Series(None, index=df.index)).to_numpy(dtype=object)
    raws = df.get("_qpv_brut", pd.Series(None, index=df.index)).to_numpy(dtype=object)
    files = df["source_fichier"].to_numpy(dtype=object)
    lines = df["source_ligne"].to_numpy(dtype=object)
    sheets = feuille.to_numpy(dtype=object)
    dossiers = df["dossier"].to_numpy(dtype=object)
    for i in keep:
        where = str(files[i])
        if _given(sheets[i]):
            where += f", feuille « {sheets[i]} »"
        where += f", ligne {lines[i]}"
        colonne = columns[i] if _given(columns[i]) else None
        if colonne:
            where += f", colonne « {colonne} »"
        listed = ", ".join(f"« {c} »" for c in unknown[i])
        anomalies.append(
            {
                "type": QPV_INCONNU,
                "fichier": files[i],
                "ligne": lines[i],
                "dossier": dossiers[i] if _given(dossiers[i]) else None,
                "colonne": colonne,
                "valeur_brute": raws[i] if _given(raws[i]) else None,
                "message": (
                    f"{where}: code QPV inconnu {listed} (absent des contours, de la liste "
                    "officielle, des bases INSEE et du périmètre des contrats): ligne gardée, "
                    "à corriger dans le fichier source"
                ),
            }
        )
    return anomalies


def _given(value: Any) -> bool:
    """A value that is there (not None, NaN or NA)."""
    return value is not None and value is not pd.NA and value == value


# --------------------------------------------------------------------------------------------
# Programmations
# --------------------------------------------------------------------------------------------


def _is_none(values: np.ndarray) -> np.ndarray:
    return np.array([v is None for v in values], dtype=bool)


def _programmation_frame(view: TableColumns) -> pd.DataFrame:
    """The rows (action × financeur) of a table's candidate lines, column by column; lines with
    an unreadable cell are marked in ``view`` (first failing field first, as listed below)."""
    n = len(view)
    territoire, annee = view.context()
    dossier = view.text("dossier")
    intitule = view.text("intitule")
    view.fail(
        _is_none(dossier) & _is_none(intitule),
        None,
        None,
        "ligne sans numéro de dossier ni intitulé (ligne de total ou sous-titre ?)",
    )
    dossier_base, serie = Distinct(dossier).map_pair(split_dossier)
    siret, siren, siret_ok = view.map_pair("porteur_siret", check_siret, 3)
    orientation_code, orientation_libelle = view.map_pair("orientation", split_code)
    objectif_code, objectif_libelle = view.map_pair("objectif", split_code)
    sous_code, sous_libelle = view.map_pair("sous_objectif", split_code)
    transversale_code, transversale_libelle = view.map_pair("thematique_transversale", split_code)
    has_sous = ~_is_none(sous_code)
    objectif_parent = np.where(has_sous, objectif_code, None)
    objectif_code = np.where(has_sous, sous_code, objectif_code)
    objectif_libelle = np.where(has_sous, sous_libelle, objectif_libelle)
    qpv_idx = view.index_of("qpv")
    if qpv_idx is not None:
        malformed = view.distinct_at(qpv_idx).map(malformed_qpv)
        view.flag(
            np.array([m is not None for m in malformed], dtype=bool),
            QPV_MAL_FORME,
            qpv_idx,
            malformed,
        )
    base: dict[str, Any] = {
        "territoire": territoire,
        "annee": annee,
        "dossier": dossier,
        "dossier_base": dossier_base,
        "serie_pluriannuelle": serie,
        "porteur_nom": view.text("porteur_nom"),
        "porteur_siret": siret,
        "porteur_siren": siren,
        "siret_valide": siret_ok,
        "porteur_type": view.text("porteur_type"),
        "intitule": intitule,
        "orientation_code": orientation_code,
        "orientation_libelle": orientation_libelle,
        "objectif_code": objectif_code,
        "objectif_libelle": objectif_libelle,
        "objectif_parent_code": objectif_parent,
        "qpv_codes": view.map("qpv", qpv_codes),
        "qpv_texte": view.text("qpv"),
        "_qpv_colonne": None if qpv_idx is None else view.column_name(qpv_idx),
        "_qpv_brut": view.text("qpv"),
        "echelle": view.text("echelle"),
        "statut_libelle": view.text("statut"),
        "thematique_transversale_code": transversale_code,
        "thematique_transversale_libelle": transversale_libelle,
        "projet_quartier": view.parse("projet_quartier", parse_bool),
        "cout_total": view.amounts("cout_total"),
        "couts_indirects": view.amounts("couts_indirects"),
        "achats": view.amounts("achats"),
        "nature_subvention": view.text("nature_subvention"),
        "type_credits": view.text("type_credits"),
        "rang_financement": view.parse("rang_financement", parse_small_int),
        "cpo": view.parse("cpo", parse_bool),
        "cpo_duree": view.parse("cpo_duree", parse_small_int),
        "marqueur_egalite": view.parse("marqueur_egalite", parse_marqueur),
        "part_public_qpv": view.parse("part_public_qpv", parse_share),
        "date_debut_action": view.optional("date_debut_action", parse_date, DATE_ILLISIBLE),
        "date_fin_action": view.optional("date_fin_action", parse_date, DATE_ILLISIBLE),
        "date_bilan": view.optional("date_bilan", parse_date, DATE_ILLISIBLE),
        "date_bilan_intermediaire": view.optional(
            "date_bilan_intermediaire", parse_date, DATE_ILLISIBLE
        ),
        "date_demande_report": view.optional("date_demande_report", parse_date, DATE_ILLISIBLE),
        "nombre_reunions_suivi": view.parse("nombre_reunions_suivi", parse_small_int),
        "suivi_renforce": view.parse("suivi_renforce", parse_bool),
        "volet_regional": view.text("volet_regional"),
        "autres_colonnes": view.others_json(),
        "source_fichier": view.file_names(),
        "source_feuille": view.sheets(),
        "source_ligne": view.lines.astype(object),
        "_position": np.arange(n),
    }
    cpo, duree = base["cpo"], base["cpo_duree"]
    for i in np.flatnonzero(_is_none(cpo)):
        if duree[i]:
            cpo[i] = duree[i] > 1
    fields = view.table.cmap.fields
    if "financeur" in fields or "montant_demande" in fields or "montant_accorde" in fields:
        return pd.DataFrame(
            {
                **base,
                "financeur_libelle": view.text("financeur"),
                "montant_demande": view.amounts("montant_demande"),
                "montant_accorde": view.amounts("montant_accorde"),
            }
        )
    amounts: dict[str, dict[str, np.ndarray]] = {}
    for label, measure, idx in view.table.cmap.wide:
        value = view.amounts_at(idx)
        pair = amounts.setdefault(
            label,
            {
                "montant_demande": np.full(n, None, dtype=object),
                "montant_accorde": np.full(n, None, dtype=object),
            },
        )
        given = ~_is_none(value)
        pair[measure][given] = value[given]
    parts: list[pd.DataFrame] = []
    produced = np.zeros(n, dtype=bool)
    for order, (label, values) in enumerate(amounts.items()):
        some = ~_is_none(values["montant_demande"]) | ~_is_none(values["montant_accorde"])
        produced |= some
        part = pd.DataFrame({**base, "financeur_libelle": label, **values, "_sub": order})
        parts.append(part[some])
    empty = pd.DataFrame(
        {
            **base,
            "financeur_libelle": None,
            "montant_demande": None,
            "montant_accorde": None,
            "_sub": -1,
        }
    )
    parts.append(empty[~produced])
    rows = pd.concat(parts, ignore_index=True).sort_values(["_position", "_sub"], kind="stable")
    return rows.drop(columns="_sub").reset_index(drop=True)


def parse_programmations(
    paths: list[Path],
    extra_aliases: Path | None = None,
    known_qpv: set[str] | None = None,
    perimetre: dict[str, set[str]] | None = None,
) -> SuiviResult:
    """Parse programmation files into one row per action × financeur.

    See the module docstring for the accepted layouts. Rows that cannot be loaded go to
    ``.rejects`` (file, line, column, raw value, reason); rows kept but worth a look go to
    ``.anomalies`` (repeated dossier × financeur, multi-year series, granted above requested,
    invalid SIRET, negative amount, unreadable optional date, malformed QPV code, with
    ``known_qpv`` a QPV code absent from the references and with ``perimetre`` (territory ->
    its QPV codes) a QPV of another territory or of the other geography). A dossier × financeur
    repeated with other values keeps only its last line (:func:`repeated_requests`). For every
    file, ``lignes_lues = lignes_chargees + lignes_rejetees``. A table from which no amount can
    be read raises :class:`SuiviError`.
    """
    frames, rejects, flagged, files = run_tables_columns(
        list(paths), extra_aliases, PROGRAMMATION_FIELDS, "programmations", _programmation_frame
    )
    built = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    built = built.reindex(columns=[*PROGRAMMATION_COLUMNS, "_qpv_colonne", "_qpv_brut"])
    built, repeated = repeated_requests(built)
    anomalies = (
        flagged
        + repeated
        + _programmation_anomalies(built)
        + unknown_qpv_anomalies(built, "qpv_codes", known_qpv)
        + qpv_scope_anomalies(built, perimetre)
    )
    frame_rows = _typed_programmations(built[PROGRAMMATION_COLUMNS].copy())
    return SuiviResult(
        rows=frame_rows,
        rejects=frame(rejects, REJECT_COLUMNS),
        anomalies=frame(anomalies, ANOMALY_COLUMNS),
        files=files,
    )


def _amounts_text(demande: Any, accorde: Any) -> str:
    def one(value: Any) -> str:
        return "vide" if not _given(value) else _euros(value)

    return f"demandé {one(demande)}, accordé {one(accorde)}"


def repeated_requests(df: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The rows without the earlier repeats of a dossier × financeur, and one anomaly per repeat.

    Rule: when the same territory × year × dossier × financeur appears on several lines (not
    exact duplicates, which are rejected), the last line of the export (the last file, then the
    last line) is kept; each earlier line is left out and reported: ``demande_en_conflit`` when
    its amounts differ from the kept line (both values in the message), ``doublon_dossier``
    when only other cells differ. Nothing is summed.
    """
    if df.empty:
        return df, []
    col = {c: df[c].to_numpy(dtype=object) for c in df.columns}
    keyed = df[["territoire", "annee", "dossier", "financeur_libelle"]].astype(object)
    has_dossier = ~_is_none(col["dossier"])
    positions = np.flatnonzero(has_dossier)
    groups = keyed.iloc[positions].groupby(list(keyed.columns), dropna=False, sort=False)
    last = pd.Series(positions).groupby(groups.ngroup().to_numpy()).transform("last").to_numpy()
    earlier = positions[last != positions]
    kept_of = dict(zip(positions, last, strict=True))
    anomalies: list[dict[str, Any]] = []
    for i in earlier:
        j = kept_of[i]

        def same(a: Any, b: Any) -> bool:
            return (not _given(a) and not _given(b)) or (_given(a) and _given(b) and a == b)

        conflict = not (
            same(col["montant_demande"][i], col["montant_demande"][j])
            and same(col["montant_accorde"][i], col["montant_accorde"][j])
        )
        dropped = _amounts_text(col["montant_demande"][i], col["montant_accorde"][i])
        kept = _amounts_text(col["montant_demande"][j], col["montant_accorde"][j])
        head = (
            f"{col['source_fichier'][i]}, ligne {col['source_ligne'][i]}: dossier "
            f"{col['dossier'][i]} × financeur « {col['financeur_libelle'][i]} » répété plus "
            f"loin ({col['source_fichier'][j]}, ligne {col['source_ligne'][j]})"
        )
        if conflict:
            message = (
                f"{head} avec d'autres montants ({dropped} ici; {kept} à la ligne "
                f"{col['source_ligne'][j]}): la dernière ligne de l'export est retenue, "
                "celle-ci n'est pas comptée (rien n'est additionné)"
            )
        else:
            message = (
                f"{head} avec les mêmes montants ({kept}) mais d'autres cellules: la dernière "
                "ligne est retenue, celle-ci n'est pas comptée"
            )
        anomalies.append(
            {
                "type": DEMANDE_EN_CONFLIT if conflict else "doublon_dossier",
                "fichier": col["source_fichier"][i],
                "ligne": col["source_ligne"][i],
                "dossier": col["dossier"][i],
                "colonne": None,
                "valeur_brute": f"{dropped} | retenu: {kept}",
                "message": message,
                "territoire": col["territoire"][i],
                "annee": col["annee"][i],
            }
        )
    keep = np.ones(len(df), dtype=bool)
    keep[earlier] = False
    return df[keep].reset_index(drop=True), anomalies


def qpv_scope_anomalies(
    df: pd.DataFrame, perimetre: dict[str, set[str]] | None
) -> list[dict[str, Any]]:
    """QPV codes outside the line's territory or geography (kept, reported once per line).

    ``qpv_autre_territoire``: a code of another territory's perimeter that is not in the line's
    own (territories without a perimeter are not checked); ``qpv_geographie``: a 2015 code
    (``QP``) in a programmation of 2024 or later, or a 2024 code (``QN``) before 2024.
    """
    if df.empty:
        return []
    owner: dict[str, set[str]] = {}
    for territoire, codes in (perimetre or {}).items():
        for code in codes:
            owner.setdefault(code, set()).add(territoire)
    col = {c: df[c].to_numpy(dtype=object) for c in df.columns}
    tags = df[["source_fichier", "source_feuille", "source_ligne"]].astype(object)
    first = ~tags.duplicated(keep="first").to_numpy()
    anomalies: list[dict[str, Any]] = []
    # the same territory × year × cell repeats from line to line: each one judged once
    verdicts: dict[tuple[Any, Any, str], tuple[str | None, str | None, str | None]] = {}
    for i in np.flatnonzero(first & ~_is_none(col["qpv_codes"])):
        territoire, annee = col["territoire"][i], col["annee"][i]
        expected = None
        if _given(annee):
            expected = "2024" if int(annee) >= GEOGRAPHIE_2024_DES else "2015"
        key = (territoire, expected, str(col["qpv_codes"][i]))
        verdict = verdicts.get(key)
        if verdict is None:
            verdict = verdicts[key] = _qpv_scope(key, perimetre, owner)
        others, wrong, _ = verdict
        if others is None and wrong is None:
            continue
        where = f"{col['source_fichier'][i]}, ligne {col['source_ligne'][i]}"
        if col["_qpv_colonne"][i]:
            where += f", colonne « {col['_qpv_colonne'][i]} »"
        base = {
            "fichier": col["source_fichier"][i],
            "ligne": col["source_ligne"][i],
            "dossier": col["dossier"][i],
            "colonne": col["_qpv_colonne"][i],
            "valeur_brute": col["_qpv_brut"][i],
        }
        if others is not None:
            anomalies.append(
                {
                    **base,
                    "type": "qpv_autre_territoire",
                    "message": (
                        f"{where}: QPV d'un autre territoire {others} dans une programmation "
                        f"de {territoire}: ligne gardée, à vérifier dans le fichier source"
                    ),
                }
            )
        if wrong is not None:
            anomalies.append(
                {
                    **base,
                    "type": "qpv_geographie",
                    "message": (
                        f"{where}: code QPV de la géographie "
                        f"{'2015' if expected == '2024' else '2024'} {wrong} dans une "
                        f"programmation {annee} (géographie {expected} attendue): ligne "
                        "gardée, à vérifier dans le fichier source"
                    ),
                }
            )
    return anomalies


def _qpv_scope(
    key: tuple[Any, str | None, str],
    perimetre: dict[str, set[str]] | None,
    owner: dict[str, set[str]],
) -> tuple[str | None, str | None, str | None]:
    """(codes of another territory, codes of the other geography, expected geography) of one
    territory × expected geography × QPV cell, each list as written in the message (None when
    there is none)."""
    territoire, expected, cell = key
    codes = [c for c in cell.split(";") if QPV_LIKE_IN_TEXT.fullmatch(c)]
    others: list[str] = []
    if perimetre and territoire in perimetre:
        own = perimetre[territoire]
        others = [c for c in codes if c not in own and owner.get(c, set()) - {territoire}]
    wrong: list[str] = []
    if expected is not None:
        wrong = [c for c in codes if geographie_of(c) not in (None, expected)]
    listed_others = (
        ", ".join(f"« {c} » ({', '.join(sorted(owner[c] - {territoire}))})" for c in others)
        if others
        else None
    )
    listed_wrong = ", ".join(f"« {c} »" for c in wrong) if wrong else None
    return listed_others, listed_wrong, expected


def _typed_programmations(df: pd.DataFrame) -> pd.DataFrame:
    for col in (
        "cout_total",
        "couts_indirects",
        "achats",
        "montant_demande",
        "montant_accorde",
        "part_public_qpv",
    ):
        df[col] = pd.to_numeric(df[col], errors="raise").astype("Float64")
    for col in ("annee", "cpo_duree", "rang_financement", "nombre_reunions_suivi", "source_ligne"):
        df[col] = pd.to_numeric(df[col], errors="raise").astype("Int64")
    for col in ("serie_pluriannuelle", "siret_valide", "cpo", "suivi_renforce", "projet_quartier"):
        df[col] = df[col].astype("boolean")
    return df


def _programmation_anomalies(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Anomalies of the rows (in their order): granted above requested, invalid SIRET (once per
    file × dossier × SIRET), then multi-year series."""
    if df.empty:
        return []
    col = {c: df[c].to_numpy(dtype=object) for c in df.columns}
    n = len(df)
    found: list[tuple[int, int, dict[str, Any]]] = []

    def where(i: int) -> dict[str, Any]:
        return {
            "fichier": col["source_fichier"][i],
            "ligne": col["source_ligne"][i],
            "dossier": col["dossier"][i],
        }

    demande, accorde = col["montant_demande"], col["montant_accorde"]
    both = ~_is_none(demande) & ~_is_none(accorde)
    for i in np.flatnonzero(both):
        if accorde[i] > demande[i]:
            found.append(
                (
                    i,
                    1,
                    {
                        "type": "accorde_superieur_demande",
                        **where(i),
                        "message": (
                            f"financeur « {col['financeur_libelle'][i]} »: montant accordé "
                            f"{_euros(accorde[i])} supérieur au montant demandé "
                            f"{_euros(demande[i])}"
                        ),
                    },
                )
            )
    invalid = np.array([v is False for v in col["siret_valide"]], dtype=bool)
    tags = df[["source_fichier", "dossier", "porteur_siret"]].astype(object)
    # a file × dossier × SIRET is reported once, at its first invalid row
    invalid_tags = tags[invalid]
    first_invalid = np.zeros(n, dtype=bool)
    first_invalid[np.flatnonzero(invalid)[~invalid_tags.duplicated(keep="first").to_numpy()]] = True
    for i in np.flatnonzero(first_invalid):
        found.append(
            (
                i,
                2,
                {
                    "type": "siret_invalide",
                    **where(i),
                    "message": (
                        f"SIRET/SIREN « {col['porteur_siret'][i] or col['porteur_siren'][i]} » "
                        f"du porteur « {col['porteur_nom'][i]} » invalide (clé de Luhn ou "
                        "longueur)"
                    ),
                },
            )
        )
    found.sort(key=lambda item: (item[0], item[1]))
    anomalies = [item[2] for item in found]
    series: dict[tuple[Any, Any], list[int]] = {}
    for i in np.flatnonzero(np.array([v is True for v in col["serie_pluriannuelle"]])):
        series.setdefault((col["territoire"][i], col["dossier_base"][i]), []).append(i)
    for (_territoire, base), members in series.items():
        parts = sorted(
            {(col["dossier"][m], col["annee"][m]) for m in members},
            key=lambda p: (str(p[0]), str(p[1])),
        )
        first = min(members, key=lambda m: (str(col["dossier"][m]), col["source_ligne"][m]))
        listing = ", ".join(f"{d} ({a})" for d, a in parts)
        anomalies.append(
            {
                "type": "serie_pluriannuelle",
                "fichier": col["source_fichier"][first],
                "ligne": col["source_ligne"][first],
                "dossier": base,
                "message": (
                    f"dossier pluriannuel {base}: {len(parts)} tranche(s) trouvée(s): {listing}"
                ),
            }
        )
    return anomalies


def _euros(value: float) -> str:
    return f"{value:,.2f} €".replace(",", " ").replace(".", ",")
