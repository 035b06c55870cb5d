"""The QGIS kit: ``qgis/observatoire.gpkg`` (thematic layers, each with its default style) and
``qgis/observatoire.qgz`` (a project opening them), under the marts folder.

Layers, in Lambert-93 (EPSG:2154), one geometry type and one QPV geography (2015 or 2024
contours) each, table names ending by the geography:

* ``qpv_2024``, ``qpv_2015``: the QPV contours of ``dim_qpv`` (always written, empty when no
  contour of that generation is loaded: the ``lisez_moi`` table says so);
* ``zonages_qpv_<g>``: the zonings of ``ref_zonages`` (NPNRU sites, cités éducatives...) drawn as
  the union of the contours of the QPV they cover (``int_zonages__qpv``): the zonings carry no
  contour of their own; with the amount assigned to the zoning in its latest year
  (``depenses_zonage``);
* ``taux_emploi_qpv_<g>``: ``carte_taux_emploi``, sequential classes of the taux d'emploi;
* ``effort_qpv_<g>``: ``carte_effort_qpv``, sequential classes of the euros per inhabitant, and
  ``effort_montants_qpv_<g>``: the same rows as points (point on surface) whose circles are
  proportional to the amount granted (an amount is never coloured as a choropleth);
* ``lieux_qpv_<g>``: the counts of geocoded places of ``lieux_qpv`` inside each QPV;
* ``lisez_moi``: a table (no geometry) listing every layer with its title, its number of
  features and what it leaves out (layers without any feature are not written and said here).

A thematic layer is written for each geography that has at least one feature. Rows over
several years carry ``dernier_millesime`` / ``derniere_annee`` (the latest of the territory);
the project shows those (``contour_retenu`` too, the contours the territory's map draws) and
the attribute table keeps every year.

Field types: booleans as GeoPackage ``BOOLEAN``, counts as ``INTEGER``, rates, densities and
populations as ``REAL``; amounts (``DECIMAL(18, 2)`` in the warehouse) as ``REAL`` rounded to
the cent, shown with 2 decimals (the style's field configuration): a GeoPackage has no decimal
type. Field aliases are the French column labels of the workbooks (:mod:`.libelles`).

Statistical secrecy applies as in the Parquet exports: every mart is read as published
(:func:`pipelines.publication.tableurs.published`).

Why this module is long: each of the six kinds of layer has its own SQL (joins to the contours,
the latest year, the zonings' union of contours), its own classes and legend, and its own line
in the project; they share the typed reading of DuckDB rows and the class computation, and are
kept in one place so that a layer and its style are read together.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.contours import polygonal_multipolygons
from geo.qgis import (
    ProjectLayer,
    Rule,
    Style,
    StyleRow,
    qml,
    write_layer,
    write_layer_styles,
    write_project,
    write_table,
)
from pipelines.duckdb_utils import quote_identifier, tables_in
from pipelines.publication.libelles import column_label
from pipelines.publication.secret import load_specs
from pipelines.publication.tableurs import published

logger = logging.getLogger(__name__)

FOLDER = "qgis"
GPKG_NAME = "observatoire.gpkg"
PROJECT_NAME = "observatoire.qgz"
CRS = "EPSG:2154"
GEOGRAPHIES = ("2024", "2015")
PROJECT_TITLE = "Observatoire de la politique de la ville"

#: Sequential colour ramps (ColorBrewer, 5 classes), light to dark.
BLUES = ("255,255,204,255", "161,218,180,255", "65,182,196,255", "44,127,184,255", "37,52,148,255")
ORANGES = ("255,255,212,255", "254,217,142,255", "254,153,41,255", "217,95,14,255", "153,52,4,255")
PURPLES = (
    "242,240,247,255",
    "203,201,226,255",
    "158,154,200,255",
    "117,107,177,255",
    "84,39,143,255",
)
NO_DATA = Rule("Sans donnée", "150,150,150,255", None, "f_diagonal")
#: Extra labels of the kit's own columns.
LABELS = {
    "dernier_millesime": "Dernier millésime du territoire",
    "derniere_annee": "Dernière année du territoire",
    "codes_qpv": "Codes des QPV couverts",
    "noms_qpv": "QPV couverts",
    "nb_qpv": "Nombre de QPV couverts",
    "annee_montant": "Année du montant",
    "montant_accorde_zonage": "Montant accordé au zonage (€)",
    "montant_accorde": "Montant accordé (€)",
    "montant_accorde_credits_specifiques": "Montant accordé, crédits spécifiques (€)",
    "euros_par_habitant": "Euros par habitant",
    "taux_emploi": "Taux d'emploi (%)",
    "taux_emploi_femmes": "Taux d'emploi des femmes (%)",
    "densite_hab_km2": "Densité (hab./km²)",
}


class QgisExportError(RuntimeError):
    """The kit could not be written (message in French)."""


@dataclass
class QgisExport:
    """What :func:`export_qgis` wrote: the files, the features per layer, the notes."""

    folder: Path
    gpkg: Path | None = None
    project: Path | None = None
    layers: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Layer:
    table: str
    title: str
    group: str
    geography: str
    frame: gpd.GeoDataFrame
    style: Style
    description: str
    subset: str | None = None
    visible: bool = False
    #: one project entry per value of this field (e.g. one per type of place)
    split_by: str | None = None


# -- reading the marts -------------------------------------------------------------------------


#: DuckDB's integer types: written as GeoPackage INTEGER (pandas Int64).
INTEGER_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)


def query_frame(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> gpd.GeoDataFrame:
    """The rows of ``sql`` (a ``geom`` column in WGS84) as a GeoDataFrame in Lambert-93, typed
    for the GeoPackage: BOOLEAN → nullable boolean, integers → nullable Int64, DECIMAL(p, s) →
    float rounded to s decimals, DOUBLE → float, anything else → text."""
    kinds = {
        r[0]: r[1].upper()
        for r in con.execute(f"describe select * from ({sql})", params or []).fetchall()  # noqa: S608
    }
    select = []
    for name, kind in kinds.items():
        col = quote_identifier(name)
        if name == "geom":
            # a mart read through its masked copy (a pandas frame) has its geometry as WKB
            select.append(f"ST_AsWKB({col}) as {col}" if kind.startswith("GEOMETRY") else col)
        elif kind == "BOOLEAN" or kind.startswith(("DECIMAL", "DOUBLE", "FLOAT", "REAL")):
            select.append(col)
        elif kind in INTEGER_TYPES:
            select.append(f"cast({col} as bigint) as {col}")
        else:
            select.append(f"cast({col} as varchar) as {col}")
    frame = con.execute(
        f"select {', '.join(select)} from ({sql})",
        params or [],  # noqa: S608
    ).df()
    for name, kind in kinds.items():
        if name == "geom":
            continue
        if kind == "BOOLEAN":
            frame[name] = frame[name].astype("boolean")
        elif kind.startswith("DECIMAL"):
            scale = int(kind.rstrip(")").split(",")[1]) if "," in kind else 0
            frame[name] = (
                pd.to_numeric(frame[name].astype("Float64"), errors="coerce")
                .astype(float)
                .round(scale)
            )
        elif kind.startswith(("DOUBLE", "FLOAT", "REAL")):
            frame[name] = frame[name].astype(float)
        elif kind in INTEGER_TYPES:
            frame[name] = frame[name].astype("Int64")
        else:
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    wkb = frame.pop("geom")
    geoms = shapely.from_wkb(
        np.array([None if v is None or v is pd.NA else bytes(v) for v in wkb], dtype=object)
    )
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"), crs="EPSG:4326")
    gdf = gdf.rename_geometry("geom").to_crs(CRS)
    # a contour valid in WGS84 may self-touch once projected (QN04705M in the reports): made
    # valid again, its polygonal parts kept, so that QGIS's and GDAL's checks pass
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    # GeometryCollections (a repair's leftovers) too: a layer has one geometry type
    invalid = ~shapely.is_missing(geoms) & (
        ~shapely.is_valid(geoms) | (shapely.get_type_id(geoms) == 7)
    )
    if invalid.any():
        geoms = geoms.copy()
        geoms[invalid] = polygonal_multipolygons(shapely.make_valid(geoms[invalid]))
        gdf["geom"] = gpd.GeoSeries(geoms, index=gdf.index, crs=CRS)
    return gdf


def _number(value: float, decimals: int = 1) -> str:
    """A number as a French reader writes it: decimal comma, narrow space in thousands."""
    text = f"{value:,.{decimals}f}".replace(",", "\u202f").replace(".", ",")
    return text


def classes(
    values: pd.Series, column: str, colors: tuple[str, ...], unit: str = "", decimals: int = 1
) -> tuple[Rule, ...]:
    """Sequential classes of ``column`` by quantiles of its non-null values (up to as many as
    colours), each a rule ``"column" >= low AND "column" < high`` (the last one ``<=``)."""
    data = pd.to_numeric(values, errors="coerce").dropna().astype(float)
    if data.empty:
        return ()
    quantiles = np.quantile(data, np.linspace(0, 1, len(colors) + 1))
    factor = 10**decimals
    lows = [round(float(np.floor(quantiles[0] * factor)) / factor, decimals)]
    for q in quantiles[1:-1]:
        edge = round(float(q), decimals)  # a Python float: its repr goes into the rule
        if edge > lows[-1]:
            lows.append(edge)
    top = round(float(np.ceil(quantiles[-1] * factor)) / factor, decimals)
    bounds = [*lows, max(top, lows[-1])]
    count = len(bounds) - 1
    # light to dark over the whole ramp whatever the number of classes
    picks = [colors[round(i * (len(colors) - 1) / max(count - 1, 1))] for i in range(count)]
    rules = []
    suffix = f" {unit}" if unit else ""
    for i in range(count):
        low, high = bounds[i], bounds[i + 1]
        last = i == count - 1
        condition = f'"{column}" >= {low!r} AND "{column}" {"<=" if last else "<"} {high!r}'
        shown = high if last or decimals else high - 1  # counts: 2 à 11, then 12 à 50
        label = (
            f"{_number(low, decimals)}{suffix}"
            if shown <= low
            else f"{_number(low, decimals)} à {_number(shown, decimals)}{suffix}"
        )
        rules.append(Rule(label, picks[i], condition))
    return tuple(rules)


def _aliases(columns) -> dict[str, str]:
    return {c: LABELS.get(c) or column_label(c) for c in columns}


def _money(columns) -> dict[str, int]:
    return {c: 2 for c in columns if c.startswith("montant")}


def _latest(frame: gpd.GeoDataFrame, year: str, flag: str) -> gpd.GeoDataFrame:
    """``flag`` = the row's ``year`` is the latest of its territory."""
    latest = frame.groupby("territoire")[year].transform("max")
    frame.insert(len(frame.columns) - 1, flag, (frame[year] == latest).astype("boolean"))
    return frame


