"""Note focus « emploi »: employment rates of the quartiers over millésimes against their
commune, EPCI and France, and the actions, money and beneficiaries of the emploi orientations.
"""

from __future__ import annotations

import pandas as pd

from pipelines.publication.secret import threshold
from pipelines.report import charts, formats
from pipelines.report.data import Territory
from pipelines.report.focus_common import (
    BENEFICIARY_COLUMNS,
    COMPARABILITY,
    EMPLOI_WORDS,
    NATURE,
    REFERENCE_LEVELS,
    SPENDING_COLUMNS,
    aggregates,
    code_label,
    first,
    mart_rows,
    published,
    query,
    reference_text,
    rows_sum,
    spending_chart,
    with_labels,
)
from pipelines.report.focus_model import (
    Block,
    Chart,
    Column,
    Figure,
    FocusNote,
    Table,
    fmt,
    masked_sum,
    normalise,
    observation_sources,
    records,
    suivi_sources,
)


def emploi_orientations(con, territory: str, year: int) -> pd.DataFrame:
    """The level-1 orientations of the year's programmation whose label speaks of employment."""
    frame = query(
        con,
        """
        select distinct referentiel, orientation_code, orientation_libelle
        from marts.depenses_orientation where territoire = ? and annee = ?
        order by orientation_code
        """,
        [territory, year],
    )
    keep = [bool(EMPLOI_WORDS.search(normalise(lib or ""))) for lib in frame["orientation_libelle"]]
    return frame[keep]


