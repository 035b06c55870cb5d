"""Read action bilans (beneficiaries per action × QPV of residence) of any layout.

A bilan row gives, for one action and one place of residence (a QPV code, ``Hors QPV`` or
``Non renseigné``), the beneficiaries by sex, by age band and by public type, and for the action
(repeated on each of its rows): realised or not (oui / non / partiellement) and why, the
beneficiaries planned, a result expected and obtained, residents' participation (yes/no, how) and
how the public was mobilised (seed 004's bilan). Two layouts, CSV or XLSX, headers in any
wording of ``entetes_alias.csv``:

* **wide**: one line per action × residence, one column per sex / age band / public. Age bands
  are read as declared (any header :func:`.contenu.parse_band` understands, ``0-5 ans``, ``60 ans
  et plus``) and added to the canonical band that contains them (:mod:`.contenu`); a band
  outside the référentiel is kept (``effectifs_declares``) and reported
  (``tranche_age_hors_referentiel``).
* **long**: one line per action × residence × sex, band or public (a « Tranche d'âge ou public »
  column and an « Effectif » column); the lines of an action × residence make one row. An
  unknown value is kept and reported (``modalite_inconnue``).

Files are read with the same header detection and value parsers as the programmations
(:mod:`pipelines.sources.programmations`). Counts must be non-negative integers or the line is
rejected with the column named; the optional fields of the action (planned beneficiaries,
results, participation) are emptied and reported when unreadable, the line kept. A line whose
age total differs from its sex total is reported as ``incoherence_totaux``, bands summing to
more than the stated total or a public larger than the total as ``effectif_superieur_total``.

Why this module is long: a bilan is one source read in two layouts that must give the same row
(the wide columns and the long lines meet in the same counts, the same declared bands and the
same anomalies), and the coherence checks of a row (sexes, bands, publics, stated total,
repeated action × residence) read all of its counts together; the référentiels and the small
cell parsers live apart in :mod:`.contenu`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.lib.cells import fold
from pipelines.lib.raw_schemas import ANOMALY_COLUMNS, REJECT_COLUMNS
from pipelines.sources.bilans.contenu import (
    band_of_column,
    canonical_band,
    parse_band,
    parse_realisation,
    participation_forms,
    public_types,
)
from pipelines.sources.programmations.cells import (
    cell_text,
    parse_bool,
    parse_count,
    parse_date,
    qpv_codes,
)
from pipelines.sources.programmations.columns import TableColumns, run_tables_columns
from pipelines.sources.programmations.reader import (
    RawTable,
    SuiviResult,
    frame,
    header_key,
    load_aliases,
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
#: Beyond the counts: the stated total of the row, what the bilan says of the action itself (the
#: same on each of its rows) and every declared band/public as JSON (``effectifs_declares``).
ACTION_COLUMNS = [
    "realisation",
    "motif_non_realisation",
    "total_beneficiaires",
    "beneficiaires_prevus",
    "indicateur_resultat",
    "resultat_attendu",
    "resultat_obtenu",
    "participation_habitants",
    "participation_modalites",
    "participation_formes",
    "mobilisation_publics",
    "effectifs_declares",
]

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
    *ACTION_COLUMNS,
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
    "motif_non_realisation",
    "beneficiaires_prevus",
    "indicateur_resultat",
    "resultat_attendu",
    "resultat_obtenu",
    "participation_habitants",
    "participation_modalites",
    "mobilisation_publics",
    "modalite",
    "effectif",
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


def _add(a: Any, b: Any) -> Any:
    """Sum of two counts where None is « not given » (None + None stays None)."""
    if a is None or a != a:
        return b
    if b is None or b != b:
        return a
    return a + b


def _declared(dimension: str, code: str | None, libelle: str, fichier: str, n: Any) -> dict:
    return {
        "dimension": dimension,
        "code": code,
        "libelle": libelle,
        "libelle_fichier": fichier,
        "effectif": int(n),
    }


def _action_fields(view: TableColumns) -> dict[str, Any]:
    """The action's own answers (realisation, planned beneficiaries, results, participation):
    an unreadable optional cell is emptied and reported, the line kept."""
    realisation = view.parse("action_realisee", parse_realisation)
    modalites = view.text("participation_modalites")
    return {
        "realisation": realisation,
        "action_realisee": np.array(
            [None if r is None else r != "non" for r in realisation], dtype=object
        ),
        "motif_non_realisation": view.text("motif_non_realisation"),
        "beneficiaires_prevus": view.optional(
            "beneficiaires_prevus", _checked_count, "effectif_illisible"
        ),
        "indicateur_resultat": view.text("indicateur_resultat"),
        "resultat_attendu": view.optional("resultat_attendu", _checked_count, "effectif_illisible"),
        "resultat_obtenu": view.optional("resultat_obtenu", _checked_count, "effectif_illisible"),
        "participation_habitants": view.optional(
            "participation_habitants", parse_bool, "participation_illisible"
        ),
        "participation_modalites": modalites,
        "participation_formes": np.array(
            [";".join(participation_forms(m)) or None for m in modalites], dtype=object
        ),
        "mobilisation_publics": view.text("mobilisation_publics"),
    }


def _bilan_frame(
    view: TableColumns, aliases: dict[str, str], table_anomalies: list[dict[str, Any]]
) -> pd.DataFrame:
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
    action = _action_fields(view)
    if residence_idx is not None:
        residence = view.parse_at(residence_idx, parse_residence)
    else:
        residence = np.full(len(view), NON_RENSEIGNE, dtype=object)
    long_layout = view.has("modalite") and view.has("effectif")
    bands = [] if long_layout else _band_columns(view)
    row: dict[str, Any] = {
        "territoire": territoire,
        "annee": annee,
        "dossier": dossier,
        "qpv_residence": residence,
        **action,
        "date_bilan": view.optional("date_bilan", parse_date, DATE_ILLISIBLE),
        "_qpv_colonne": None if residence_idx is None else view.column_name(residence_idx),
        "_qpv_brut": view.text(residence_field),
        "autres_colonnes": view.others_json(exclude={idx for idx, _ in bands}),
        "source_fichier": view.file_names(),
        "source_feuille": view.sheets(),
        "source_ligne": view.lines.astype(object),
        "_position": np.arange(len(view)),
        "_total_colonne": (
            view.column_name(view.index_of("total_beneficiaires"))
            if view.has("total_beneficiaires")
            else None
        ),
    }
    if long_layout:
        return _long_rows(view, row, aliases)
    for column in [*COUNT_COLUMNS, "total_beneficiaires"]:
        row[column] = view.parse(column, _checked_count)
    declared: list[list[dict[str, Any]]] = [[] for _ in range(len(view))]
    outside = np.zeros(len(view), dtype=object)
    for column in AGE_COLUMNS + PUBLIC_COLUMNS:
        if not view.has(column):
            continue
        name = view.column_name(view.index_of(column))
        if column in AGE_COLUMNS:
            band = band_of_column(column)
            what = ("tranche_age", band.code, band.libelle)
        else:
            what = ("public", column, public_types()[column])
        for i, n in enumerate(row[column]):
            if n is not None:
                declared[i].append(_declared(*what, name, n))
    for idx, band in bands:
        name = view.column_name(idx)
        values = view.parse_at(idx, _checked_count)
        for i, n in enumerate(values):
            if n is None:
                continue
            if band is None:
                outside[i] += n
                declared[i].append(_declared("tranche_age", None, name, name, n))
            else:
                row[band.colonne][i] = _add(row[band.colonne][i], n)
                declared[i].append(_declared("tranche_age", band.code, band.libelle, name, n))
    outside_bands = [view.column_name(idx) for idx, band in bands if band is None]
    for table in view.tables:  # one anomaly per table's header cell
        table_anomalies += [_outside_band(table, name) for name in outside_bands]
    row["effectifs_declares"] = np.array(
        [json.dumps(d, ensure_ascii=False) if d else None for d in declared], dtype=object
    )
    row["_ages_hors_referentiel"] = outside
    return pd.DataFrame(row)


def _band_columns(view: TableColumns) -> list[tuple[int, Any]]:
    """The unmapped columns whose header is an age band: (column, canonical band or None)."""
    found = []
    for idx in view.table.cmap.others:
        bounds = parse_band(view.column_name(idx))
        if bounds is not None:
            found.append((idx, canonical_band(bounds)))
    return found


def _outside_band(table: RawTable, name: str) -> dict[str, Any]:
    where = table.path.name + (f", feuille « {table.feuille} »" if table.feuille else "")
    return {
        "type": "tranche_age_hors_referentiel",
        "fichier": table.path.name,
        "ligne": table.header_line,
        "dossier": None,
        "colonne": name,
        "valeur_brute": name,
        "message": (
            f"{where}, ligne {table.header_line}, colonne « {name} »: tranche d'âge à cheval "
            "sur deux tranches du référentiel (moins de 16 ans, 16-25, 26-64, 65 ans et plus): "
            "effectifs gardés tels que déclarés, hors des tranches canoniques"
        ),
    }


def _long_rows(view: TableColumns, row: dict[str, Any], aliases: dict[str, str]) -> pd.DataFrame:
    """Long layout: one line per action × residence × sex/band/public, grouped into one row per
    action × residence (first line's number and action answers)."""
    idx = view.index_of("modalite")
    name = view.column_name(idx)
    labels = view.text("modalite")
    view.fail(
        np.array([t is None for t in labels], dtype=bool),
        name,
        view.raw_at(idx),
        "modalité vide (sexe, tranche d'âge ou type de public attendu)",
    )
    effectif = view.parse("effectif", _checked_count)
    kinds = np.empty(len(view), dtype=object)
    kinds[:] = [_modality(t, aliases) for t in labels]
    unknown = np.array([k is not None and k[0] == "inconnue" for k in kinds], dtype=bool)
    outside = np.array([k is not None and k[0] == "hors" for k in kinds], dtype=bool)
    if unknown.any():
        view.flag(
            unknown,
            "modalite_inconnue",
            idx,
            "modalité inconnue (ni sexe, ni tranche d'âge, ni type de public du référentiel): "
            "effectif gardé tel que déclaré, hors référentiel",
        )
    if outside.any():
        view.flag(
            outside,
            "tranche_age_hors_referentiel",
            idx,
            "tranche d'âge à cheval sur deux tranches du référentiel (moins de 16 ans, 16-25, "
            "26-64, 65 ans et plus): effectif gardé tel que déclaré, hors des tranches canoniques",
        )
    keep = np.flatnonzero(~view.error)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i in keep:
        key = (
            view.table_of[i],
            row["territoire"][i],
            row["annee"][i],
            row["dossier"][i],
            row["qpv_residence"][i],
        )
        groups.setdefault(key, []).append(int(i))
    out: list[dict[str, Any]] = []
    for positions in groups.values():
        first = positions[0]
        record = {
            k: (v[first] if isinstance(v, np.ndarray) else v)
            for k, v in row.items()
            if not k.startswith("_") or k in {"_position", "_qpv_colonne", "_total_colonne"}
        }
        record["_qpv_brut"] = row["_qpv_brut"][first]
        counts: dict[str, Any] = dict.fromkeys([*COUNT_COLUMNS, "total_beneficiaires"])
        declared: list[dict[str, Any]] = []
        hors = 0
        for i in positions:
            n, kind, label = effectif[i], kinds[i], labels[i]
            if n is None or kind is None:
                continue
            what, field_name, libelle = kind
            if field_name is not None:
                counts[field_name] = _add(counts[field_name], n)
            if what == "tranche_age":
                declared.append(_declared(what, _band_code(field_name), libelle, label, n))
            elif what == "public":
                declared.append(_declared(what, field_name, libelle, label, n))
            elif what == "hors":
                hors += n
                declared.append(_declared("tranche_age", None, label, label, n))
            elif what == "inconnue":
                declared.append(_declared("inconnue", None, label, label, n))
        record.update(counts)
        record["effectifs_declares"] = (
            json.dumps(declared, ensure_ascii=False) if declared else None
        )
        record["_ages_hors_referentiel"] = hors
        out.append(record)
    extra = [*COUNT_COLUMNS, "total_beneficiaires", "effectifs_declares", "_ages_hors_referentiel"]
    return pd.DataFrame(out, columns=list(dict.fromkeys([*row.keys(), *extra])))


def _band_code(column: str | None) -> str | None:
    return None if column is None else band_of_column(column).code


def _modality(text: str | None, aliases: dict[str, str]) -> tuple[str, str | None, str] | None:
    """(what, field, French label) of a long-layout value: a sex, age band, public or total
    field; ``hors`` for an age band outside the référentiel; ``inconnue`` otherwise."""
    if text is None:
        return None
    champ = aliases.get(header_key(text))
    if champ in SEX_COLUMNS:
        return ("sexe", champ, text)
    if champ == "total_beneficiaires":
        return ("total", champ, text)
    if champ in AGE_COLUMNS:
        band = band_of_column(champ)
        return ("tranche_age", champ, band.libelle)
    if champ in PUBLIC_COLUMNS:
        return ("public", champ, public_types()[champ])
    bounds = parse_band(text)
    if bounds is not None:
        band = canonical_band(bounds)
        if band is None:
            return ("hors", None, text)
        return ("tranche_age", band.colonne, band.libelle)
    return ("inconnue", None, text)


def parse_bilans(
    paths: list[Path], extra_aliases: Path | None = None, known_qpv: set[str] | None = None
) -> SuiviResult:
    """Parse bilan files into one row per action × QPV of residence.

    ``.anomalies`` reports lines whose age total differs from their sex total
    (``incoherence_totaux``), whose « Total » column differs from women + men (+ sex not given)
    (``incoherence_total``), whose age bands add up to more than the stated total or whose
    public count exceeds the total (``effectif_superieur_total``), age bands outside the
    référentiel (``tranche_age_hors_referentiel``), unknown long-layout values
    (``modalite_inconnue``), unreadable optional cells (``effectif_illisible``,
    ``participation_illisible``), an action's answers that differ between its lines
    (``incoherence_action``), repeated action × residence pairs (``doublon_dossier``) and,
    with ``known_qpv``, a residence QPV code absent from the references (``qpv_inconnu``).
    """
    aliases = load_aliases(extra_aliases)
    table_anomalies: list[dict[str, Any]] = []
    frames, rejects, flagged, files = run_tables_columns(
        list(paths),
        extra_aliases,
        BILAN_FIELDS,
        "bilans",
        lambda view: _bilan_frame(view, aliases, table_anomalies),
    )
    built = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    built = built.reindex(
        columns=[
            *BILAN_COLUMNS,
            "_total_colonne",
            "_qpv_colonne",
            "_qpv_brut",
            "_ages_hors_referentiel",
        ]
    )
    anomalies = (
        table_anomalies
        + flagged
        + _bilan_anomalies(built)
        + unknown_qpv_anomalies(built, "qpv_residence", known_qpv)
    )
    df = built[BILAN_COLUMNS].copy()
    for column in [
        *COUNT_COLUMNS,
        "total_beneficiaires",
        "beneficiaires_prevus",
        "resultat_attendu",
        "resultat_obtenu",
        "annee",
        "source_ligne",
    ]:
        df[column] = pd.to_numeric(df[column], errors="raise").astype("Int64")
    for column in ("action_realisee", "participation_habitants"):
        df[column] = df[column].astype("boolean")
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

    sexes = total(SEX_COLUMNS)
    ages = total([*AGE_COLUMNS, "_ages_hors_referentiel"])
    age_mismatch = given(AGE_COLUMNS) & (sexes != ages)
    stated = col["total_beneficiaires"]
    has_stated = np.array([t is not None and t == t for t in stated], dtype=bool)
    total_mismatch = np.array(
        [h and t != s for h, t, s in zip(has_stated, stated, sexes, strict=True)], dtype=bool
    )
    # the reference total of the line: the stated one, else the sexes', else the ages'
    reference = np.where(has_stated, stated, np.where(given(SEX_COLUMNS), sexes, ages))
    bands_over = has_stated & given(AGE_COLUMNS) & (ages > reference)
    publics_over = {
        c: np.array(
            [v is not None and v == v and v > r for v, r in zip(col[c], reference, strict=True)],
            dtype=bool,
        )
        for c in PUBLIC_COLUMNS
    }
    over_any = bands_over | np.logical_or.reduce(list(publics_over.values()))
    key = df[["territoire", "annee", "dossier", "qpv_residence"]].astype(object)
    groups = key.groupby(list(key.columns), dropna=False, sort=False)
    rank = groups.cumcount().to_numpy()
    first = pd.Series(np.arange(len(df))).groupby(groups.ngroup().to_numpy()).transform("first")
    anomalies: list[dict[str, Any]] = []
    for i in range(len(df)):
        if not (age_mismatch[i] or total_mismatch[i] or over_any[i] or rank[i]):
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
                        f"total par tranche d'âge ({ages[i]}) "
                        f"{'supérieur au' if ages[i] > sexes[i] else 'inférieur au'} total par "
                        f"sexe ({sexes[i]})"
                    ),
                }
            )
        if bands_over[i]:
            anomalies.append(
                {
                    "type": "effectif_superieur_total",
                    **where,
                    "colonne": col["_total_colonne"][i],
                    "valeur_brute": str(stated[i]),
                    "message": (
                        f"{col['source_fichier'][i]}, ligne {col['source_ligne'][i]}: somme des "
                        f"tranches d'âge ({ages[i]}) supérieure au total déclaré ({stated[i]}): "
                        "ligne gardée, à corriger dans le fichier source"
                    ),
                }
            )
        for c, over in publics_over.items():
            if over[i]:
                anomalies.append(
                    {
                        "type": "effectif_superieur_total",
                        **where,
                        "colonne": public_types()[c],
                        "valeur_brute": str(col[c][i]),
                        "message": (
                            f"{col['source_fichier'][i]}, ligne {col['source_ligne'][i]}: "
                            f"{public_types()[c]} ({col[c][i]}) plus nombreux que le total des "
                            f"bénéficiaires de la ligne ({reference[i]}): ligne gardée, à "
                            "corriger dans le fichier source"
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
    return anomalies + _action_disagreements(df)


#: The action's answers, repeated on each of its lines: one value expected per action.
ACTION_ANSWERS = {
    "realisation": "réalisation",
    "beneficiaires_prevus": "bénéficiaires prévus",
    "resultat_attendu": "résultat attendu",
    "resultat_obtenu": "résultat obtenu",
    "participation_habitants": "participation des habitants",
}


def _action_disagreements(df: pd.DataFrame) -> list[dict[str, Any]]:
    """One ``incoherence_action`` per action and answer whose lines give different values (the
    marts keep the lowest realisation and the largest number: said in the message)."""
    found: list[dict[str, Any]] = []
    keys = ["territoire", "annee", "dossier"]
    for column, label in ACTION_ANSWERS.items():
        values = df[[*keys, column, "source_fichier", "source_ligne"]].dropna(subset=[column])
        if values.empty:
            continue
        values = values.assign(_v=values[column].astype(str))
        counts = values.groupby(keys, dropna=False)["_v"].transform("nunique")
        for _, group in values[counts > 1].groupby(keys, dropna=False, sort=False):
            first = group.iloc[0]
            seen = ", ".join(dict.fromkeys(group["_v"]))
            found.append(
                {
                    "type": "incoherence_action",
                    "fichier": first["source_fichier"],
                    "ligne": first["source_ligne"],
                    "dossier": first["dossier"],
                    "colonne": label,
                    "valeur_brute": seen,
                    "message": (
                        f"{first['source_fichier']}, lignes "
                        f"{', '.join(str(x) for x in group['source_ligne'])}: dossier "
                        f"{first['dossier']}, {label} différents selon les lignes ({seen}): "
                        "lignes gardées ; les marts retiennent la réalisation la plus basse et "
                        "le plus grand nombre"
                    ),
                }
            )
    return found
