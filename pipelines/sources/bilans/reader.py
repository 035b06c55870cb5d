"""Read action bilans (beneficiaries per action × QPV of residence) of any layout.

A bilan line gives, for one action and one place of residence (a QPV code, ``Hors QPV`` or
``Non renseigné``), the beneficiaries by sex, by age band and by public type. Files are read with
the same header detection and value parsers as the programmations
(:mod:`pipelines.sources.programmations`). Counts must be non-negative integers or the line is
rejected with the column named; a line whose age total differs from its sex total is kept and
reported as ``incoherence_totaux``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.lib.cells import fold
from pipelines.lib.raw_schemas import ANOMALY_COLUMNS, REJECT_COLUMNS
from pipelines.sources.programmations.cells import (
    cell_text,
    parse_bool,
    parse_count,
    parse_date,
    qpv_codes,
)
from pipelines.sources.programmations.columns import TableColumns, run_tables_columns
from pipelines.sources.programmations.reader import SuiviResult, frame
from pipelines.sources.programmations.rules import unknown_qpv_anomalies

SEX_COLUMNS = ["femmes", "hommes", "sexe_non_renseigne"]
AGE_COLUMNS = ["age_moins_16", "age_16_25", "age_26_64", "age_65_plus", "age_non_renseigne"]
PUBLIC_COLUMNS = [
    "demandeurs_emploi",
    "beneficiaires_rsa",
    "familles_monoparentales",
    "personnes_handicap",
]
COUNT_COLUMNS = SEX_COLUMNS + AGE_COLUMNS + PUBLIC_COLUMNS

BILAN_COLUMNS = [
    "territoire",
    "annee",
    "dossier",
    "action_realisee",
    "qpv_residence",
    *COUNT_COLUMNS,
    "date_bilan",
    "autres_colonnes",
    "source_fichier",
    "source_feuille",
    "source_ligne",
]

BILAN_FIELDS = {
    "territoire",
    "annee",
    "dossier",
    "intitule",
    "action_realisee",
    "qpv_residence",
    "qpv",
    "date_bilan",
    *COUNT_COLUMNS,
    "total_beneficiaires",
}

HORS_QPV = "HORS_QPV"
DATE_ILLISIBLE = "date_illisible"
NON_RENSEIGNE = "NON_RENSEIGNE"


def parse_residence(value: Any) -> str:
    """A QPV code, ``HORS_QPV`` (``Hors QPV``, ``Hors quartier``...) or ``NON_RENSEIGNE``."""
    text = cell_text(value)
    if text is None:
        return NON_RENSEIGNE
    codes = qpv_codes(text)
    if codes and codes != "TOUS":
        if ";" in codes:
            raise ValueError("un seul QPV de résidence attendu par ligne")
        return codes
    folded = fold(text)
    if folded.startswith("hors") or folded in {"autre", "autres", "hors qpv"}:
        return HORS_QPV
    if "renseign" in folded or "inconnu" in folded or folded in {"nc", "nr", "ne sait pas"}:
        return NON_RENSEIGNE
    raise ValueError("QPV de résidence non reconnu (code QPV, « Hors QPV » ou « Non renseigné »)")


#: A count of this many beneficiaries or more on one line is a typing error: the line is
#: rejected (a 21-digit number would not even fit the warehouse's integers).
COUNT_LIMIT = 1_000_000


def _checked_count(value: Any) -> int | None:
    count = parse_count(value)
    if count is not None and count >= COUNT_LIMIT:
        raise ValueError("effectif aberrant (1 000 000 ou plus: erreur de saisie ?)")
    return count


def _bilan_frame(view: TableColumns) -> pd.DataFrame:
    """The rows (action × QPV of residence) of a table's candidate lines, column by column."""
    territoire, annee = view.context()
    dossier = view.text("dossier")
    view.fail(
        np.array([d is None for d in dossier], dtype=bool),
        None,
        None,
        "ligne sans numéro de dossier (ligne de total ?)",
    )
    residence_field = "qpv_residence" if view.has("qpv_residence") else "qpv"
    residence_idx = view.index_of(residence_field)
    action_realisee = view.parse("action_realisee", parse_bool)
    if residence_idx is not None:
        residence = view.parse_at(residence_idx, parse_residence)
    else:
        residence = np.full(len(view), NON_RENSEIGNE, dtype=object)
    row: dict[str, Any] = {
        "territoire": territoire,
        "annee": annee,
        "dossier": dossier,
        "action_realisee": action_realisee,
        "qpv_residence": residence,
        "date_bilan": view.optional("date_bilan", parse_date, DATE_ILLISIBLE),
        "_qpv_colonne": None if residence_idx is None else view.column_name(residence_idx),
        "_qpv_brut": view.text(residence_field),
        "autres_colonnes": view.others_json(),
        "source_fichier": view.table.path.name,
        "source_feuille": view.table.feuille,
        "source_ligne": view.lines.astype(object),
        "_position": np.arange(len(view)),
        "_total_colonne": (
            view.column_name(view.index_of("total_beneficiaires"))
            if view.has("total_beneficiaires")
            else None
        ),
    }
    for column in [*COUNT_COLUMNS, "total_beneficiaires"]:
        row[column] = view.parse(column, _checked_count)
    return pd.DataFrame(row)