# -- the layers --------------------------------------------------------------------------------


def _qpv_layers(con, source: str) -> list[_Layer]:
    layers = []
    # the centroid's coordinates: the layer has the contour itself
    kept = [
        quote_identifier(r[0])
        for r in con.execute(f"describe select * from {source}").fetchall()  # noqa: S608
        if r[0] not in ("centroide_lon", "centroide_lat")
    ]
    for geography, outline in (("2024", "200,30,30,255"), ("2015", "30,70,200,255")):
        frame = query_frame(
            con,
            f"select {', '.join(kept)} from {source} "  # noqa: S608
            "where geographie = ? and geom is not null order by code_qpv",
            [geography],
        )
        columns = [c for c in frame.columns if c != "geom"]
        style = Style(
            "polygon",
            color="255,255,255,0",
            outline=outline,
            outline_width=0.5,
            label_field="libelle_qpv",
            label_max_scale=250000,
            aliases=_aliases(columns),
            decimals={"surface_km2": 3, "densite_hab_km2": 0, "population": 0},
        )
        layers.append(
            _Layer(
                f"qpv_{geography}",
                f"Quartiers prioritaires {geography}",
                "Quartiers prioritaires",
                geography,
                frame,
                style,
                f"Contours des QPV de la géographie {geography} (dim_qpv), Lambert-93.",
                visible=geography == "2024",
            )
        )
    return layers


