"""Shared pieces of the notes focus: queries, secrecy masking, labels, charts, columns.

Used by :mod:`focus_emploi`, :mod:`focus_egalite` and :mod:`focus_quartier`. Rows are read from
marts and formatted; counts of people pass through the statistical-secrecy masking of the
published exports first (``published``), as in the rapport annuel. The only arithmetic is the
sum of mart rows (money or people over several orientations or financeurs, ``rows_sum`` and
:func:`pipelines.report.focus.masked_sum`), never of rates.

The emploi orientations of a territory are those of its hierarchy whose official label speaks of
employment (``EMPLOI_WORDS``); the égalité transversal theme is the one whose label speaks of
equality between women and men (``EGALITE_WORDS``). The notes name what they retained.
"""

from __future__ import annotations

import re

import pandas as pd

from pipelines.publication.secret import load_specs, mask_counts
from pipelines.report import charts
from pipelines.report.focus_model import (
    Column,
    records,
)

#: Words of an orientation's official label (lower case, no accent) that make it an emploi one.
EMPLOI_WORDS = re.compile(r"emploi|professionnel|economique|insertion professionnelle")
#: Words of a transversal theme's label that make it the égalité femmes-hommes one.
EGALITE_WORDS = re.compile(r"egalite.*(femme|homme)|(femme|homme).*egalite")

#: Why an evolution is not printed (taux_emploi_quartier.comparabilite_evolution).
COMPARABILITY = {
    "comparable": "comparable",
    "ecart_millesimes_insuffisant": "non publiée : millésimes trop proches",
    "autre_geographie": "non publiée : autre géographie (2015 → 2024)",
    "sans_millesime_precedent": "pas de millésime antérieur",
}
REFERENCE_LEVELS = {
    "epci": "EPCI",
    "france": "France",
    "ensemble_qpv": "Ensemble des QPV de France",
    "commune": "Commune",
}
NATURE = {"publiee": "publiée", "citee": "valeur citée", "calculee": "calculée"}


def query(con, sql: str, params: list) -> pd.DataFrame:
    return con.execute(sql, params).df()


def mart_rows(
    con, mart: str, territory: str, year: int, column: str, codes: list, order_by: str = ""
) -> pd.DataFrame:
    """The rows of ``marts.<mart>`` of one territory and year whose ``column`` is one of
    ``codes`` (none when ``codes`` is empty), ordered by ``order_by`` when given."""
    marks = ", ".join("?" for _ in codes) or "null"
    order = f" order by {order_by}" if order_by else ""
    return query(
        con,
        f"select * from marts.{mart} where territoire = ? and annee = ? "
        f"and {column} in ({marks}){order}",
        [territory, year, *codes],
    )


def published(frame: pd.DataFrame, mart: str) -> pd.DataFrame:
    specs = load_specs()
    return mask_counts(frame, specs[mart]) if mart in specs else frame


def first(frame: pd.DataFrame, column: str):
    if frame is None or frame.empty or column not in frame:
        return None
    values = frame[column].dropna()
    return None if values.empty else values.iloc[0]


def code_label(code, libelle) -> str:
    return f"{code} {libelle or ''}".strip()


def aggregates(con, territory: str, millesime, indicators: list[str]) -> dict[str, dict]:
    """agregats_qpv of the territory's QPV for a millésime: indicator -> row, its method said
    with the weight's label (« pondérée par la population municipale »), not its code."""
    if millesime is None:
        return {}
    labels = dict(
        con.execute(
            "select indicateur, lower(libelle) from referentiels.ref_indicateurs"
        ).fetchall()
    )
    frame = query(
        con,
        f"""
        select * from marts.agregats_qpv
        where niveau = 'territoire_contrat' and code_territoire = ? and millesime = ?
          and indicateur in ({", ".join("?" for _ in indicators)})
        qualify row_number() over (
            partition by indicateur order by complet desc, nb_qpv_avec_valeur desc, geographie
        ) = 1
        """,
        [territory, millesime, *indicators],
    )
    rows = {r["indicateur"]: r for r in records(frame)}
    for r in rows.values():
        weight = r.get("poids")
        if weight and weight in labels and r.get("methode"):
            r["methode"] = r["methode"].replace(f"par {weight}", f"par « {labels[weight]} »")
    return rows


def reference_text(rates: pd.DataFrame, level: str) -> str:
    """« valeur citée, millésime non indiqué » / « INSEE IPRO 2022 » for a reference level of
    taux_emploi_quartier."""
    source = first(rates, f"source_reference_{level}")
    nature = first(rates, f"nature_reference_{level}")
    millesime = first(rates, f"millesime_reference_{level}")
    parts = [NATURE.get(nature, nature or "")] if nature else []
    parts.append(
        f"millésime {int(millesime)}" if millesime is not None else "millésime non indiqué"
    )
    if source and nature == "citee":
        parts.append(f"source : {source}")
    return ", ".join(p for p in parts if p)


def beneficiaries_chart(rows: list[dict], title: str) -> str:
    bars = []
    for r in rows:
        masked = bool(r.get("secret_statistique"))
        bars.append(
            charts.Bar(
                code_label(r["orientation_code"], r.get("orientation_libelle"))
                + (" (secret)" if masked else ""),
                [
                    charts.Segment("femmes", r["femmes"]),
                    charts.Segment("hommes", r["hommes"]),
                    charts.Segment("sexe non renseigné", r["sexe_non_renseigne"]),
                ],
                shown_total=r["total"],
            )
        )
    return charts.stacked_bars(bars, "bénéficiaires", title)


def spending_chart(rows: list[dict], title: str) -> str:
    bars: dict[str, charts.Bar] = {}
    for r in rows:
        bar = bars.setdefault(
            r["orientation_code"],
            charts.Bar(code_label(r["orientation_code"], r.get("orientation_libelle")), []),
        )
        bar.segments.append(
            charts.Segment(r.get("financeur_nom") or r["financeur"], r["montant_accorde"])
        )
    return charts.stacked_bars(list(bars.values()), "€", title)


def rows_sum(frame: pd.DataFrame, column: str, where=None) -> float | None:
    if frame is None or frame.empty:
        return None
    rows = frame if where is None else frame[where(frame)]
    values = pd.to_numeric(rows[column], errors="coerce").dropna()
    return float(values.sum()) if not values.empty else None


BENEFICIARY_COLUMNS = [
    Column("orientation", "Orientation"),
    Column("femmes", "Femmes", "count"),
    Column("hommes", "Hommes", "count"),
    Column("sexe_non_renseigne", "Non renseigné", "count"),
    Column("total", "Total", "count"),
    Column("part_femmes", "Part des femmes", "percent"),
]

SPENDING_COLUMNS = [
    Column("orientation", "Orientation"),
    Column("financeur_nom", "Financeur"),
    Column("type_credit_libelle", "Crédits"),
    Column("nb_actions", "Actions", "number"),
    Column("montant_demande", "Demandé", "currency"),
    Column("montant_accorde", "Accordé", "currency"),
]

CREDIT_TYPES = {
    "credits_specifiques": "crédits spécifiques",
    "droit_commun": "droit commun",
    "non_renseigne": "non renseigné",
}


def with_labels(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    if "orientation_code" in out:
        out["orientation"] = [
            code_label(c, lib)
            for c, lib in zip(out["orientation_code"], out["orientation_libelle"], strict=True)
        ]
    if "financeur" in out:
        out["financeur_nom"] = out["financeur_nom"].fillna(out["financeur"])
    if "type_credit" in out:
        out["type_credit_libelle"] = out["type_credit"].map(CREDIT_TYPES).fillna(out["type_credit"])
    return out
