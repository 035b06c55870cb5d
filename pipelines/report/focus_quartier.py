"""Note focus « quartier » (``--qpv``): one quartier's indicators against the ensemble of the
territory's QPV, the EPCI and France, its employment rate over millésimes, the actions and money
that target it, the beneficiaries who live there, the places and zonings that cover it.

A 2024 QPV reads the INSEE indicators of its 2015 predecessor(s) (passage_qpv_2015_2024), said
in the note; the programmation reads the code the programmation uses (this QPV or its
counterpart in the other geography).

Why this module is long: one quartier crosses every side of the warehouse (its fiche and the
references, the employment series, the money by year and by orientation, the beneficiaries, the
places and zonings), each a query and a table; kept in one file so that every figure of the note
is traceable to its mart, and the map of the quartier among the territory's QPV with them.
"""

from __future__ import annotations

import pandas as pd

from pipelines.publication.secret import threshold
from pipelines.report import charts, formats
from pipelines.report.data import Territory, chosen_references, commune_outlines
from pipelines.report.focus_common import (
    COMPARABILITY,
    aggregates,
    code_label,
    mart_rows,
    published,
    query,
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
    missing,
    observation_sources,
    records,
    suivi_sources,
)
from pipelines.report.labels import LINK_TYPES
from pipelines.report.render import FICHE_FIELDS

# Contours of the territory's QPV projected like the rapport annuel's maps (data.load).
PROJECTION = """
    ST_SimplifyPreserveTopology(ST_ReducePrecision(ST_MakeValid(
        ST_Transform(geom, 'EPSG:4326', coalesce(crs_surface, 'EPSG:2154'), always_xy := true)
        ), 1.0), 5.0)
"""
QUARTIER_INDICATORS = [f for f, _, _ in FICHE_FIELDS]


def _linked(con, code: str) -> pd.DataFrame:
    return query(
        con,
        "select * from marts.passage_qpv_2015_2024 where code_qpv_2015 = ? or code_qpv_2024 = ?",
        [code, code],
    )


def _map(con, territory: str, highlight: set[str], name: str) -> str:
    contours = query(
        con,
        f"""
        with p as (select code_qpv, libelle_qpv, {PROJECTION} as g
                   from marts.dim_qpv where territoire = ? and geom is not null)
        select code_qpv, libelle_qpv, ST_AsSVG(g, false, 0) as chemin,
               ST_X(ST_PointOnSurface(g)) as x, ST_Y(ST_PointOnSurface(g)) as y,
               ST_XMin(g) as xmin, ST_YMin(g) as ymin, ST_XMax(g) as xmax, ST_YMax(g) as ymax
        from p order by code_qpv
        """,
        [territory],
    )
    if contours.empty:
        return ""
    extent = (
        float(contours["xmin"].min()),
        float(contours["ymin"].min()),
        float(contours["xmax"].max()),
        float(contours["ymax"].max()),
    )
    this, others = name, "autres QPV du territoire"
    areas = [
        charts.Area(
            code=r["code_qpv"],
            path=r["chemin"],
            value=None,
            info=this if r["code_qpv"] in highlight else others,
            label=r["code_qpv"][-4:] if r["code_qpv"] in highlight else None,
            x=r["x"],
            y=r["y"],
        )
        for r in records(contours)
    ]
    # the names written are those of the quartier's communes
    codes = sorted(highlight)
    labelled = {
        code
        for (code,) in con.execute(
            "select distinct code_commune from marts.bridge_qpv_commune "
            f"where code_qpv in ({', '.join('?' for _ in codes)})",
            codes,
        ).fetchall()
    }
    return charts.choropleth(
        areas,
        extent,
        f"{name} parmi les QPV du territoire",
        "Quartier",
        categories={this: charts.CATEGORIES[1], others: "#dde3ea"},
        communes=commune_outlines(con, territory, extent, labelled),
    )


def _references(con, territory: Territory, millesime, indicators: list[str]) -> dict:
    """(level, indicator) -> reference row, chosen as the rapport annuel chooses them."""
    frame = chosen_references(con, territory.siren, indicators, millesime, ("france", "epci"))
    return {(r["territoire_type"], r["indicateur"]): r for r in records(frame)}