def _zoning_layers(con, dim_qpv: str) -> tuple[list[_Layer], list[str]]:
    if "int_zonages__qpv" not in tables_in(con, "intermediate"):
        return [], [
            "Zonages : la correspondance des zonages et des QPV n'est pas dans l'entrepôt, "
            "couche non écrite."
        ]
    has_spending = "depenses_zonage" in tables_in(con, "marts")
    spending = (
        """
        montants as (
            select territoire, code_zonage, annee as annee_montant,
                   sum(montant_accorde_zonage) as montant_accorde_zonage
            from marts.depenses_zonage
            group by territoire, code_zonage, annee
            qualify annee = max(annee) over (partition by territoire, code_zonage)
        ),"""
        if has_spending
        else """
        montants as (
            select null::varchar as territoire, null::varchar as code_zonage,
                   null::integer as annee_montant, null::decimal(18, 2) as montant_accorde_zonage
            where false
        ),"""
    )
    layers, notes = [], []
    for geography in GEOGRAPHIES:
        sql = f"""
        with {spending.strip()}
        zonages as (
            select z.territoire, z.code_zonage, z.type_zonage_libelle, z.nom_zonage,
                   count(*) as nb_qpv,
                   string_agg(z.code_qpv, ', ' order by z.code_qpv) as codes_qpv,
                   string_agg(d.libelle_qpv, ', ' order by z.code_qpv) as noms_qpv,
                   min(z.annee_debut) as annee_debut, max(z.annee_fin) as annee_fin,
                   ST_Union_Agg(d.geom) as geom
            from intermediate.int_zonages__qpv as z
            inner join {dim_qpv} as d
                on d.code_qpv = z.code_qpv and d.geographie = ? and d.geom is not null
            group by all
        )
        select zonages.* exclude (geom), montants.annee_montant,
               montants.montant_accorde_zonage, zonages.geom
        from zonages
        left join montants using (territoire, code_zonage)
        order by territoire, code_zonage
        """  # noqa: S608
        frame = query_frame(con, sql, [geography])
        if frame.empty:
            continue
        columns = [c for c in frame.columns if c != "geom"]
        style = Style(
            "polygon",
            kind="rules",
            rules=(Rule("Zonage (QPV couverts)", "120,60,160,255", None, "b_diagonal"),),
            outline="120,60,160,255",
            outline_width=0.6,
            label_field="nom_zonage",
            aliases=_aliases(columns),
            decimals=_money(columns),
        )
        layers.append(
            _Layer(
                f"zonages_qpv_{geography}",
                f"Zonages (contours des QPV {geography} couverts)",
                "Zonages",
                geography,
                frame,
                style,
                "Zonages de ref_zonages dessinés par la réunion des contours des QPV "
                f"{geography} qu'ils couvrent (les zonages n'ont pas de contour propre) ; "
                "montant accordé au zonage la dernière année de depenses_zonage.",
            )
        )
    without = con.execute(
        f"""select count(*) from (
            select distinct z.territoire, z.code_zonage from intermediate.int_zonages__qpv as z
            except
            select distinct z.territoire, z.code_zonage from intermediate.int_zonages__qpv as z
            inner join {dim_qpv} as d on d.code_qpv = z.code_qpv and d.geom is not null
        )"""  # noqa: S608
    ).fetchone()[0]
    if without:
        notes.append(
            f"Zonages : {without} zonage(s) sans aucun QPV dont le contour est chargé, "
            "absents des couches."
        )
    return layers, notes


