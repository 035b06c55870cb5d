"""Programmations: one row per action x financeur from the lines of the exports, and the
anomalies worth a look (kept, reported in ``raw.anomalies``, never fixed silently).

The lines come from :mod:`.reader` (header detection, aliases, line loop); the cells are parsed
by :mod:`.cells`. A line becomes one row per financeur: in the "long" layout (a ``Financeur``
column) the line is one financeur; in the "wide" layout each ``<financeur> - <demandé/accordé>``
pair of columns gives one row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.lib.codes import QPV_LIKE_IN_TEXT
from pipelines.lib.raw_schemas import ANOMALY_COLUMNS, REJECT_COLUMNS
from pipelines.sources.programmations.cells import (
    check_siret,
    parse_amount,
    parse_bool,
    parse_date,
    parse_marqueur,
    parse_share,
    parse_small_int,
    qpv_codes,
    split_code,
    split_dossier,
)
from pipelines.sources.programmations.reader import (
    Line,
    LineReject,
    RawTable,
    SuiviResult,
    context_of,
    frame,
    qpv_cell,
    run_tables,
)

QPV_INCONNU = "qpv_inconnu"

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
    rows: list[dict[str, Any]], code_field: str, known: set[str] | None
) -> list[dict[str, Any]]:
    """One ``qpv_inconnu`` anomaly per line naming a well-formed QPV code that no reference knows.

    ``known`` is the set of QPV codes of the references (see
    :func:`pipelines.sources.programmations.assets.known_qpv_codes`); ``None`` skips the check.
    The line is kept: an unknown code is reported, never dropped.
    """
    if known is None:
        return []
    anomalies: list[dict[str, Any]] = []
    reported: set[tuple[Any, ...]] = set()
    for row in rows:
        codes = row.get(code_field)
        if not codes:
            continue
        unknown = [
            c for c in str(codes).split(";") if QPV_LIKE_IN_TEXT.fullmatch(c) and c not in known
        ]
        tag = (row["source_fichier"], row.get("source_feuille"), row["source_ligne"])
        if not unknown or tag in reported:
            continue
        reported.add(tag)
        where = str(row["source_fichier"])
        if row.get("source_feuille"):
            where += f", feuille « {row['source_feuille']} »"
        where += f", ligne {row['source_ligne']}"
        if row.get("_qpv_colonne"):
            where += f", colonne « {row['_qpv_colonne']} »"
        listed = ", ".join(f"« {c} »" for c in unknown)
        anomalies.append(
            {
                "type": QPV_INCONNU,
                "fichier": row["source_fichier"],
                "ligne": row["source_ligne"],
                "dossier": row.get("dossier"),
                "colonne": row.get("_qpv_colonne"),
                "valeur_brute": row.get("_qpv_brut"),
                "message": (
                    f"{where}: code QPV inconnu {listed} (absent des contours, de la liste "
                    "officielle, des bases INSEE et du périmètre des contrats): ligne gardée, "
                    "à corriger dans le fichier source"
                ),
            }
        )
    return anomalies


# --------------------------------------------------------------------------------------------
# Programmations
# --------------------------------------------------------------------------------------------


def _build_programmation(table: RawTable, line: Line, line_no: int) -> list[dict[str, Any]]:
    ctx = context_of(table, line)
    dossier = line.text("dossier")
    intitule = line.text("intitule")
    if dossier is None and intitule is None:
        raise LineReject(
            None, None, "ligne sans numéro de dossier ni intitulé (ligne de total ou sous-titre ?)"
        )
    dossier_base, serie = split_dossier(dossier)
    siret, siren, siret_ok = check_siret(line.raw("porteur_siret"))
    orientation_code, orientation_libelle = split_code(line.raw("orientation"))
    objectif_code, objectif_libelle = split_code(line.raw("objectif"))
    sous_code, sous_libelle = split_code(line.raw("sous_objectif"))
    objectif_parent = None
    if sous_code is not None:
        objectif_parent = objectif_code
        objectif_code, objectif_libelle = sous_code, sous_libelle
    base = {
        **ctx,
        "dossier": dossier,
        "dossier_base": dossier_base,
        "serie_pluriannuelle": serie,
        "porteur_nom": line.text("porteur_nom"),
        "porteur_siret": siret,
        "porteur_siren": siren,
        "siret_valide": siret_ok,
        "porteur_type": line.text("porteur_type"),
        "intitule": intitule,
        "orientation_code": orientation_code,
        "orientation_libelle": orientation_libelle,
        "objectif_code": objectif_code,
        "objectif_libelle": objectif_libelle,
        "objectif_parent_code": objectif_parent,
        "qpv_codes": qpv_codes(line.raw("qpv")),
        "qpv_texte": line.text("qpv"),
        **qpv_cell(table, line, "qpv"),
        "echelle": line.text("echelle"),
        "statut_libelle": line.text("statut"),
        "cout_total": line.get("cout_total", parse_amount),
        "couts_indirects": line.get("couts_indirects", parse_amount),
        "achats": line.get("achats", parse_amount),
        "nature_subvention": line.text("nature_subvention"),
        "type_credits": line.text("type_credits"),
        "rang_financement": line.get("rang_financement", parse_small_int),
        "cpo": line.get("cpo", parse_bool),
        "cpo_duree": line.get("cpo_duree", parse_small_int),
        "marqueur_egalite": line.get("marqueur_egalite", parse_marqueur),
        "part_public_qpv": line.get("part_public_qpv", parse_share),
        "date_debut_action": line.get("date_debut_action", parse_date),
        "date_fin_action": line.get("date_fin_action", parse_date),
        "date_bilan": line.get("date_bilan", parse_date),
        "date_bilan_intermediaire": line.get("date_bilan_intermediaire", parse_date),
        "date_demande_report": line.get("date_demande_report", parse_date),
        "nombre_reunions_suivi": line.get("nombre_reunions_suivi", parse_small_int),
        "suivi_renforce": line.get("suivi_renforce", parse_bool),
        "volet_regional": line.text("volet_regional"),
        "autres_colonnes": line.others_json(),
        "source_fichier": table.path.name,
        "source_feuille": table.feuille,
        "source_ligne": line_no,
    }
    if base["cpo"] is None and base["cpo_duree"]:
        base["cpo"] = base["cpo_duree"] > 1
    fields = table.cmap.fields
    if "financeur" in fields or "montant_demande" in fields or "montant_accorde" in fields:
        return [
            {
                **base,
                "financeur_libelle": line.text("financeur"),
                "montant_demande": line.get("montant_demande", parse_amount),
                "montant_accorde": line.get("montant_accorde", parse_amount),
            }
        ]
    amounts: dict[str, dict[str, float | None]] = {}
    for label, measure, idx in table.cmap.wide:
        value = line.parse_cell(idx, parse_amount)
        amounts.setdefault(label, {"montant_demande": None, "montant_accorde": None})
        if value is not None:
            amounts[label][measure] = value
    produced = [
        {**base, "financeur_libelle": label, **values}
        for label, values in amounts.items()
        if values["montant_demande"] is not None or values["montant_accorde"] is not None
    ]
    if not produced:
        produced = [
            {**base, "financeur_libelle": None, "montant_demande": None, "montant_accorde": None}
        ]
    return produced


def parse_programmations(
    paths: list[Path], extra_aliases: Path | None = None, known_qpv: set[str] | None = None
) -> SuiviResult:
    """Parse programmation files into one row per action × financeur.

    See the module docstring for the accepted layouts. Rows that cannot be loaded go to
    ``.rejects`` (file, line, column, raw value, reason); rows kept but worth a look go to
    ``.anomalies`` (duplicate dossier × financeur, multi-year series, granted above requested,
    invalid SIRET, and with ``known_qpv`` a QPV code absent from the references). For every file,
    ``lignes_lues = lignes_chargees + lignes_rejetees``.
    """
    rows, rejects, files = run_tables(
        list(paths), extra_aliases, PROGRAMMATION_FIELDS, "programmations", _build_programmation
    )
    frame_rows = frame(rows, PROGRAMMATION_COLUMNS)
    frame_rows = _typed_programmations(frame_rows)
    anomalies = _programmation_anomalies(rows) + unknown_qpv_anomalies(rows, "qpv_codes", known_qpv)
    return SuiviResult(
        rows=frame_rows,
        rejects=frame(rejects, REJECT_COLUMNS),
        anomalies=frame(anomalies, ANOMALY_COLUMNS),
        files=files,
    )


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
    for col in ("serie_pluriannuelle", "siret_valide", "cpo", "suivi_renforce"):
        df[col] = df[col].astype("boolean")
    return df


def _programmation_anomalies(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    anomalies: list[dict[str, Any]] = []
    first_seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    siret_reported: set[tuple[Any, ...]] = set()
    series: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for row in rows:
        where = {
            "fichier": row["source_fichier"],
            "ligne": row["source_ligne"],
            "dossier": row["dossier"],
        }
        key = (row["territoire"], row["annee"], row["dossier"], row["financeur_libelle"])
        if row["dossier"] is not None:
            if key in first_seen:
                first = first_seen[key]
                anomalies.append(
                    {
                        "type": "doublon_dossier",
                        **where,
                        "message": (
                            f"dossier {row['dossier']} × financeur « {row['financeur_libelle']} » "
                            f"déjà présent ({first['source_fichier']}, "
                            f"ligne {first['source_ligne']}) "
                            "avec des valeurs différentes: les deux lignes sont gardées"
                        ),
                    }
                )
            else:
                first_seen[key] = row
        demande, accorde = row["montant_demande"], row["montant_accorde"]
        if demande is not None and accorde is not None and accorde > demande:
            anomalies.append(
                {
                    "type": "accorde_superieur_demande",
                    **where,
                    "message": (
                        f"financeur « {row['financeur_libelle']} »: montant accordé "
                        f"{_euros(accorde)} supérieur au montant demandé {_euros(demande)}"
                    ),
                }
            )
        if row["siret_valide"] is False:
            tag = (row["source_fichier"], row["dossier"], row["porteur_siret"])
            if tag not in siret_reported:
                siret_reported.add(tag)
                anomalies.append(
                    {
                        "type": "siret_invalide",
                        **where,
                        "message": (
                            f"SIRET/SIREN « {row['porteur_siret'] or row['porteur_siren']} » du "
                            f"porteur « {row['porteur_nom']} » invalide (clé de Luhn ou longueur)"
                        ),
                    }
                )
        if row["serie_pluriannuelle"]:
            series.setdefault((row["territoire"], row["dossier_base"]), []).append(row)
    for (_territoire, base), members in series.items():
        parts = sorted({(m["dossier"], m["annee"]) for m in members}, key=lambda p: str(p[0]))
        first = min(members, key=lambda m: (str(m["dossier"]), m["source_ligne"]))
        listing = ", ".join(f"{d} ({a})" for d, a in parts)
        anomalies.append(
            {
                "type": "serie_pluriannuelle",
                "fichier": first["source_fichier"],
                "ligne": first["source_ligne"],
                "dossier": base,
                "message": (
                    f"dossier pluriannuel {base}: {len(parts)} tranche(s) trouvée(s): {listing}"
                ),
            }
        )
    return anomalies


def _euros(value: float) -> str:
    return f"{value:,.2f} €".replace(",", " ").replace(".", ",")