def reference_cell(ref: dict | None, kind: str) -> str:
    """« 191 885 (2023) » for a published value, « 53,8 % (valeur citée, document de 2019) »."""
    if ref is None:
        return formats.MISSING
    value = fmt(ref["valeur"], kind)
    if ref["nature"] == "publiee":
        return f"{value} ({ref['millesime_libelle'] or 'millésime non indiqué'})"
    document = ref.get("annee_document")
    return f"{value} (valeur citée" + (f", document de {document})" if document else ")")


def load_quartier(con, territory: Territory, year: int, qpv: str) -> FocusNote:
    t = territory.code
    dim = records(
        query(
            con,
            "select * exclude (geom) from marts.dim_qpv where code_qpv = ? and territoire = ?",
            [qpv, t],
        )
    )[0]
    name = dim["libelle_qpv"] or qpv
    links = _linked(con, qpv)
    counterparts = sorted(
        {c for c in pd.concat([links["code_qpv_2015"], links["code_qpv_2024"]]).dropna()} - {qpv}
    )
    # Observation: published in 2015 codes; a 2024 QPV reads its 2015 predecessor(s).
    candidates = [qpv]
    if dim["geographie"] != "2015":
        candidates += sorted(set(links["code_qpv_2015"].dropna()))
    obs_codes = [
        c
        for c in candidates
        if con.execute(
            "select count(*) from marts.fiche_quartier where code_qpv = ? "
            "and nb_indicateurs_publies > 0",
            [c],
        ).fetchone()[0]
    ]
    millesime = con.execute(
        f"select max(millesime) from marts.fiche_quartier where code_qpv in "
        f"({', '.join('?' for _ in obs_codes) or 'null'})",
        obs_codes,
    ).fetchone()[0]
    fiches = query(
        con,
        f"select * from marts.fiche_quartier where millesime = ? and code_qpv in "
        f"({', '.join('?' for _ in obs_codes) or 'null'}) order by code_qpv",
        [millesime, *obs_codes],
    )
    rates = query(
        con,
        f"select * exclude (source_fichier) from marts.taux_emploi_quartier where code_qpv in "
        f"({', '.join('?' for _ in obs_codes) or 'null'}) order by code_qpv, millesime",
        obs_codes,
    )
    # Programmation: the codes the programmation uses (this QPV or its counterpart).
    effort_all = query(
        con,
        "select * from marts.effort_financier_qpv where territoire = ? and annee <= ? "
        f"and code_qpv in ({', '.join('?' for _ in [qpv, *counterparts])}) "
        "order by code_qpv, annee",
        [t, year, qpv, *counterparts],
    )
    prog_codes = (
        [qpv] if (effort_all["code_qpv"] == qpv).any() else sorted(set(effort_all["code_qpv"]))
    )
    effort = effort_all[effort_all["code_qpv"].isin(prog_codes)]
    crossing = published(
        mart_rows(con, "croisement_qpv_annee", t, year, "code_qpv", prog_codes),
        "croisement_qpv_annee",
    )
    by_orientation = with_labels(
        mart_rows(
            con, "croisement_qpv_orientation_financeur", t, year, "code_qpv", prog_codes,
            "orientation_code, montant_accorde desc, financeur",
        )
    )  # fmt: skip
    benef = with_labels(
        published(
            mart_rows(
                con, "beneficiaires_genre", t, year, "qpv_residence", prog_codes,
                "orientation_code",
            ),
            "beneficiaires_genre",
        )
    )  # fmt: skip
    all_codes = sorted({qpv, *counterparts})
    code_marks = ", ".join("?" for _ in all_codes)
    places = query(
        con,
        f"select * from marts.lieux_qpv where code_qpv in ({code_marks}) "
        "order by type_lieu, code_qpv",
        all_codes,
    )
    zonings = query(
        con,
        f"""
        select code_zonage, any_value(type_zonage_libelle) as type_zonage_libelle,
               any_value(nom) as nom, string_agg(distinct code_qpv, ', ') as code_qpv,
               any_value(population) as population, any_value(source_libelle) as source_libelle
        from referentiels.ref_zonages
        where territoire = ? and code_qpv in ({code_marks})
        group by code_zonage order by type_zonage_libelle, nom
        """,
        [t, *all_codes],
    )
    zone_spend = query(
        con,
        f"""
        select * from marts.depenses_zonage where territoire = ? and annee = ?
          and code_zonage in ({", ".join("?" for _ in zonings["code_zonage"]) or "null"})
        order by nom_zonage, orientation_code
        """,
        [t, year, *zonings["code_zonage"]],
    )
    agg = aggregates(con, t, millesime, QUARTIER_INDICATORS)
    refs = _references(con, territory, millesime, QUARTIER_INDICATORS)

    note = FocusNote(
        theme="quartier",
        title=f"Focus quartier : {name}",
        subtitle=f"{qpv} – {dim['noms_communes'] or ''} (géographie {dim['geographie']})",
        territory=territory,
        year=year,
        secrecy_threshold=threshold(),
        slug=qpv,
    )
    # each key indicator from the one fiche that publishes it (this QPV or its single 2015
    # predecessor); several predecessors of a merged QPV give no key figure, only the table
    fiche = {}
    for col in QUARTIER_INDICATORS:
        values = [r[col] for r in records(fiches) if col in r and not missing(r[col])]
        if len(values) == 1:
            fiche[col] = values[0]
    year_row = records(effort[effort["annee"] == year])
    year_row = year_row[0] if len(year_row) == 1 else None
    if not missing(dim.get("population")):
        note.figures.append(
            Figure(
                formats.number(dim["population"]),
                f"habitants (population municipale {dim['millesime_population']})",
                "dim_qpv",
                "population",
                dim["population"],
            )
        )
    if not missing(fiche.get("taux_emploi")):
        note.figures.append(
            Figure(
                formats.percent(fiche["taux_emploi"]),
                f"taux d'emploi des 15-64 ans ({millesime})",
                "fiche_quartier",
                "taux_emploi",
                fiche["taux_emploi"],
            )
        )
    if not missing(fiche.get("taux_pauvrete_60")):
        note.figures.append(
            Figure(
                formats.percent(fiche["taux_pauvrete_60"]),
                f"taux de pauvreté au seuil de 60 % ({millesime})",
                "fiche_quartier",
                "taux_pauvrete_60",
                fiche["taux_pauvrete_60"],
            )
        )
    if year_row is not None:
        note.figures.append(
            Figure(
                formats.currency(year_row["montant_accorde"]),
                f"accordés en {year} à {formats.number(year_row['nb_actions'])} actions"
                + (
                    f", soit {formats.currency(year_row['euros_par_habitant'], 2)} par habitant"
                    if not missing(year_row["euros_par_habitant"])
                    else ""
                ),
                "effort_financier_qpv",
                "montant_accorde",
                year_row["montant_accorde"],
            )
        )
    cross = records(crossing)[0] if len(crossing) == 1 else None
    if cross is not None and (
        not missing(cross["beneficiaires"]) or cross.get("secret_statistique")
    ):
        note.figures.append(
            Figure(
                fmt(cross["beneficiaires"], "count", bool(cross.get("secret_statistique"))),
                f"bénéficiaires résidant dans le quartier déclarés par les bilans {year}",
                "croisement_qpv_annee",
                "beneficiaires",
                cross["beneficiaires"],
            )
        )

    # summary
    text = f"{name} ({qpv}) est un QPV de la géographie {dim['geographie']}"
    if dim.get("noms_communes"):
        text += f" ({dim['noms_communes'].replace(';', ', ')})"
    if not missing(dim.get("population")):
        text += (
            f" de {formats.number(dim['population'])} habitants "
            f"(population {dim['millesime_population']})"
        )
    if not missing(dim.get("surface_km2")):
        text += f", sur {formats.number(dim['surface_km2'], 2)} km²"
    note.summary.append(text + ".")
    predecessors = [c for c in obs_codes if c != qpv]
    if dim["geographie"] != "2015" and not predecessors:
        kinds = sorted({LINK_TYPES.get(k, k) for k in links["type_lien"].dropna()})
        note.summary.append(
            "Aucun QPV 2015 à indicateurs publiés ne lui correspond"
            + (f" ({', '.join(kinds)})" if kinds else "")
            + " : les bases INSEE, publiées dans la géographie 2015, ne le décrivent pas."
        )
    if predecessors:
        kinds = sorted({LINK_TYPES.get(k, k) for k in links["type_lien"].dropna()})
        note.summary.append(
            "Les indicateurs INSEE sont publiés dans la géographie 2015 : ils sont ceux de "
            + ", ".join(predecessors)
            + f" (lien : {', '.join(kinds)}), dans son périmètre de 2015."
        )
    if not missing(fiche.get("taux_emploi")):
        epci = refs.get(("epci", "taux_emploi"))
        text = (
            f"En {millesime}, son taux d'emploi des 15-64 ans est de "
            f"{formats.percent(fiche['taux_emploi'])}"
        )
        if "taux_emploi" in agg:
            text += (
                f", pour {formats.percent(agg['taux_emploi']['valeur'])} dans l'ensemble des "
                "QPV du territoire"
            )
        if epci is not None:
            text += f" et {reference_cell(epci, 'percent')} dans l'EPCI"
        note.summary.append(text + ".")
    if year_row is not None:
        text = (
            f"En {year}, {formats.number(year_row['nb_actions'])} actions le visent, pour "
            f"{formats.currency(year_row['montant_accorde'])} accordés"
        )
        if bool(year_row.get("repartition_egale")):
            text += " (dont une part d'actions multi-quartiers partagée à parts égales)"
        note.summary.append(text + ".")
    else:
        note.summary.append(f"Aucune action de la programmation {year} ne vise ce quartier.")
    if prog_codes and prog_codes != [qpv]:
        note.summary.append(
            "La programmation code ce quartier " + ", ".join(prog_codes) + " (autre géographie)."
        )

    # 1. the quartier and its indicators
    block = Block("quartier", "Le quartier et ses indicateurs")
    if fiches.empty:
        block.paragraphs.append(
            "Aucun indicateur publié pour ce quartier (ni pour un QPV 2015 qui lui correspond)."
        )
    else:
        rows = []
        for col, label, kind in FICHE_FIELDS:
            values = {r["code_qpv"]: r.get(col) for r in records(fiches)}
            if all(missing(v) for v in values.values()):
                continue
            row = {"indicateur": label}
            for code, value in values.items():
                row[code] = value
            kind2 = "number1" if kind == "number1" else kind
            row["ensemble"] = agg[col]["valeur"] if col in agg else None
            for level in ("epci", "france"):
                ref = refs.get((level, col))
                row[level] = ref["valeur"] if ref is not None else None
                row[f"{level}_note"] = reference_cell(ref, kind2)
            row["_kind"] = kind2
            rows.append(row)
        table = Table(
            "table-indicateurs-quartier",
            "fiche_quartier",
            [
                Column("indicateur", "Indicateur"),
                *[Column(code, f"{code} ({millesime})", "auto") for code in fiches["code_qpv"]],
                Column("ensemble", "Ensemble des QPV du territoire", "auto", "agregats_qpv"),
                Column("epci", "EPCI", "note", "indicateurs_references"),
                Column("france", "France", "note", "indicateurs_references"),
            ],
            rows,
            caption="Quartier : mart fiche_quartier ; ensemble des QPV du territoire : "
            "agregats_qpv (sommes, taux pondérés par la population) ; EPCI et France : "
            "indicateurs_references (valeur publiée du millésime le plus proche, sinon valeur "
            "citée par un document du contrat, avec sa nature et son millésime).",
        )
        block.items.append(table)
    svg = _map(con, t, {qpv, *counterparts}, name)
    if svg:
        block.items.append(
            Chart(
                "carte-quartier",
                svg,
                "Contours officiels des QPV (ANCT / SIG Ville) ; le quartier et son équivalent "
                "dans l'autre géographie sont colorés.",
            )
        )
    note.blocks.append(block)

    # 2. employment rate over millésimes
    block = Block("emploi-quartier", "Le taux d'emploi au fil des millésimes")
    if rates.empty:
        block.empty = "Aucun taux d'emploi publié pour ce quartier."
    else:
        rows = []
        for r in records(rates):
            r = dict(r)
            r["qpv"] = code_label(r["code_qpv"], r["libelle_qpv"])
            r["evolution"] = (
                formats.points(r["evolution_points"])
                if not missing(r["evolution_points"])
                else COMPARABILITY.get(r["comparabilite_evolution"], formats.MISSING)
            )
            rows.append(r)
        block.items.append(
            Table(
                "table-emploi-quartier",
                "taux_emploi_quartier",
                [
                    Column("qpv", "QPV"),
                    Column("millesime", "Millésime"),
                    Column("taux_emploi", "Taux d'emploi", "percent"),
                    Column("taux_emploi_femmes", "Femmes", "percent"),
                    Column("taux_emploi_etrangers", "Étrangers", "percent"),
                    Column("ecart_commune_points", "Écart commune", "points"),
                    Column("ecart_epci_points", "Écart EPCI", "points"),
                    Column("ecart_france_points", "Écart France", "points"),
                    Column("evolution", "Évolution"),
                ],
                rows,
                caption="Une évolution n'est publiée qu'entre millésimes comparables "
                "(précaution INSEE), sinon la raison est donnée.",
            )
        )
    note.blocks.append(block)

    # 3. money and beneficiaries
    block = Block("financements-quartier", "Les actions et les financements")
    if effort.empty:
        block.empty = "Aucune action d'une programmation chargée ne vise ce quartier."
    else:
        block.items.append(
            Table(
                "table-effort-quartier",
                "effort_financier_qpv",
                [
                    Column("annee", "Année"),
                    Column("nb_actions", "Actions", "number"),
                    Column("montant_accorde", "Accordé", "currency"),
                    Column(
                        "montant_accorde_credits_specifiques",
                        "dont crédits spécifiques",
                        "currency",
                    ),
                    Column("population", "Population", "number"),
                    Column("euros_par_habitant", "€ / habitant", "currency2"),
                ],
                records(effort),
                caption="Une action qui vise plusieurs QPV est répartie entre eux (mart "
                "effort_financier_qpv : au prorata de la population, sinon à parts égales).",
            )
        )
        if not by_orientation.empty:
            block.items.append(
                Chart(
                    "graphique-orientations-quartier",
                    spending_chart(
                        records(by_orientation),
                        f"Montants accordés {year} au quartier par orientation et financeur",
                    ),
                    "Mart croisement_qpv_orientation_financeur.",
                )
            )
    note.blocks.append(block)

    block = Block("beneficiaires-quartier", f"Les bénéficiaires résidant dans le quartier ({year})")
    if benef.empty:
        block.empty = f"Aucun bilan {year} ne déclare de bénéficiaire résidant dans ce quartier."
    else:
        block.items.append(
            Table(
                "table-beneficiaires-quartier",
                "beneficiaires_genre",
                [
                    Column("orientation", "Orientation de l'action"),
                    Column("nb_actions", "Actions", "number"),
                    Column("femmes", "Femmes", "count"),
                    Column("hommes", "Hommes", "count"),
                    Column("total", "Total", "count"),
                    Column("part_femmes", "Part des femmes", "percent"),
                ],
                records(benef),
                caption=f"Effectifs inférieurs à {note.secrecy_threshold} masqués (« s »), "
                "avec masquage complémentaire.",
            )
        )
    note.blocks.append(block)

    # 4. places and zonings
    block = Block("lieux-zonages", "Lieux et zonages")
    if places.empty:
        block.notes.append(
            "Aucun lieu géocodé (équipement, lieu d'action) n'est chargé dans ce quartier."
        )
    else:
        block.items.append(
            Table(
                "table-lieux",
                "lieux_qpv",
                [
                    Column("type_lieu", "Type de lieu"),
                    Column("code_qpv", "QPV"),
                    Column("nb_lieux", "Lieux", "count"),
                ],
                records(places),
            )
        )
    if zonings.empty:
        block.notes.append(
            "Aucun zonage du territoire (QVA, NPNRU, cité éducative...) ne couvre ce quartier."
        )
    else:
        block.items.append(
            Table(
                "table-zonages",
                "ref_zonages",
                [
                    Column("type_zonage_libelle", "Zonage"),
                    Column("nom", "Nom"),
                    Column("code_qpv", "QPV couverts (codes 2015 et 2024)"),
                    Column("population", "Population", "number"),
                    Column("source_libelle", "Source"),
                ],
                records(zonings),
            )
        )
        if not zone_spend.empty:
            block.items.append(
                Table(
                    "table-depenses-zonage",
                    "depenses_zonage",
                    [
                        Column("nom_zonage", "Zonage"),
                        Column("orientation_libelle", "Orientation"),
                        Column("nb_actions", "Actions", "number"),
                        Column("montant_accorde_zonage", "Accordé dans le zonage", "currency"),
                    ],
                    records(zone_spend),
                )
            )
    note.blocks.append(block)

    note.sources = [
        *observation_sources(con, obs_codes),
        "ANCT, contours officiels des quartiers prioritaires (SIG Ville)",
        *sorted({str(r["source"]) for r in refs.values() if r.get("source")}),
        *suivi_sources(con, year),
    ]
    return note