def _map_layers(con, taux: str | None, effort: str | None) -> list[_Layer]:
    layers = []
    for geography in GEOGRAPHIES:
        if taux:
            frame = query_frame(
                con,
                f"select * from {taux} where geographie_contour = ? and geom is not null "  # noqa: S608
                "order by territoire, millesime, code_qpv",
                [geography],
            )
            if not frame.empty:
                frame = _latest(frame, "millesime", "dernier_millesime")
                columns = [c for c in frame.columns if c != "geom"]
                rules = (
                    Rule("Secret statistique", "200,200,200,255", '"secret_taux_emploi"', "dense5"),
                    *classes(frame["taux_emploi"], "taux_emploi", BLUES, "%"),
                    NO_DATA,
                )
                layers.append(
                    _Layer(
                        f"taux_emploi_qpv_{geography}",
                        f"Taux d'emploi des 15-64 ans (contours QPV {geography})",
                        "Cartes",
                        geography,
                        frame,
                        Style(
                            "polygon",
                            kind="rules",
                            rules=rules,
                            outline="90,90,90,255",
                            outline_width=0.2,
                            label_field="libelle_qpv",
                            label_max_scale=250000,
                            aliases=_aliases(columns),
                        ),
                        "Taux d'emploi par QPV (carte_taux_emploi), classes par quantiles ; "
                        "le projet montre le dernier millésime et les contours retenus.",
                        subset='"contour_retenu" = 1 AND "dernier_millesime" = 1',
                        visible=geography == "2024",
                    )
                )
        if effort:
            frame = query_frame(
                con,
                f"select * from {effort} where geographie_contour = ? and geom is not null "  # noqa: S608
                "order by territoire, annee, code_qpv",
                [geography],
            )
            if frame.empty:
                continue
            frame = _latest(frame, "annee", "derniere_annee")
            columns = [c for c in frame.columns if c != "geom"]
            subset = '"contour_retenu" = 1 AND "derniere_annee" = 1'
            layers.append(
                _Layer(
                    f"effort_qpv_{geography}",
                    f"Effort financier par habitant (contours QPV {geography})",
                    "Cartes",
                    geography,
                    frame,
                    Style(
                        "polygon",
                        kind="rules",
                        rules=(
                            *classes(
                                frame["euros_par_habitant"], "euros_par_habitant", ORANGES, "€/hab."
                            ),
                            NO_DATA,
                        ),
                        outline="90,90,90,255",
                        outline_width=0.2,
                        label_field="libelle_qpv",
                        label_max_scale=250000,
                        aliases=_aliases(columns),
                        decimals=_money(columns),
                    ),
                    "Euros accordés par habitant du QPV (carte_effort_qpv), classes par "
                    "quantiles ; le projet montre la dernière année et les contours retenus.",
                    subset=subset,
                )
            )
            points = frame.copy()
            points["geom"] = points.geometry.representative_point()
            points = points.set_geometry("geom")
            largest = pd.to_numeric(points["montant_accorde"], errors="coerce").max()
            layers.append(
                _Layer(
                    f"effort_montants_qpv_{geography}",
                    f"Montants accordés par QPV (QPV {geography})",
                    "Cartes",
                    geography,
                    points,
                    Style(
                        "point",
                        kind="circles",
                        color="217,95,14,180",
                        outline="255,255,255,255",
                        outline_width=0.3,
                        size_field="montant_accorde",
                        size_max_value=float(largest) if pd.notna(largest) and largest > 0 else 1.0,
                        max_size=14.0,
                        aliases=_aliases(columns),
                        decimals=_money(columns),
                    ),
                    "Montant accordé par QPV (carte_effort_qpv), cercles de surface "
                    "proportionnelle au montant, placés dans le QPV.",
                    subset=subset,
                )
            )
    return layers