def parse_bilans(
    paths: list[Path], extra_aliases: Path | None = None, known_qpv: set[str] | None = None
) -> SuiviResult:
    """Parse bilan files into one row per action × QPV of residence.

    ``.anomalies`` reports lines whose age total differs from their sex total
    (``incoherence_totaux``), whose « Total » column differs from women + men (+ sex not given)
    (``incoherence_total``), repeated action × residence pairs (``doublon_dossier``) and, with
    ``known_qpv``, a residence QPV code absent from the references (``qpv_inconnu``).
    """
    frames, rejects, flagged, files = run_tables_columns(
        list(paths), extra_aliases, BILAN_FIELDS, "bilans", _bilan_frame
    )
    built = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    built = built.reindex(
        columns=[
            *BILAN_COLUMNS,
            "total_beneficiaires",
            "_total_colonne",
            "_qpv_colonne",
            "_qpv_brut",
        ]
    )
    anomalies = (
        flagged + _bilan_anomalies(built) + unknown_qpv_anomalies(built, "qpv_residence", known_qpv)
    )
    df = built[BILAN_COLUMNS].copy()
    for column in [*COUNT_COLUMNS, "annee", "source_ligne"]:
        df[column] = pd.to_numeric(df[column], errors="raise").astype("Int64")
    df["action_realisee"] = df["action_realisee"].astype("boolean")
    return SuiviResult(
        rows=df,
        rejects=frame(rejects, REJECT_COLUMNS),
        anomalies=frame(anomalies, ANOMALY_COLUMNS),
        files=files,
    )


def _bilan_anomalies(df: pd.DataFrame) -> list[dict[str, Any]]:
    if df.empty:
        return []
    col = {c: df[c].to_numpy(dtype=object) for c in df.columns}

    def total(columns: list[str]) -> np.ndarray:
        out = np.zeros(len(df), dtype=object)
        for c in columns:
            out = out + np.array([0 if v is None or v != v else v for v in col[c]], dtype=object)
        return out

    def given(columns: list[str]) -> np.ndarray:
        present = np.zeros(len(df), dtype=bool)
        for c in columns:
            present |= np.array([v is not None and v == v for v in col[c]], dtype=bool)
        return present

    sexes, ages = total(SEX_COLUMNS), total(AGE_COLUMNS)
    age_mismatch = given(AGE_COLUMNS) & (sexes != ages)
    stated = col["total_beneficiaires"]
    total_mismatch = np.array(
        [t is not None and t == t and t != s for t, s in zip(stated, sexes, strict=True)],
        dtype=bool,
    )
    key = df[["territoire", "annee", "dossier", "qpv_residence"]].astype(object)
    groups = key.groupby(list(key.columns), dropna=False, sort=False)
    rank = groups.cumcount().to_numpy()
    first = pd.Series(np.arange(len(df))).groupby(groups.ngroup().to_numpy()).transform("first")
    anomalies: list[dict[str, Any]] = []
    for i in range(len(df)):
        if not (age_mismatch[i] or total_mismatch[i] or rank[i]):
            continue
        where = {
            "fichier": col["source_fichier"][i],
            "ligne": col["source_ligne"][i],
            "dossier": col["dossier"][i],
        }
        if age_mismatch[i]:
            anomalies.append(
                {
                    "type": "incoherence_totaux",
                    **where,
                    "message": (
                        f"total par tranche d'âge ({ages[i]}) différent du total par sexe "
                        f"({sexes[i]})"
                    ),
                }
            )
        if total_mismatch[i]:
            anomalies.append(
                {
                    "type": "incoherence_total",
                    **where,
                    "colonne": col["_total_colonne"][i],
                    "valeur_brute": str(stated[i]),
                    "message": (
                        f"{col['source_fichier'][i]}, ligne {col['source_ligne'][i]}: total des "
                        f"bénéficiaires ({stated[i]}) différent de femmes + hommes + sexe non "
                        f"renseigné ({sexes[i]}): ligne gardée, à corriger dans le fichier source"
                    ),
                }
            )
        if rank[i]:
            j = first.iloc[i]
            anomalies.append(
                {
                    "type": "doublon_dossier",
                    **where,
                    "message": (
                        f"dossier {col['dossier'][i]} × résidence {col['qpv_residence'][i]} déjà "
                        f"présent ({col['source_fichier'][j]}, ligne {col['source_ligne'][j]})"
                    ),
                }
            )
    return anomalies