def load_emploi(con, territory: Territory, year: int) -> FocusNote:
    t = territory.code
    rates = query(
        con,
        """
        select r.* exclude (source_fichier), replace(d.noms_communes, ';', ', ') as noms_communes
        from marts.taux_emploi_quartier r
        left join (select code_qpv, any_value(noms_communes) as noms_communes
                   from marts.dim_qpv group by code_qpv) d using (code_qpv)
        where r.territoire = ? order by r.millesime, r.code_qpv
        """,
        [t],
    )
    millesimes = sorted(int(m) for m in rates["millesime"].dropna().unique())
    latest = millesimes[-1] if millesimes else None
    last = rates[rates["millesime"] == latest] if latest else rates
    agg = aggregates(con, t, latest, ["taux_emploi", "taux_emploi_femmes", "demandeurs_emploi_abc"])
    orientations = emploi_orientations(con, t, year)
    codes = list(orientations["orientation_code"])
    spend = with_labels(
        mart_rows(
            con, "depenses_orientation", t, year, "orientation_code", codes,
            "orientation_code, montant_accorde desc, financeur",
        )
    )  # fmt: skip
    bilans = with_labels(
        published(
            mart_rows(
                con, "bilans_realisation", t, year, "orientation_code", codes, "orientation_code"
            ),
            "bilans_realisation",
        )
    )
    benef = with_labels(
        published(
            mart_rows(
                con, "beneficiaires_genre_orientation", t, year, "orientation_code", codes,
                "orientation_code",
            ),
            "beneficiaires_genre_orientation",
        )
    )  # fmt: skip

    note = FocusNote(
        theme="emploi",
        title="Focus emploi",
        subtitle="Taux d'emploi des quartiers et actions pour l'emploi et l'insertion",
        territory=territory,
        year=year,
        secrecy_threshold=threshold(),
    )
    orientation_names = [
        f"{r['orientation_code']} « {r['orientation_libelle']} »" for r in records(orientations)
    ]
    note.scope = (
        "Orientations retenues pour l'emploi (libellé officiel du référentiel du territoire) : "
        + (", ".join(orientation_names) if orientation_names else "aucune")
        + "."
    )

    # key figures
    total_rate = agg.get("taux_emploi")
    if total_rate is not None:
        note.figures.append(
            Figure(
                formats.percent(total_rate["valeur"]),
                f"taux d'emploi des 15-64 ans de l'ensemble des {total_rate['nb_qpv']} QPV "
                f"({latest})",
                "agregats_qpv",
                "valeur",
                total_rate["valeur"],
            )
        )
    for level, label in (("epci", "de l'EPCI"), ("france", "de la France")):
        value = first(last, f"taux_emploi_{level}")
        if value is not None:
            note.figures.append(
                Figure(
                    formats.percent(value),
                    f"taux d'emploi {label} ({reference_text(last, level).split(', source')[0]})",
                    "taux_emploi_quartier",
                    f"taux_emploi_{level}",
                    value,
                )
            )
    seekers = agg.get("demandeurs_emploi_abc")
    if seekers is not None:
        note.figures.append(
            Figure(
                formats.number(seekers["valeur"]),
                f"demandeurs d'emploi de catégories A, B, C dans les QPV ({latest})",
                "agregats_qpv",
                "valeur",
                seekers["valeur"],
            )
        )
    granted = rows_sum(spend, "montant_accorde")
    if granted is not None:
        note.figures.append(
            Figure(
                formats.currency(granted),
                f"accordés en {year} aux actions des orientations emploi",
                "depenses_orientation",
                "montant_accorde",
                granted,
            )
        )
    total_benef, benef_masked = masked_sum(benef, "total")
    if total_benef is not None or benef_masked:
        note.figures.append(
            Figure(
                fmt(total_benef, "count", benef_masked),
                f"bénéficiaires déclarés dans les bilans {year} de ces orientations",
                "beneficiaires_genre_orientation",
                "total",
                total_benef,
            )
        )

    # summary text: figures only
    if total_rate is not None:
        text = (
            f"En {latest}, le taux d'emploi des 15-64 ans de l'ensemble des "
            f"{total_rate['nb_qpv']} QPV du territoire est de "
            f"{formats.percent(total_rate['valeur'])}. Méthode : {total_rate['methode']}."
        )
        refs = [
            f"{label} {formats.percent(first(last, f'taux_emploi_{level}'))} "
            f"({reference_text(last, level).split(', source')[0]})"
            for level, label in (("epci", "EPCI"), ("france", "France"))
            if first(last, f"taux_emploi_{level}") is not None
        ]
        if refs:
            text += " Références : " + " ; ".join(refs) + "."
        known = last.dropna(subset=["taux_emploi"])
        if not known.empty:
            low = known.loc[known["taux_emploi"].idxmin()]
            high = known.loc[known["taux_emploi"].idxmax()]
            text += (
                f" Selon le quartier, il va de {formats.percent(low['taux_emploi'])} "
                f"({low['libelle_qpv']}) à {formats.percent(high['taux_emploi'])} "
                f"({high['libelle_qpv']})."
            )
        note.summary.append(text)
    elif not millesimes:
        note.summary.append("Aucun taux d'emploi des quartiers n'est chargé pour ce territoire.")
    if len(millesimes) > 1:
        reasons = last["comparabilite_evolution"].dropna().value_counts()
        comparable = int(last["evolution_points"].notna().sum())
        if comparable:
            note.summary.append(
                f"L'évolution depuis le millésime précédent est publiée pour {comparable} "
                f"quartier(s) sur {len(last)}."
            )
        elif not reasons.empty:
            note.summary.append(
                f"L'évolution entre {millesimes[-2]} et {latest} n'est pas publiée : "
                f"{COMPARABILITY.get(reasons.index[0], reasons.index[0])}".replace(
                    "non publiée : ", ""
                )
                + " (précaution INSEE)."
            )
    if codes:
        nb_actions = rows_sum(bilans, "nb_actions_financees")
        specific = rows_sum(
            spend, "montant_accorde", lambda f: f["type_credit"] == "credits_specifiques"
        )
        text = f"En {year}, "
        if nb_actions is not None:
            text += f"{formats.number(nb_actions)} actions financées relèvent de "
        else:
            text += "les actions financées relèvent de "
        text += ", ".join(orientation_names) + f" : {formats.currency(granted)} accordés"
        if specific is not None:
            text += f", dont {formats.currency(specific)} de crédits spécifiques"
        note.summary.append(text + ".")
        femmes, f_masked = masked_sum(benef, "femmes")
        hommes, h_masked = masked_sum(benef, "hommes")
        if total_benef is not None:
            note.summary.append(
                f"Leurs bilans déclarent {fmt(total_benef, 'count')} bénéficiaires, dont "
                f"{fmt(femmes, 'count', f_masked)} femmes et {fmt(hommes, 'count', h_masked)} "
                "hommes."
            )
    else:
        note.summary.append(
            f"Aucune orientation de la programmation {year} ne porte sur l'emploi dans son "
            "libellé : la note ne montre pas de financement ni de bénéficiaire."
        )

    # 1. rates by QPV and millésime
    block = Block("taux-emploi", "Le taux d'emploi des quartiers")
    if rates.empty:
        block.empty = "Aucun taux d'emploi n'est chargé pour les QPV de ce territoire."
    else:
        names = last["libelle_qpv"].fillna(last["code_qpv"])
        twice = set(names[names.duplicated()])
        bars = [
            charts.Bar(
                (r["libelle_qpv"] or r["code_qpv"])
                + (f" ({r['noms_communes']})" if r["libelle_qpv"] in twice else ""),
                [charts.Segment(f"quartier ({latest})", r["taux_emploi"])],
                shown_total=r["taux_emploi"],
            )
            for r in records(last.sort_values("taux_emploi", ascending=False, na_position="last"))
        ]
        for level, label in (("epci", "EPCI"), ("france", "France")):
            value = first(last, f"taux_emploi_{level}")
            if value is not None:
                bars.append(
                    charts.Bar(
                        f"{label} (référence)",
                        [charts.Segment("référence", value)],
                        shown_total=value,
                    )
                )
        wide = []
        for code, group in rates.groupby("code_qpv", sort=True):
            row = {"qpv": code_label(code, first(group, "libelle_qpv"))}
            for m in millesimes:
                at = group[group["millesime"] == m]
                row[f"taux_{m}"] = first(at, "taux_emploi")
            current = group[group["millesime"] == latest]
            for col in (
                "taux_emploi_femmes",
                "ecart_commune_points",
                "ecart_epci_points",
                "ecart_france_points",
                "evolution_points",
            ):
                row[col] = first(current, col)
            row["evolution"] = (
                formats.points(row["evolution_points"])
                if row["evolution_points"] is not None
                else COMPARABILITY.get(
                    first(current, "comparabilite_evolution"),
                    first(current, "comparabilite_evolution") or formats.MISSING,
                )
            )
            wide.append(row)
        block.items.append(
            Table(
                "table-taux-emploi",
                "taux_emploi_quartier",
                [
                    Column("qpv", "QPV"),
                    *[Column(f"taux_{m}", f"Taux {m}", "percent") for m in millesimes],
                    Column("taux_emploi_femmes", f"Femmes {latest}", "percent"),
                    Column("ecart_commune_points", "Écart commune", "points"),
                    Column("ecart_epci_points", "Écart EPCI", "points"),
                    Column("ecart_france_points", "Écart France", "points"),
                    Column("evolution", "Évolution"),
                ],
                wide,
                caption="Écarts en points au millésime le plus récent (mart "
                "taux_emploi_quartier) ; une évolution n'est publiée qu'entre millésimes "
                "comparables (précaution INSEE), sinon la raison est donnée.",
            )
        )
        block.items.append(
            Chart(
                "graphique-taux-emploi",
                charts.stacked_bars(
                    bars, "%", f"Taux d'emploi des 15-64 ans par quartier ({latest})", decimals=1
                ),
                "Taux d'emploi des 15-64 ans (mart taux_emploi_quartier), références de l'EPCI "
                "et de la France telles que retenues par le mart (nature et millésime dans le "
                "tableau des références).",
            )
        )
        refs: dict[tuple, dict] = {}  # the same reference for several millésimes: one row
        for m in millesimes:
            at = rates[rates["millesime"] == m]
            for level in ("epci", "france", "ensemble_qpv"):
                value = first(at, f"taux_emploi_{level}")
                if value is None:
                    continue
                ref_m = first(at, f"millesime_reference_{level}")
                row = {
                    "niveau": REFERENCE_LEVELS[level],
                    "valeur": value,
                    "millesime_reference": int(ref_m) if ref_m is not None else "non indiqué",
                    "nature": NATURE.get(first(at, f"nature_reference_{level}"), ""),
                    "source": first(at, f"source_reference_{level}"),
                }
                key = tuple(row.values())
                refs.setdefault(key, {**row, "millesimes": []})["millesimes"].append(str(m))
        refs = [{**r, "millesime": ", ".join(r.pop("millesimes"))} for r in refs.values()]
        if refs:
            block.items.append(
                Table(
                    "table-references-emploi",
                    "taux_emploi_quartier",
                    [
                        Column("millesime", "Millésime des quartiers", "text"),
                        Column("niveau", "Niveau"),
                        Column("valeur", "Taux d'emploi", "percent"),
                        Column("millesime_reference", "Millésime de la référence"),
                        Column("nature", "Nature"),
                        Column("source", "Source"),
                    ],
                    refs,
                    title="Les valeurs de référence",
                    caption="Une valeur par niveau et par millésime, avec sa nature : publiée "
                    "par l'INSEE, ou « valeur citée » par un document du contrat (millésime "
                    "non indiqué par le document) ; les écarts entre millésimes différents le "
                    "disent dans le mart.",
                )
            )
    note.blocks.append(block)

    # 2. money of the emploi orientations
    block = Block("financements-emploi", f"Les actions pour l'emploi en {year}")
    if spend.empty:
        block.empty = (
            f"Aucune action de la programmation {year} ne relève d'une orientation emploi."
        )
    else:
        block.paragraphs.append(note.scope)
        block.items.append(
            Chart(
                "graphique-financements-emploi",
                spending_chart(records(spend), f"Montants accordés {year} par financeur"),
                "Montants accordés par orientation et par financeur (mart depenses_orientation).",
            )
        )
        block.items.append(
            Table(
                "table-financements-emploi",
                "depenses_orientation",
                SPENDING_COLUMNS,
                records(spend),
                caption="Une action financée par plusieurs financeurs compte dans chacune de "
                "leurs lignes.",
            )
        )
    note.blocks.append(block)

    # 3. beneficiaries and realisation
    block = Block("beneficiaires-emploi", f"Bénéficiaires et réalisation des actions {year}")
    if benef.empty and bilans.empty:
        block.empty = f"Aucun bilan {year} n'est chargé pour les actions des orientations emploi."
    else:
        if not bilans.empty:
            block.items.append(
                Table(
                    "table-realisation-emploi",
                    "bilans_realisation",
                    [
                        Column("orientation", "Orientation"),
                        Column("nb_actions_financees", "Actions financées", "number"),
                        Column("nb_bilans", "Bilans", "number"),
                        Column("nb_realisees", "Réalisées", "number"),
                        Column("taux_realisation", "Taux de réalisation", "percent"),
                        Column("beneficiaires_prevus", "Bénéficiaires prévus", "count"),
                        Column("beneficiaires_realises_prevus", "réels", "count"),
                        Column("taux_atteinte_beneficiaires", "Atteinte", "percent"),
                    ],
                    records(bilans),
                )
            )
        if not benef.empty:
            block.items.append(
                Table(
                    "table-beneficiaires-emploi",
                    "beneficiaires_genre_orientation",
                    BENEFICIARY_COLUMNS,
                    records(benef),
                    caption=f"Effectifs inférieurs à {note.secrecy_threshold} masqués (« s »), "
                    "avec masquage complémentaire.",
                )
            )
    note.blocks.append(block)

    qpv_codes = sorted(set(rates["code_qpv"].dropna()))
    note.sources = [
        *observation_sources(con, qpv_codes),
        *sorted(
            {
                s
                for level in ("epci", "france")
                for s in rates[f"source_reference_{level}"].dropna().unique()
            }
        ),
        *suivi_sources(con, year),
    ]
    return note