def _places_layers(con, lieux: str, dim_qpv: str) -> tuple[list[_Layer], list[str]]:
    layers = []
    for geography in GEOGRAPHIES:
        frame = query_frame(
            con,
            f"""select l.* exclude (statut), d.geom
            from {lieux} as l
            inner join {dim_qpv} as d on d.code_qpv = l.code_qpv
            where l.statut = 'dans_qpv' and l.geographie_qpv = ? and d.geom is not null
            order by l.type_lieu, l.code_qpv""",  # noqa: S608
            [geography],
        )
        if frame.empty:
            continue
        columns = [c for c in frame.columns if c != "geom"]
        layers.append(
            _Layer(
                f"lieux_qpv_{geography}",
                f"Lieux géocodés par QPV (QPV {geography})",
                "Lieux",
                geography,
                frame,
                Style(
                    "polygon",
                    kind="rules",
                    rules=(
                        Rule(
                            "Secret statistique (1 à 4)",
                            "200,200,200,255",
                            '"secret_statistique"',
                            "dense5",
                        ),
                        *classes(frame["nb_lieux"], "nb_lieux", PURPLES, "lieux", 0),
                        NO_DATA,
                    ),
                    outline="90,90,90,255",
                    outline_width=0.2,
                    label_field="libelle_qpv",
                    label_max_scale=250000,
                    aliases=_aliases(columns),
                ),
                "Nombre de lieux géocodés dans chaque QPV par type de lieu (lieux_qpv) ; "
                "une entité par QPV et type de lieu : le projet a une couche par type.",
                split_by="type_lieu",
            )
        )
    notes = [] if layers else ["Lieux : aucun lieu géocodé dans un QPV, couche non écrite."]
    return layers, notes


