"""What the rapport annuel shows, read from the marts of the warehouse (read-only).

Every figure of the report is a value of a mart row read here: the report selects rows and
formats them, it adds, averages or divides nothing. Counts of people pass through the
statistical-secrecy masking of the published exports (``pipelines/publication/secret.py``)
before they reach the page. Names of territories and indicator definitions come from the
referentiels (text, not figures); the list of source files from the ingestion log.

Why this module is long: one reader per section of the report (observation, programmation,
croisement, bilans, objectives, controls, equality marker), each a few queries of its mart, kept
together so that every figure the report prints is traceable to a mart in one file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.publication.secret import load_specs, mask_counts
from pipelines.report import charts

# Key indicators of the observation part (fiche_quartier columns, ref_indicateurs codes).
KEY_INDICATORS = [
    "pop_municipale",
    "taux_emploi",
    "taux_emploi_femmes",
    "demandeurs_emploi_abc",
    "demandeurs_emploi_abc_femmes",
    "demandeurs_emploi_abc_hommes",
    "taux_pauvrete_60",
    "revenu_disponible_median_uc",
    "part_prestations_sociales",
    "allocataires_caf",
    "part_0_24",
    "part_femmes",
    "part_etrangers",
]
DEMO_TOKEN = "DEMO_FICTIF"


class ReportError(Exception):
    """A report that cannot be written: unknown territory, no data for the year, no warehouse."""


@dataclass
class Territory:
    code: str
    name: str
    siren: str | None
    contract: str | None


@dataclass
class ReportData:
    territory: Territory
    year: int
    millesime: int | None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    extent: tuple[float, float, float, float] | None = None
    demo: bool = False
    secrecy_threshold: int = 5
    #: codes of every territory of the warehouse (to leave the others' files out of the sources)
    territory_codes: list[str] = field(default_factory=list)
    #: the communes' outlines under the QPV of the maps; None: no commune contours loaded
    commune_outlines: list[charts.Outline] | None = None

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def connect(warehouse: Path) -> duckdb.DuckDBPyConnection:
    if not Path(warehouse).exists():
        raise ReportError(
            f"{warehouse}: entrepôt introuvable ; lancer d'abord `observatoire build`."
        )
    from pipelines.duckdb_utils import load_spatial

    con = duckdb.connect(str(warehouse), read_only=True)
    load_spatial(con)
    return con


def territories(con: duckdb.DuckDBPyConnection) -> list[Territory]:
    rows = con.execute(
        "select territoire, nom, siren, contrat from referentiels.ref_territoires order by 1"
    ).fetchall()
    return [Territory(*r) for r in rows]


def resolve_territory(con: duckdb.DuckDBPyConnection, query: str) -> Territory:
    """A territory by its short code (VM), its SIREN (245901160) or a unique part of its name."""
    known = territories(con)
    key = query.strip().lower()
    for t in known:
        if key in {t.code.lower(), (t.siren or "").lower()}:
            return t
    candidates = [t for t in known if key and key in t.name.lower()]
    if len(candidates) == 1:
        return candidates[0]
    listing = ", ".join(f"{t.code} ({t.siren}, {t.name})" for t in known)
    problem = "ambigu" if candidates else "inconnu"
    raise ReportError(f"territoire {query!r} {problem} ; territoires connus : {listing}")


def available_years(con: duckdb.DuckDBPyConnection, territory: str) -> list[int]:
    rows = con.execute(
        "select distinct annee from marts.synthese_programmation where territoire = ? order by 1",
        [territory],
    ).fetchall()
    return [r[0] for r in rows]


def _df(con, sql: str, params: list) -> pd.DataFrame:
    return con.execute(sql, params).df()


#: The reference levels the rapport annuel prints; the first two are national, the others
#: belong to the territory's EPCI.
REFERENCE_LEVELS = ("france", "ensemble_qpv", "epci", "qpv_epci")
NATIONAL_LEVELS = ("france", "ensemble_qpv")


def chosen_references(
    con, siren: str, indicators, millesime, levels=REFERENCE_LEVELS
) -> pd.DataFrame:
    """One reference per level and indicator: a published value of the report's millésime,
    else the latest earlier published one, else a later one, else one without millésime, else
    a value quoted by a document of this territory's EPCI (never another territory's document).
    The millésime and nature are printed beside the value."""
    national = [level for level in levels if level in NATIONAL_LEVELS]
    local = [level for level in levels if level not in NATIONAL_LEVELS]
    return _df(
        con,
        """
        select * from marts.indicateurs_references
        where (array_contains(?, territoire_type)
               or array_contains(?, territoire_type) and territoire_code = ?)
          and (nature = 'publiee' or siren_document = ?)
          and array_contains(?, indicateur)
        qualify row_number() over (
            partition by territoire_type, indicateur
            order by
                nature = 'publiee' desc,
                case when millesime = ? then 0 when millesime < ? then 1
                     when millesime is not null then 2 else 3 end,
                millesime desc, annee_document desc nulls last, source
        ) = 1
        order by territoire_type, indicateur
        """,
        [national, local, siren, siren, list(indicators), millesime, millesime],
    )


def _map_rows(
    con, mart: str, territory: str, period_column: str, period, projection: str
) -> pd.DataFrame:
    """The contours a map mart retains for a territory and period, with their SVG path."""
    return _df(
        con,
        f"""
        select c.* exclude (geom), s.chemin, s.x, s.y
        from marts.{mart} c
        join (
            select code_qpv, ST_AsSVG(g, false, 0) as chemin,
                   ST_X(ST_PointOnSurface(g)) as x, ST_Y(ST_PointOnSurface(g)) as y
            from (select code_qpv, {projection} as g
                  from marts.dim_qpv where territoire = ? and geom is not null)
        ) s using (code_qpv)
        where c.territoire = ? and c.{period_column} = ? and c.contour_retenu
        order by c.code_qpv
        """,
        [territory, territory, period],
    )


COMMUNES_VIEW = "stg_communes__contours"


def commune_outlines(
    con, territory: str, extent: tuple[float, float, float, float] | None, labelled: set[str]
) -> list[charts.Outline] | None:
    """The limits of the communes a map of ``extent`` shows (lines, clipped to its window:
    :func:`~pipelines.report.charts.map_window`), projected as the territory's QPV (the CRS of
    their surfaces) and simplified to half a pixel; the names of ``labelled`` communes (the
    territory's) may be written. None when no commune contours are loaded (a warehouse built
    before them has no view ``staging.stg_communes__contours``)."""
    if extent is None:
        return None
    present = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'staging' "
        "and table_name = ?",
        [COMMUNES_VIEW],
    ).fetchone()[0]
    if (
        not present
        or not con.execute(f"select count(*) from staging.{COMMUNES_VIEW}").fetchone()[0]
    ):
        return None
    crs = con.execute(
        "select coalesce(mode(crs_surface), 'EPSG:2154') from marts.dim_qpv "
        "where territoire = ? and geom is not null",
        [territory],
    ).fetchone()[0]
    window = charts.map_window(extent)
    tolerance = (window[2] - window[0]) / 1500
    # the window in WGS84, widened by about 1 km: a first cut on the stored contours' extents
    search = con.execute(
        """
        select ST_XMin(w), ST_YMin(w), ST_XMax(w), ST_YMax(w)
        from (select ST_Buffer(ST_Transform(ST_MakeEnvelope(?, ?, ?, ?), ?, 'EPSG:4326',
                                            always_xy := true), 0.01) as w)
        """,
        [*window, crs],
    ).fetchone()
    rows = con.execute(
        f"""
        with box as (select ST_MakeEnvelope(?, ?, ?, ?) as b, ST_MakeEnvelope(?, ?, ?, ?) as s),
        -- cut to the search box first (a commune's contour may hold thousands of points), then
        -- project, simplify and make valid the few points left
        near as (
            select code_commune, nom_commune, ST_CollectionExtract(ST_MakeValid(
                ST_SimplifyPreserveTopology(ST_Transform(ST_Intersection(geom, box.s),
                                                         'EPSG:4326', ?, always_xy := true), ?)
            ), 3) as full_g
            from staging.{COMMUNES_VIEW}, box
            where ST_Intersects_Extent(geom, box.s)
        ),
        -- the part in the window (for the name) and the limits in the window: the lines of
        -- the cut at the window's edge are not drawn
        p as (
            select code_commune, nom_commune, ST_Intersection(full_g, box.b) as g,
                   ST_Intersection(ST_Boundary(full_g), box.b) as limite
            from near, box
        ),
        -- the QPV, widened by a line of text: a name is written off them where it can
        qpv as (
            select coalesce(ST_Buffer(ST_Union_Agg(ST_MakeValid(ST_Transform(
                geom, 'EPSG:4326', ?, always_xy := true))), ?), ST_GeomFromText('POLYGON EMPTY'))
                as q
            from marts.dim_qpv where territoire = ? and geom is not null
        ),
        l as (
            select p.*, ST_Difference(g, qpv.q) as libre from p, qpv where not ST_IsEmpty(g)
        )
        select code_commune, nom_commune, ST_AsSVG(limite, false, 0) as chemin,
               ST_X(ST_PointOnSurface(coalesce(libre_ou_null, g))) as x,
               ST_Y(ST_PointOnSurface(coalesce(libre_ou_null, g))) as y,
               ST_XMax(g) - ST_XMin(g) as largeur, ST_YMax(g) - ST_YMin(g) as hauteur
        from (select *, case when ST_IsEmpty(libre) then null else libre end as libre_ou_null
              from l)
        order by code_commune
        """,
        [*window, *search, crs, tolerance, crs, (window[2] - window[0]) / 80, territory],
    ).fetchall()
    return [
        charts.Outline(
            code=code,
            name=name or code,
            path=path,
            label=code in labelled,
            x=x,
            y=y,
            width=width or 0.0,
            height=height or 0.0,
        )
        for code, name, path, x, y, width, height in rows
    ]


#: Its columns start with the display order (orientation_code, ordre_modalite, modalite_libelle).
AGE_PUBLIC = "beneficiaires_age_public_orientation"


def _masked(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    specs = load_specs()
    return mask_counts(frame, specs[table]) if table in specs else frame


def load(con: duckdb.DuckDBPyConnection, territory: Territory, year: int) -> ReportData:
    t = territory.code
    years = available_years(con, t)
    if year not in years:
        raise ReportError(
            f"{t} : aucune programmation pour {year} dans l'entrepôt "
            f"(années disponibles : {', '.join(map(str, years)) or 'aucune'})"
        )
    millesime = con.execute(
        "select max(millesime) from marts.fiche_quartier where territoire = ?", [t]
    ).fetchone()[0]
    tables: dict[str, pd.DataFrame] = {}
    q = tables.__setitem__

    # --- territory
    q(
        "qpv",
        _df(
            con,
            """
            select code_qpv, libelle_qpv, geographie, noms_communes, nb_communes, population,
                   millesime_population, surface_km2, densite_hab_km2, geometrie_reparee
            from marts.dim_qpv where territoire = ? order by geographie desc, code_qpv
            """,
            [t],
        ),
    )
    q(
        "passage",
        _df(
            con,
            """
            select * from marts.passage_qpv_2015_2024 where territoire = ?
            order by coalesce(code_qpv_2024, 'ZZ'), code_qpv_2015
            """,
            [t],
        ),
    )
    q(
        "population",
        _df(
            con,
            """
            select millesime, valeur, methode, nb_qpv, complet, geographie
            from marts.agregats_qpv
            where niveau = 'territoire_contrat' and code_territoire = ?
              and indicateur = 'pop_municipale'
            order by millesime
            """,
            [t],
        ),
    )
    # Contours of the territory's map: projected to the CRS its surfaces were computed in
    # (Lambert-93 in the metropole, the local UTM zone overseas), made valid again (a valid
    # contour can self-touch once projected: QN04705M, where GEOS's precision reduction
    # stopped the report), snapped to 1 m, simplified to 5 m.
    projection = """
        ST_SimplifyPreserveTopology(ST_ReducePrecision(ST_MakeValid(
            ST_Transform(geom, 'EPSG:4326', coalesce(crs_surface, 'EPSG:2154'), always_xy := true)
            ), 1.0), 5.0)
    """
    q(
        "contours",
        _df(
            con,
            f"""
            with p as (
                select code_qpv, libelle_qpv, geographie, noms_communes, codes_communes,
                       {projection} as g
                from marts.dim_qpv where territoire = ? and geom is not null
            )
            select code_qpv, libelle_qpv, geographie, noms_communes, codes_communes,
                   ST_AsSVG(g, false, 0) as chemin,
                   ST_X(ST_PointOnSurface(g)) as x, ST_Y(ST_PointOnSurface(g)) as y,
                   ST_XMin(g) as xmin, ST_YMin(g) as ymin, ST_XMax(g) as xmax, ST_YMax(g) as ymax
            from p order by code_qpv
            """,
            [t],
        ),
    )
    q(
        "communes",
        _df(
            con,
            """
            select b.code_qpv, b.code_commune, b.nom_commune, b.rang_commune
            from marts.bridge_qpv_commune b
            join marts.dim_qpv d using (code_qpv)
            where d.territoire = ? order by b.code_qpv, b.rang_commune
            """,
            [t],
        ),
    )

    # --- observation
    q(
        "taux_emploi",
        _df(
            con,
            """
            select * from marts.taux_emploi_quartier
            where territoire = ? and millesime = ? order by code_qpv
            """,
            [t, millesime],
        ),
    )
    q(
        "fiches",
        _df(
            con,
            "select * from marts.fiche_quartier where territoire = ? and millesime = ? "
            "order by code_qpv",
            [t, millesime],
        ),
    )
    q(
        "agregats",
        _df(
            con,
            f"""
            select * from marts.agregats_qpv
            where niveau = 'territoire_contrat' and code_territoire = ? and millesime = ?
              and indicateur in ({", ".join("?" for _ in KEY_INDICATORS)})
            """,
            [t, millesime, *KEY_INDICATORS],
        ),
    )
    q("references", chosen_references(con, territory.siren, KEY_INDICATORS, millesime))
    q("carte_emploi", _map_rows(con, "carte_taux_emploi", t, "millesime", millesime, projection))
    q("carte_effort", _map_rows(con, "carte_effort_qpv", t, "annee", year, projection))

    # --- suivi
    q(
        "synthese",
        _df(
            con,
            "select * from marts.synthese_programmation where territoire = ? and annee <= ? "
            "order by annee",
            [t, year],
        ),
    )
    q(
        "depenses_orientation",
        _df(
            con,
            """
            select * from marts.depenses_orientation where territoire = ? and annee = ?
            order by orientation_code, financeur, type_credit
            """,
            [t, year],
        ),
    )
    q(
        "depenses_financeur",
        _df(
            con,
            """
            select * from marts.depenses_financeur where territoire = ? and annee = ?
            order by montant_accorde desc, financeur
            """,
            [t, year],
        ),
    )
    q(
        "effort",
        _df(
            con,
            """
            select * from marts.effort_financier_qpv where territoire = ? and annee = ?
            order by code_qpv = 'SANS_QPV', code_qpv
            """,
            [t, year],
        ),
    )
    # programmation x observation per QPV (seed 002); beneficiaries masked as in the exports
    q(
        "croisement",
        _masked(
            _df(
                con,
                """
                select * from marts.croisement_qpv_annee where territoire = ? and annee = ?
                order by code_qpv = 'SANS_QPV', code_qpv
                """,
                [t, year],
            ),
            "croisement_qpv_annee",
        ),
    )
    # other zonings of the contract (cités éducatives, NPNRU sites, QIC...): € by orientation
    q(
        "zonages",
        _df(
            con,
            """
            select * from marts.depenses_zonage where territoire = ? and annee = ?
            order by type_zonage, nom_zonage, orientation_code
            """,
            [t, year],
        ),
    )
    q(
        "porteurs",
        _df(
            con,
            """
            select * from marts.porteurs_programmation where territoire = ? and annee = ?
            order by rang_montant_accorde, porteur_nom limit 15
            """,
            [t, year],
        ),
    )

    # --- égalité (counts of people: masked as in the published exports)
    q(
        "beneficiaires_orientation",
        _masked(
            _df(
                con,
                "select * from marts.beneficiaires_genre_orientation "
                "where territoire = ? and annee = ? order by orientation_code",
                [t, year],
            ),
            "beneficiaires_genre_orientation",
        ),
    )
    q(
        "beneficiaires",
        _masked(
            _df(
                con,
                "select * from marts.beneficiaires_genre where territoire = ? and annee = ? "
                "order by orientation_code, qpv_residence",
                [t, year],
            ),
            "beneficiaires_genre",
        ),
    )
    # --- bilans read in full: realisation, age bands and publics by orientation (masked)
    for key, mart in (("realisation", "bilans_realisation"), ("age_public", AGE_PUBLIC)):
        sql = f"select * from marts.{mart} where territoire = ? and annee = ? order by all"
        q(key, _masked(_df(con, sql, [t, year]), mart))
    q(
        "marqueur",
        _df(
            con,
            "select * from marts.egalite_marqueur where territoire = ? and annee = ? order by rang",
            [t, year],
        ),
    )

    # --- objectifs du contrat (objectifs.csv of the territory folder): that year's row of each
    q(
        "objectifs",
        _masked(
            _df(
                con,
                """
                select * from marts.tableau_bord_objectifs where territoire = ? and annee = ?
                order by case statut when 'non atteint' then 0 when 'en cours' then 1
                         when 'atteint' then 2 else 3 end, code_objectif
                """,
                [t, year],
            ),
            "tableau_bord_objectifs",
        ),
    )

    # result indicators of the instruction of 4 January 2023 (annex 8): counts masked
    q(
        "indicateurs_resultat",
        _masked(
            _df(
                con,
                "select * from marts.indicateurs_resultat where territoire = ? and annee = ? "
                "order by rang",
                [t, year],
            ),
            "indicateurs_resultat",
        ),
    )

    # --- contrôles
    q(
        "controles",
        _df(
            con,
            """
            select * from marts.controles_programmation
            where territoire = ? and annee = ? and resultat <> 'conforme'
            order by niveau_controle desc, regle, dossier
            """,
            [t, year],
        ),
    )

    # rules the loaded data cannot check that year: listed apart, never counted as respected
    q(
        "regles_non_verifiables",
        _df(
            con,
            """
            select regle, financeur, statut, nb_actions_concernees, nb_actions_non_verifiables,
                   motif, description, source_libelle, citation
            from marts.regles_non_verifiables
            where territoire = ? and annee = ?
            order by statut, regle
            """,
            [t, year],
        ),
    )

    # the territory's rules in force that year (none: the report says so, not « aucune infraction »)
    q(
        "regles",
        _df(
            con,
            """
            select count(*) as nb_regles,
                   count(*) filter (where controle <> 'aucun') as nb_regles_evaluables
            from referentiels.ref_regles_financement
            where territoire = ? and annee_debut <= ? and coalesce(annee_fin, ?) >= ?
            """,
            [t, year, year, year],
        ),
    )

    # --- méthodologie
    q(
        "sources",
        _df(
            con,
            """
            select source, fichier, empreinte_sha256, lignes_lues, lignes_chargees,
                   lignes_rejetees, statut
            from staging.stg_audit__ingestion_log order by source, fichier
            """,
            [],
        ),
    )
    q(
        "dictionnaire",
        _df(
            con,
            f"""
            select indicateur, libelle, definition, unite, producteur, theme
            from referentiels.ref_indicateurs
            where indicateur in ({", ".join("?" for _ in KEY_INDICATORS)})
            order by theme, indicateur
            """,
            KEY_INDICATORS,
        ),
    )
    contours = tables["contours"]
    extent = None
    if not contours.empty:
        extent = (
            float(contours["xmin"].min()),
            float(contours["ymin"].min()),
            float(contours["xmax"].max()),
            float(contours["ymax"].max()),
        )
    from pipelines.publication.secret import threshold

    demo = bool(tables["sources"]["fichier"].astype(str).str.contains(DEMO_TOKEN).any())
    labelled = set(tables["communes"]["code_commune"].dropna().astype(str))
    return ReportData(
        commune_outlines=commune_outlines(con, t, extent, labelled),
        territory=territory,
        year=year,
        millesime=millesime,
        tables=tables,
        extent=extent,
        demo=demo,
        secrecy_threshold=threshold(),
        territory_codes=[x.code for x in territories(con)],
    )
