"""Note focus « egalite »: beneficiaries by sex (by orientation and quartier of residence),
the territory's marqueur égalité and égalité transversal theme, gendered indicators of the QPV.
"""

from __future__ import annotations

from pipelines.publication.secret import threshold
from pipelines.report import charts, formats
from pipelines.report.data import Territory
from pipelines.report.focus_common import (
    BENEFICIARY_COLUMNS,
    EGALITE_WORDS,
    aggregates,
    beneficiaries_chart,
    code_label,
    first,
    published,
    query,
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
    missing,
    normalise,
    observation_sources,
    records,
    suivi_sources,
)

GENDER_FIELDS = [
    ("part_femmes", "Part des femmes", "percent"),
    ("taux_emploi", "Taux d'emploi 15-64 ans", "percent"),
    ("taux_emploi_femmes", "Taux d'emploi des femmes", "percent"),
    ("part_emplois_precaires_femmes", "Emplois précaires des femmes", "percent"),
    ("demandeurs_emploi_abc_femmes", "Demandeuses d'emploi ABC", "number"),
    ("demandeurs_emploi_abc_hommes", "Demandeurs d'emploi ABC (hommes)", "number"),
]


def load_egalite(con, territory: Territory, year: int) -> FocusNote:
    t = territory.code
    benef = with_labels(
        published(
            query(
                con,
                "select * from marts.beneficiaires_genre_orientation where territoire = ? "
                "and annee = ? order by orientation_code",
                [t, year],
            ),
            "beneficiaires_genre_orientation",
        )
    )
    by_qpv = published(
        query(
            con,
            "select * from marts.croisement_qpv_annee where territoire = ? and annee = ? "
            "and code_qpv <> 'SANS_QPV' order by code_qpv",
            [t, year],
        ),
        "croisement_qpv_annee",
    )
    marker = query(
        con,
        "select * from marts.egalite_marqueur where territoire = ? and annee = ? order by rang",
        [t, year],
    )
    transversal = query(
        con,
        "select * from marts.depenses_thematique_transversale where territoire = ? and annee = ? "
        "order by thematique_code",
        [t, year],
    )
    transversal = transversal[
        [bool(EGALITE_WORDS.search(normalise(x or ""))) for x in transversal["thematique_libelle"]]
    ]
    millesime = con.execute(
        "select max(millesime) from marts.fiche_quartier where territoire = ?", [t]
    ).fetchone()[0]
    fiches = query(
        con,
        "select * from marts.fiche_quartier where territoire = ? and millesime = ? "
        "order by code_qpv",
        [t, millesime],
    )
    agg = aggregates(con, t, millesime, [f for f, _, _ in GENDER_FIELDS])

    note = FocusNote(
        theme="egalite",
        title="Focus égalité femmes-hommes",
        subtitle="Bénéficiaires par sexe, marqueur égalité et indicateurs sexués des quartiers",
        territory=territory,
        year=year,
        secrecy_threshold=threshold(),
    )
    femmes, f_masked = masked_sum(benef, "femmes")
    hommes, h_masked = masked_sum(benef, "hommes")
    total, t_masked = masked_sum(benef, "total")
    share = None
    if femmes is not None and total and not (f_masked or t_masked):
        share = 100 * femmes / total
    if total is not None or t_masked:
        note.figures.append(
            Figure(
                fmt(femmes, "count", f_masked),
                f"femmes parmi {fmt(total, 'count', t_masked)} bénéficiaires déclarés en {year}"
                + (f" ({formats.percent(share)})" if share is not None else ""),
                "beneficiaires_genre_orientation",
                "femmes",
                femmes,
            )
        )
    women = agg.get("part_femmes")
    if women is not None:
        note.figures.append(
            Figure(
                formats.percent(women["valeur"]),
                f"de femmes dans la population des {women['nb_qpv']} QPV ({millesime})",
                "agregats_qpv",
                "valeur",
                women["valeur"],
            )
        )
    rate_f, rate = agg.get("taux_emploi_femmes"), agg.get("taux_emploi")
    if rate_f is not None:
        note.figures.append(
            Figure(
                formats.percent(rate_f["valeur"]),
                f"taux d'emploi des femmes des QPV ({millesime})"
                + (
                    f", contre {formats.percent(rate['valeur'])} pour l'ensemble des 15-64 ans"
                    if rate is not None
                    else ""
                ),
                "agregats_qpv",
                "valeur",
                rate_f["valeur"],
            )
        )
    seekers_f = agg.get("demandeurs_emploi_abc_femmes")
    seekers_h = agg.get("demandeurs_emploi_abc_hommes")
    if seekers_f is not None:
        note.figures.append(
            Figure(
                formats.number(seekers_f["valeur"]),
                f"demandeuses d'emploi ABC dans les QPV ({millesime})"
                + (
                    f", pour {formats.number(seekers_h['valeur'])} hommes"
                    if seekers_h is not None
                    else ""
                ),
                "agregats_qpv",
                "valeur",
                seekers_f["valeur"],
            )
        )
    top = marker.sort_values("rang").iloc[-1] if not marker.empty else None
    if top is not None:
        note.figures.append(
            Figure(
                formats.number(top["nb_actions"]),
                f"actions au {top['libelle']} (niveau le plus élevé de l'échelle), "
                f"{formats.currency(top['montant_accorde'])} accordés",
                "egalite_marqueur",
                "nb_actions",
                top["nb_actions"],
            )
        )
    for r in records(transversal):
        note.figures.append(
            Figure(
                formats.currency(r["montant_accorde"]),
                f"accordés à {formats.number(r['nb_actions'])} actions de la thématique "
                f"transversale « {r['thematique_libelle']} »",
                "depenses_thematique_transversale",
                "montant_accorde",
                r["montant_accorde"],
            )
        )

    if total is not None or t_masked:
        text = (
            f"En {year}, les bilans déclarent {fmt(total, 'count', t_masked)} bénéficiaires : "
            f"{fmt(femmes, 'count', f_masked)} femmes et {fmt(hommes, 'count', h_masked)} hommes"
        )
        if share is not None:
            text += f", soit {formats.percent(share)} de femmes parmi les bénéficiaires déclarés"
            if women is not None and not missing(women["valeur"]):
                text += (
                    f", pour {formats.percent(women['valeur'])} de femmes dans la population "
                    f"des QPV ({millesime})"
                )
        note.summary.append(text + ".")
    else:
        note.summary.append(f"Aucun bilan {year} ne déclare de bénéficiaires par sexe.")
    if rate_f is not None and rate is not None:
        note.summary.append(
            f"En {millesime}, le taux d'emploi des femmes de 15 à 64 ans des QPV du territoire "
            f"est de {formats.percent(rate_f['valeur'])}, pour {formats.percent(rate['valeur'])} "
            f"pour l'ensemble des 15-64 ans ({rate_f['methode']})."
        )
    if top is not None:
        text = (
            f"Le marqueur égalité classe {formats.number(marker['nb_actions'].sum())} actions "
            f"{year} ; {formats.number(top['nb_actions'])} sont au {top['libelle']} "
            f"({formats.share(top['part_actions'])} des actions, "
            f"{formats.share(top['part_montant_accorde'])} du montant accordé)."
        )
        note.summary.append(text)
    else:
        note.summary.append(
            f"Le territoire n'a pas d'échelle du marqueur égalité en vigueur pour {year}."
        )

    for r in records(transversal):
        note.summary.append(
            f"{formats.number(r['nb_actions'])} actions {year} relèvent de la thématique "
            f"transversale « {r['thematique_libelle']} » : "
            f"{formats.currency(r['montant_accorde'])} accordés "
            f"({formats.share(r['part_accorde_annee'])} du montant de l'année)."
        )
    known = fiches.dropna(subset=["taux_emploi_femmes"]) if "taux_emploi_femmes" in fiches else None
    if known is not None and not known.empty:
        low = known.loc[known["taux_emploi_femmes"].idxmin()]
        high = known.loc[known["taux_emploi_femmes"].idxmax()]
        note.summary.append(
            f"En {millesime}, le taux d'emploi des femmes de 15 à 64 ans va de "
            f"{formats.percent(low['taux_emploi_femmes'])} ({low['libelle_qpv']}) à "
            f"{formats.percent(high['taux_emploi_femmes'])} ({high['libelle_qpv']}) selon le "
            "quartier."
        )

    # 1. beneficiaries by sex
    block = Block("beneficiaires-sexe", f"Les bénéficiaires des actions {year} par sexe")
    if benef.empty:
        block.empty = f"Aucun bilan {year} ne déclare de bénéficiaires par sexe."
    else:
        block.items.append(
            Table(
                "table-beneficiaires-sexe",
                "beneficiaires_genre_orientation",
                BENEFICIARY_COLUMNS,
                records(benef),
                caption=f"Effectifs inférieurs à {note.secrecy_threshold} masqués (« s »), "
                "avec masquage complémentaire.",
            )
        )
        block.items.append(
            Chart(
                "graphique-beneficiaires-sexe",
                beneficiaries_chart(
                    records(benef), f"Bénéficiaires {year} par orientation et par sexe"
                ),
                "Bénéficiaires déclarés dans les bilans (mart beneficiaires_genre_orientation) ; "
                "les segments masqués par le secret statistique ne sont pas dessinés.",
            )
        )
        by_qpv_rows = [
            {**r, "qpv": code_label(r["code_qpv"], r.get("libelle_qpv"))}
            for r in records(by_qpv)
            if not missing(r.get("beneficiaires")) or r.get("secret_statistique")
        ]
        if by_qpv_rows:
            block.items.append(
                Table(
                    "table-beneficiaires-qpv",
                    "croisement_qpv_annee",
                    [
                        Column("qpv", "Quartier de résidence"),
                        Column("beneficiaires_femmes", "Femmes", "count"),
                        Column("beneficiaires_hommes", "Hommes", "count"),
                        Column("beneficiaires", "Total", "count"),
                        Column("part_femmes_beneficiaires", "Part des femmes", "percent"),
                    ],
                    by_qpv_rows,
                    title="Par quartier de résidence",
                    caption="Bénéficiaires que les bilans déclarent résider dans le QPV, toutes "
                    "actions confondues (mart croisement_qpv_annee).",
                )
            )
    note.blocks.append(block)

    # 2. equality marker and transversal theme
    block = Block("marqueur-egalite", "Le marqueur égalité et la thématique transversale")
    if marker.empty and transversal.empty:
        block.empty = (
            f"Le territoire n'a ni échelle du marqueur égalité en vigueur pour {year} (fichier "
            "marqueur_egalite.csv de son dossier) ni thématique transversale « égalité » "
            "renseignée dans sa programmation."
        )
    else:
        if marker.empty:
            block.paragraphs.append(
                f"Le territoire n'a pas d'échelle du marqueur égalité en vigueur pour {year} "
                "(fichier marqueur_egalite.csv de son dossier) : un niveau saisi n'est ni classé "
                "ni contrôlé."
            )
        else:
            block.items.append(
                Chart(
                    "graphique-marqueur",
                    charts.stacked_bars(
                        [
                            charts.Bar(
                                r["libelle"],
                                [charts.Segment("montant accordé", r["montant_accorde"])],
                                shown_total=r["montant_accorde"],
                            )
                            for r in records(marker)
                        ],
                        "€",
                        f"Montants accordés {year} par niveau du marqueur égalité",
                    ),
                    f"Mart egalite_marqueur, échelle {first(marker, 'echelle')} du territoire.",
                )
            )
            block.items.append(
                Table(
                    "table-marqueur",
                    "egalite_marqueur",
                    [
                        Column("libelle", "Niveau"),
                        Column("nb_actions", "Actions", "number"),
                        Column("part_actions", "Part des actions", "share"),
                        Column("montant_accorde", "Accordé", "currency"),
                        Column("part_montant_accorde", "Part du montant", "share"),
                        Column("niveau_minimum", "Minimum exigé"),
                    ],
                    records(marker),
                )
            )
        if not transversal.empty:
            block.items.append(
                Table(
                    "table-thematique-egalite",
                    "depenses_thematique_transversale",
                    [
                        Column("thematique_libelle", "Thématique transversale"),
                        Column("nb_actions", "Actions", "number"),
                        Column("montant_demande", "Demandé", "currency"),
                        Column("montant_accorde", "Accordé", "currency"),
                        Column("part_accorde_annee", "Part de l'année", "share"),
                    ],
                    records(transversal),
                )
            )
    note.blocks.append(block)

    # 3. gendered indicators of the quartiers
    block = Block("indicateurs-sexues", f"Indicateurs sexués des quartiers ({millesime or '–'})")
    shown = [f for f in GENDER_FIELDS if f[0] in fiches and fiches[f[0]].notna().any()]
    if shown:  # QPV whose fiche has none of these values (a local table's 2024 codes) left out
        fiches = fiches[fiches[[f for f, _, _ in shown]].notna().any(axis=1)]
    if fiches.empty or not shown:
        block.empty = "Aucun indicateur sexué n'est publié pour les QPV de ce territoire."
    else:
        rows = [{**r, "qpv": code_label(r["code_qpv"], r["libelle_qpv"])} for r in records(fiches)]
        rows.append(
            {
                "qpv": "Ensemble des QPV du territoire",
                **{f: agg[f]["valeur"] for f, _, _ in shown if f in agg},
            }
        )
        block.items.append(
            Table(
                "table-indicateurs-sexues",
                "fiche_quartier",
                [Column("qpv", "QPV"), *[Column(f, label, kind) for f, label, kind in shown]],
                rows,
                caption="Valeurs publiées par QPV (mart fiche_quartier) ; dernière ligne : "
                "ensemble des QPV du territoire (mart agregats_qpv : sommes des effectifs, taux "
                "pondérés par la population).",
            )
        )
    note.blocks.append(block)
    note.sources = [
        *observation_sources(con, list(fiches["code_qpv"])),
        *suivi_sources(con, year),
    ]
    if not marker.empty:
        note.sources.append("Marqueur égalité : échelle du territoire (note de cadrage du contrat)")
    return note