# -- the kit -----------------------------------------------------------------------------------


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _project_layers(layers: list[_Layer]) -> list[ProjectLayer]:
    entries = []
    for layer in layers:
        columns = tuple(c for c in layer.frame.columns if c != "geom")
        if layer.split_by:
            for value in sorted(layer.frame[layer.split_by].dropna().unique()):
                condition = f'"{layer.split_by}" = {_sql_text(str(value))}'
                entries.append(
                    ProjectLayer(
                        layer.table,
                        f"{value} (QPV {layer.geography})",
                        layer.group,
                        layer.style,
                        columns,
                        f"{layer.subset} AND {condition}" if layer.subset else condition,
                        visible=False,
                    )
                )
            continue
        entries.append(
            ProjectLayer(
                layer.table,
                layer.title,
                layer.group,
                layer.style,
                columns,
                layer.subset,
                layer.visible,
            )
        )
    return entries


def export_qgis(
    con: duckdb.DuckDBPyConnection,
    out: Path | str,
    sources: Mapping[str, str] | None = None,
    log=None,
) -> QgisExport:
    """Write ``out/qgis/observatoire.gpkg`` and ``out/qgis/observatoire.qgz`` from the marts of
    ``con`` (spatial loaded), as published. ``sources``: the published relation of each mart
    when the caller has them already (:func:`pipelines.warehouse.exports.export_marts`)."""
    folder = Path(out) / FOLDER
    result = QgisExport(folder)
    marts = tables_in(con, "marts")
    if "dim_qpv" not in marts:
        raise QgisExportError(
            "Kit QGIS : la table marts.dim_qpv est absente de l'entrepôt (observatoire build)"
        )
    with ExitStack() as stack:
        specs = load_specs()

        def source(table: str) -> str | None:
            if table not in marts:
                return None
            if sources and table in sources:
                return sources[table]
            return stack.enter_context(published(con, table, specs))

        dim_qpv = source("dim_qpv")
        layers = _qpv_layers(con, dim_qpv)
        zonings, notes = _zoning_layers(con, dim_qpv)
        layers += zonings
        result.notes += notes
        layers += _map_layers(con, source("carte_taux_emploi"), source("carte_effort_qpv"))
        for name, title in (
            ("carte_taux_emploi", "Carte du taux d'emploi"),
            ("carte_effort_qpv", "Carte de l'effort financier"),
        ):
            if name not in marts:
                result.notes.append(f"{title} : table absente de l'entrepôt, couche non écrite.")
        lieux = source("lieux_qpv")
        if lieux:
            places, notes = _places_layers(con, lieux, dim_qpv)
            layers += places
            result.notes += notes
    for layer in layers[:2]:
        if layer.frame.empty:
            result.notes.append(
                f"{layer.title} : aucun contour de cette géographie chargé, couche vide."
            )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp_{GPKG_NAME}"
    tmp.unlink(missing_ok=True)
    styles = []
    for layer in layers:
        write_layer(
            layer.frame, tmp, layer.table, layer.title, layer.description, layer.style.geometry
        )
        columns = [c for c in layer.frame.columns if c != "geom"]
        styles.append(
            StyleRow(layer.table, "geom", layer.table, qml(layer.style, columns), layer.title)
        )
        result.layers[layer.table] = len(layer.frame)
    write_layer_styles(tmp, styles)
    readme = pd.DataFrame(
        {
            "couche": [layer.table for layer in layers],
            "titre": [layer.title for layer in layers],
            "geographie_qpv": [layer.geography for layer in layers],
            "entites": pd.array([len(layer.frame) for layer in layers], dtype="Int64"),
            "description": [layer.description for layer in layers],
        }
    )
    notes = pd.DataFrame(
        {
            "couche": [None] * len(result.notes),
            "titre": ["Remarque"] * len(result.notes),
            "geographie_qpv": [None] * len(result.notes),
            "entites": pd.array([None] * len(result.notes), dtype="Int64"),
            "description": result.notes,
        }
    )
    write_table(
        pd.concat([readme, notes], ignore_index=True),
        tmp,
        "lisez_moi",
        "Lisez-moi",
        "Couches du kit QGIS de l'observatoire, leur nombre d'entités et ce qui manque.",
    )
    gpkg = folder / GPKG_NAME
    shutil.move(tmp, gpkg)
    extent = _extent([layer.frame for layer in layers])
    project = folder / PROJECT_NAME
    tmp_project = folder / f".tmp_{PROJECT_NAME}"
    write_project(
        tmp_project,
        GPKG_NAME,
        _project_layers(layers),
        PROJECT_TITLE,
        CRS,
        extent,
        name=Path(PROJECT_NAME).stem,
    )
    tmp_project.replace(project)
    result.gpkg, result.project = gpkg, project
    if log:
        log.info(f"Kit QGIS : {gpkg} ({len(layers)} couches), {project}")
        for note in result.notes:
            log.info(f"Kit QGIS : {note}")
    return result


def _extent(frames: list[gpd.GeoDataFrame]) -> tuple[float, float, float, float] | None:
    bounds = [
        f.total_bounds
        for f in frames
        if not f.empty and (~shapely.is_missing(f.geometry.values) & ~f.geometry.is_empty).any()
    ]
    if not bounds:
        return None
    stacked = np.array(bounds)
    xmin, ymin = np.nanmin(stacked[:, 0]), np.nanmin(stacked[:, 1])
    xmax, ymax = np.nanmax(stacked[:, 2]), np.nanmax(stacked[:, 3])
    margin = max(xmax - xmin, ymax - ymin) * 0.05
    return (xmin - margin, ymin - margin, xmax + margin, ymax + margin)
