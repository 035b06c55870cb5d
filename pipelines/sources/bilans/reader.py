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
}

HORS_QPV = "HORS_QPV"
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


def _build_bilan(table: RawTable, line: Line, line_no: int) -> list[dict[str, Any]]:
    ctx = context_of(table, line)
    dossier = line.text("dossier")
    if dossier is None:
        raise LineReject(None, None, "ligne sans numéro de dossier (ligne de total ?)")
    residence_field = "qpv_residence" if "qpv_residence" in table.cmap.fields else "qpv"
    row: dict[str, Any] = {
        **ctx,
        "dossier": dossier,
        "action_realisee": line.get("action_realisee", parse_bool),
        "qpv_residence": (
            line.get(residence_field, parse_residence)
            if residence_field in table.cmap.fields
            else NON_RENSEIGNE
        ),
        "date_bilan": line.get("date_bilan", parse_date),
        **qpv_cell(table, line, residence_field),
        "autres_colonnes": line.others_json(),
        "source_fichier": table.path.name,
        "source_feuille": table.feuille,
        "source_ligne": line_no,
    }
    for column in COUNT_COLUMNS:
        row[column] = line.get(column, parse_count)
    return [row]


def parse_bilans(
    paths: list[Path], extra_aliases: Path | None = None, known_qpv: set[str] | None = None
) -> SuiviResult:
    """Parse bilan files into one row per action × QPV of residence.

    ``.anomalies`` reports lines whose age total differs from their sex total
    (``incoherence_totaux``), repeated action × residence pairs (``doublon_dossier``) and, with
    ``known_qpv``, a residence QPV code absent from the references (``qpv_inconnu``).
    """
    rows, rejects, files = run_tables(
        list(paths), extra_aliases, BILAN_FIELDS, "bilans", _build_bilan
    )
    anomalies: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        where = {
            "fichier": row["source_fichier"],
            "ligne": row["source_ligne"],
            "dossier": row["dossier"],
        }
        sexes = sum(row[c] or 0 for c in SEX_COLUMNS)
        ages = sum(row[c] or 0 for c in AGE_COLUMNS)
        if any(row[c] is not None for c in AGE_COLUMNS) and sexes != ages:
            anomalies.append(
                {
                    "type": "incoherence_totaux",
                    **where,
                    "message": (
                        f"total par tranche d'âge ({ages}) différent du total par sexe ({sexes})"
                    ),
                }
            )
        key = (row["territoire"], row["annee"], row["dossier"], row["qpv_residence"])
        if key in seen:
            anomalies.append(
                {
                    "type": "doublon_dossier",
                    **where,
                    "message": (
                        f"dossier {row['dossier']} × résidence {row['qpv_residence']} déjà présent "
                        f"({seen[key]['source_fichier']}, ligne {seen[key]['source_ligne']})"
                    ),
                }
            )
        else:
            seen[key] = row
    anomalies += unknown_qpv_anomalies(rows, "qpv_residence", known_qpv)
    df = frame(rows, BILAN_COLUMNS)
    for column in [*COUNT_COLUMNS, "annee", "source_ligne"]:
        df[column] = pd.to_numeric(df[column], errors="raise").astype("Int64")
    df["action_realisee"] = df["action_realisee"].astype("boolean")
    return SuiviResult(
        rows=df,
        rejects=frame(rejects, REJECT_COLUMNS),
        anomalies=frame(anomalies, ANOMALY_COLUMNS),
        files=files,
    )
