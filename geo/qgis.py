"""QGIS kit writers: GeoPackage layers with their default style, and a ``.qgz`` project.

Nothing here knows the marts: :mod:`pipelines.publication.qgis` says which layers to write and
how to draw them; this module writes

* a layer of a GeoPackage (:func:`write_layer`): one geometry type, the layer's CRS, its French
  title and description in ``gpkg_contents`` (``identifier``, ``description``), attribute types
  as GDAL writes them from pandas (``boolean`` → ``BOOLEAN``, ``Int64`` → ``INTEGER``, float →
  ``REAL``, text → ``TEXT``); GeoPackage 1.2, which every QGIS 3 reads without a warning;
* the ``layer_styles`` table (:func:`write_layer_styles`), the table QGIS reads a layer's default
  style from when it opens a GeoPackage layer (its OGR provider looks for the row with
  ``f_table_schema = ''``, ``f_table_name`` = the layer, ``f_geometry_column`` = its geometry
  column, ``useAsDefault`` first): the columns QGIS creates itself (``f_table_catalog``,
  ``f_table_schema``, ``f_table_name``, ``f_geometry_column``, ``styleName``, ``styleQML``,
  ``styleSLD``, ``useAsDefault``, ``description``, ``owner``, ``ui``, ``update_time``);
* QGIS styles (:class:`Style`, :func:`qml`): a single symbol, classes as rules (a value range
  per rule, and an « else » rule for the features without a value), proportional circles for
  amounts; labels; field aliases;
* a project (:func:`write_project`): a ``.qgz`` (zip of one ``.qgs``) whose layers point to the
  GeoPackage by a path relative to the project (the folder can be moved or sent as it is), in
  layer groups, with the same styles as the GeoPackage, an optional filter per layer, and the
  project CRS.

The QML and project XML follow what QGIS 3.22 writes itself (``QgsMapLayer.saveNamedStyle``,
``QgsProject.write``), reduced to the elements it needs: QGIS fills the others with its defaults.

Why this module is long: a QGIS style and a QGIS project are two XML formats with many nested
elements (symbols, rules, labels, field configuration, layer tree, CRS), written here element by
element; the style is written once and reused both in the GeoPackage's ``layer_styles`` and in
the project's layers, so both belong together, apart from any knowledge of the marts.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree as ET

import geopandas as gpd
import pandas as pd
import pyogrio
from pyproj import CRS

#: Version written in the QML and the project (the oldest QGIS the kit is tested with).
QGIS_VERSION = "3.22.16-Białowieża"
DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
#: ``srsid`` of the CRS in QGIS's own srs.db (stable across QGIS 3 versions): QGIS reads the CRS
#: by its ``authid`` when the ``srsid`` is a known one, else from the WKT.
QGIS_SRSID = {"EPSG:2154": 145, "EPSG:4326": 3452}
#: Layer geometry type codes of QGIS (``QgsWkbTypes::GeometryType``).
GEOMETRY_TYPES = {"point": 0, "line": 1, "polygon": 2}
STYLE_TABLE = "layer_styles"

# -- styles ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One class of a rule-based style: features matching ``filter`` (a QGIS expression; ``None``
    for « every other feature »), drawn with ``color`` and shown in the legend as ``label``."""

    label: str
    color: str
    filter: str | None = None
    #: fill pattern: ``solid``, or a hatch (``f_diagonal``...) for « sans donnée »
    pattern: str = "solid"


@dataclass(frozen=True)
class Style:
    """How a layer is drawn. ``kind``: ``single`` (one symbol), ``rules`` (one symbol per
    :class:`Rule`), ``circles`` (circles whose area is proportional to ``size_field``)."""

    geometry: str  # point, line, polygon
    kind: str = "single"
    color: str = "255,255,255,0"
    outline: str = "35,35,35,255"
    outline_width: float = 0.3
    rules: tuple[Rule, ...] = ()
    #: circles: the field and the value drawn with a circle of ``max_size`` mm
    size_field: str | None = None
    size_max_value: float | None = None
    max_size: float = 12.0
    label_field: str | None = None
    #: labels shown under this scale denominator only (0: always)
    label_max_scale: int = 0
    aliases: dict[str, str] = field(default_factory=dict)
    #: fields shown as numbers with this many decimals in the attribute table and forms
    decimals: dict[str, int] = field(default_factory=dict)


def _option(parent: ET.Element, name: str, value: str, kind: str = "QString") -> None:
    ET.SubElement(parent, "Option", {"type": kind, "value": value, "name": name})


def _data_defined(parent: ET.Element, properties: dict[str, str] | None = None) -> None:
    holder = ET.SubElement(parent, "data_defined_properties")
    root = ET.SubElement(holder, "Option", {"type": "Map"})
    _option(root, "name", "")
    props = ET.SubElement(root, "Option", {"name": "properties"})
    if properties:
        props.set("type", "Map")
        for key, expression in properties.items():
            prop = ET.SubElement(props, "Option", {"type": "Map", "name": key})
            _option(prop, "active", "true", "bool")
            _option(prop, "expression", expression)
            _option(prop, "type", "3", "int")
    _option(root, "type", "collection")


def _symbol(
    parent: ET.Element,
    name: str,
    geometry: str,
    color: str,
    outline: str,
    outline_width: float,
    pattern: str = "solid",
    size_expression: str | None = None,
) -> None:
    kind = {"polygon": "fill", "line": "line", "point": "marker"}[geometry]
    symbol = ET.SubElement(
        parent,
        "symbol",
        {"type": kind, "name": name, "alpha": "1", "clip_to_extent": "1", "force_rhr": "0"},
    )
    _data_defined(symbol)
    layer_class = {"fill": "SimpleFill", "line": "SimpleLine", "marker": "SimpleMarker"}[kind]
    layer = ET.SubElement(
        symbol, "layer", {"class": layer_class, "enabled": "1", "pass": "0", "locked": "0"}
    )
    options = ET.SubElement(layer, "Option", {"type": "Map"})
    if kind == "fill":
        values = {
            "color": color,
            "style": pattern,
            "outline_color": outline,
            "outline_style": "solid",
            "outline_width": str(outline_width),
            "outline_width_unit": "MM",
            "joinstyle": "bevel",
        }
    elif kind == "line":
        values = {"line_color": outline, "line_width": str(outline_width), "line_style": "solid"}
    else:
        values = {
            "name": "circle",
            "color": color,
            "outline_color": outline,
            "outline_width": str(outline_width),
            "outline_style": "solid",
            "size": "3",
            "size_unit": "MM",
            "scale_method": "diameter",
        }
    for key, value in values.items():
        _option(options, key, value)
    _data_defined(layer, {"size": size_expression} if size_expression else None)


def _key(text: str) -> str:
    """A rule's key (QGIS wants a unique id): derived from the rule, so that the same data
    gives the same style text."""
    return "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"observatoire-qpv/regle/{text}")) + "}"


def _renderer(root: ET.Element, style: Style) -> None:
    if style.kind == "rules":
        renderer = ET.SubElement(
            root,
            "renderer-v2",
            {"type": "RuleRenderer", "forceraster": "0", "symbollevels": "0", "enableorderby": "0"},
        )
        rules = ET.SubElement(renderer, "rules", {"key": _key("racine")})
        symbols = ET.SubElement(renderer, "symbols")
        for index, rule in enumerate(style.rules):
            ET.SubElement(
                rules,
                "rule",
                {
                    "key": _key(f"{index}|{rule.label}|{rule.filter}"),
                    "symbol": str(index),
                    "label": rule.label,
                    "filter": rule.filter if rule.filter is not None else "ELSE",
                },
            )
            _symbol(
                symbols,
                str(index),
                style.geometry,
                rule.color,
                style.outline,
                style.outline_width,
                rule.pattern,
            )
        return
    renderer = ET.SubElement(
        root,
        "renderer-v2",
        {"type": "singleSymbol", "forceraster": "0", "symbollevels": "0", "enableorderby": "0"},
    )
    symbols = ET.SubElement(renderer, "symbols")
    size = None
    if style.kind == "circles":
        if not style.size_field or not style.size_max_value:
            raise ValueError("style « circles » : size_field et size_max_value requis")
        # area proportional to the value: diameter = max_size * sqrt(value / max)
        size = (
            f'coalesce({style.max_size} * sqrt(max("{style.size_field}", 0) / '
            f"{style.size_max_value!r}), 0)"
        )
    _symbol(
        symbols,
        "0",
        style.geometry,
        style.color,
        style.outline,
        style.outline_width,
        size_expression=size,
    )
    if style.kind == "circles":
        # the biggest circles under the smallest ones
        renderer.set("enableorderby", "1")
        order = ET.SubElement(renderer, "orderby")
        ET.SubElement(
            order, "orderByClause", {"asc": "0", "nullsFirst": "0"}
        ).text = f'"{style.size_field}"'
    ET.SubElement(renderer, "rotation")
    ET.SubElement(renderer, "sizescale")


def _labeling(root: ET.Element, style: Style) -> None:
    if not style.label_field:
        root.set("labelsEnabled", "0")
        return
    root.set("labelsEnabled", "1")
    labeling = ET.SubElement(root, "labeling", {"type": "simple"})
    settings = ET.SubElement(labeling, "settings", {"calloutType": "simple"})
    text = ET.SubElement(
        settings,
        "text-style",
        {
            "fieldName": style.label_field,
            "isExpression": "0",
            "fontSize": "8",
            "fontSizeUnit": "Point",
            "textColor": "30,30,30,255",
            "fontWeight": "50",
            "textOpacity": "1",
        },
    )
    ET.SubElement(
        text,
        "text-buffer",
        {
            "bufferDraw": "1",
            "bufferSize": "0.8",
            "bufferSizeUnits": "MM",
            "bufferColor": "255,255,255,255",
            "bufferOpacity": "0.85",
            "bufferNoFill": "1",
            "bufferJoinStyle": "128",
        },
    )
    ET.SubElement(
        settings,
        "text-format",
        {"wrapChar": "", "autoWrapLength": "18", "multilineAlign": "3", "plussign": "0"},
    )
    # polygons: horizontal label inside the polygon (placement 1 = « over point », centroid)
    ET.SubElement(
        settings,
        "placement",
        {
            "placement": "1" if style.geometry == "polygon" else "6",
            "centroidInside": "1",
            "centroidWhole": "0",
            "fitInPolygonOnly": "0",
            "priority": "5",
        },
    )
    ET.SubElement(
        settings,
        "rendering",
        {
            # minScale: the most zoomed-out scale denominator the labels show at
            "scaleVisibility": "1" if style.label_max_scale else "0",
            "minScale": str(style.label_max_scale),
            "maxScale": "0",
            "obstacle": "1",
            "upsidedownLabels": "0",
            "displayAll": "0",
            "mergeLines": "0",
        },
    )


def _fields(root: ET.Element, style: Style, columns: Sequence[str]) -> None:
    if style.decimals:
        configuration = ET.SubElement(root, "fieldConfiguration")
        for name in columns:
            if name not in style.decimals:
                continue
            element = ET.SubElement(
                configuration, "field", {"name": name, "configurationFlags": "None"}
            )
            widget = ET.SubElement(element, "editWidget", {"type": "Range"})
            config = ET.SubElement(widget, "config")
            options = ET.SubElement(config, "Option", {"type": "Map"})
            _option(options, "Precision", str(style.decimals[name]), "int")
            _option(options, "Style", "SpinBox")
            _option(options, "AllowNull", "true", "bool")
    aliases = ET.SubElement(root, "aliases")
    for index, name in enumerate(columns):
        ET.SubElement(
            aliases,
            "alias",
            {"index": str(index), "field": name, "name": style.aliases.get(name, "")},
        )


def style_element(style: Style, columns: Sequence[str], tag: str = "qgis") -> ET.Element:
    """The style as an XML element (``<qgis>`` of a QML file, or the ``<maplayer>`` children)."""
    root = ET.Element(tag)
    root.set("styleCategories", "AllStyleCategories")
    root.set("version", QGIS_VERSION)
    root.set("hasScaleBasedVisibilityFlag", "0")
    _renderer(root, style)
    _labeling(root, style)
    _fields(root, style, columns)
    ET.SubElement(root, "layerGeometryType").text = str(GEOMETRY_TYPES[style.geometry])
    return root


def qml(style: Style, columns: Sequence[str]) -> str:
    """The text of a QGIS style file (``.qml``) for a layer with ``columns``."""
    return DOCTYPE + ET.tostring(style_element(style, columns), encoding="unicode") + "\n"


# -- GeoPackage --------------------------------------------------------------------------------


#: GeoPackage geometry type of each kind of style geometry (polygons always multi: one type).
GPKG_GEOMETRY = {"polygon": "MultiPolygon", "point": "Point", "line": "MultiLineString"}


def write_layer(
    gdf: gpd.GeoDataFrame,
    path: Path,
    layer: str,
    title: str,
    description: str,
    geometry: str,
) -> None:
    """Add ``gdf`` as ``layer`` of the GeoPackage ``path`` (created if absent), with its title
    and description in ``gpkg_contents`` and the geometry type of ``geometry`` (``polygon``:
    MultiPolygon, ``point``, ``line``), declared even when the layer is empty."""
    pyogrio.write_dataframe(
        gdf,
        path,
        layer=layer,
        driver="GPKG",
        geometry_type=GPKG_GEOMETRY[geometry],
        promote_to_multi=geometry != "point",
        append=Path(path).exists(),
        dataset_options={"VERSION": "1.2"},
        layer_options={"IDENTIFIER": title, "DESCRIPTION": description, "SPATIAL_INDEX": "YES"},
    )


def write_table(frame: pd.DataFrame, path: Path, layer: str, title: str, description: str) -> None:
    """Add ``frame`` as a table without geometry (``attributes`` in ``gpkg_contents``)."""
    pyogrio.write_dataframe(
        frame,
        path,
        layer=layer,
        driver="GPKG",
        append=Path(path).exists(),
        dataset_options={"VERSION": "1.2"},
        layer_options={"IDENTIFIER": title, "DESCRIPTION": description},
    )


@dataclass(frozen=True)
class StyleRow:
    """The default style of one layer of the GeoPackage."""

    layer: str
    geometry_column: str
    name: str
    qml: str
    description: str


def write_layer_styles(path: Path, rows: Sequence[StyleRow]) -> None:
    """The ``layer_styles`` table of the GeoPackage: one default style per layer."""
    now = pd.Timestamp(datetime.now(UTC).replace(microsecond=0, tzinfo=None))
    frame = pd.DataFrame(
        {
            "f_table_catalog": ["" for _ in rows],
            "f_table_schema": ["" for _ in rows],
            "f_table_name": [r.layer for r in rows],
            "f_geometry_column": [r.geometry_column for r in rows],
            "styleName": [r.name for r in rows],
            "styleQML": [r.qml for r in rows],
            "styleSLD": ["" for _ in rows],
            "useAsDefault": pd.array([True for _ in rows], dtype="boolean"),
            "description": [r.description for r in rows],
            "owner": ["" for _ in rows],
            "ui": pd.array([None for _ in rows], dtype="string"),
            "update_time": [now for _ in rows],
        }
    )
    pyogrio.write_dataframe(
        frame,
        path,
        layer=STYLE_TABLE,
        driver="GPKG",
        append=Path(path).exists(),
        dataset_options={"VERSION": "1.2"},
        layer_options={"FID": "id"},
    )


# -- project -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectLayer:
    """A layer of the project: a layer of the GeoPackage, shown as ``name`` in ``group``,
    optionally filtered (``subset``: an SQL condition on its fields)."""

    layer: str
    name: str
    group: str
    style: Style
    columns: tuple[str, ...]
    subset: str | None = None
    visible: bool = False


def _spatialrefsys(parent: ET.Element, authid: str) -> None:
    crs = CRS.from_user_input(authid)
    srs = ET.SubElement(parent, "spatialrefsys")
    ET.SubElement(srs, "wkt").text = crs.to_wkt("WKT2_2019")
    ET.SubElement(srs, "srsid").text = str(QGIS_SRSID.get(authid, 0))
    ET.SubElement(srs, "srid").text = authid.split(":")[1]
    ET.SubElement(srs, "authid").text = authid
    ET.SubElement(srs, "description").text = crs.name
    ET.SubElement(srs, "geographicflag").text = "true" if crs.is_geographic else "false"


def _layer_id(layer: ProjectLayer, index: int) -> str:
    return f"{layer.layer}_{index}"


def _source(gpkg_name: str, layer: ProjectLayer) -> str:
    source = f"./{gpkg_name}|layername={layer.layer}"
    return source + (f"|subset={layer.subset}" if layer.subset else "")


def project_xml(
    gpkg_name: str,
    layers: Sequence[ProjectLayer],
    title: str,
    crs: str,
    extent: tuple[float, float, float, float] | None = None,
) -> str:
    """The ``.qgs`` text of a project opening ``layers`` of ``gpkg_name`` (beside the project)."""
    root = ET.Element(
        "qgis", {"projectname": title, "version": QGIS_VERSION, "saveUser": "observatoire"}
    )
    ET.SubElement(root, "homePath", {"path": ""})
    ET.SubElement(root, "title").text = title
    _spatialrefsys(ET.SubElement(root, "projectCrs"), crs)
    tree = ET.SubElement(root, "layer-tree-group")
    groups: dict[str, ET.Element] = {}
    for index, layer in enumerate(layers):
        group = groups.get(layer.group)
        if group is None:
            group = ET.SubElement(
                tree,
                "layer-tree-group",
                {"name": layer.group, "checked": "Qt::Checked", "expanded": "1"},
            )
            groups[layer.group] = group
        ET.SubElement(
            group,
            "layer-tree-layer",
            {
                "id": _layer_id(layer, index),
                "name": layer.name,
                "source": _source(gpkg_name, layer),
                "providerKey": "ogr",
                "checked": "Qt::Checked" if layer.visible else "Qt::Unchecked",
                "expanded": "1",
            },
        )
    if extent is not None:
        canvas = ET.SubElement(
            root, "mapcanvas", {"name": "theMapCanvas", "annotationsVisible": "1"}
        )
        ET.SubElement(canvas, "units").text = "meters"
        box = ET.SubElement(canvas, "extent")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), extent, strict=True):
            ET.SubElement(box, key).text = repr(float(value))
        ET.SubElement(canvas, "rotation").text = "0"
        _spatialrefsys(ET.SubElement(canvas, "destinationsrs"), crs)
    project_layers = ET.SubElement(root, "projectlayers")
    for index, layer in enumerate(layers):
        element = style_element(layer.style, layer.columns, tag="maplayer")
        element.set("type", "vector")
        element.set(
            "geometry",
            {"polygon": "Polygon", "point": "Point", "line": "Line"}[layer.style.geometry],
        )
        # header elements first, as QGIS writes them
        header = [
            ("id", _layer_id(layer, index)),
            ("datasource", _source(gpkg_name, layer)),
            ("layername", layer.name),
        ]
        for position, (tag, text) in enumerate(header):
            child = ET.Element(tag)
            child.text = text
            element.insert(position, child)
        srs = ET.Element("srs")
        _spatialrefsys(srs, crs)
        element.insert(len(header), srs)
        provider = ET.Element("provider", {"encoding": "UTF-8"})
        provider.text = "ogr"
        element.insert(len(header) + 1, provider)
        project_layers.append(element)
    properties = ET.SubElement(root, "properties")
    paths = ET.SubElement(properties, "Paths")
    ET.SubElement(paths, "Absolute", {"type": "bool"}).text = "false"
    # QGIS reads <projectCrs> only when this is set
    srs_settings = ET.SubElement(properties, "SpatialRefSys")
    ET.SubElement(srs_settings, "ProjectionsEnabled", {"type": "int"}).text = "1"
    return DOCTYPE + ET.tostring(root, encoding="unicode") + "\n"


def write_project(
    path: Path,
    gpkg_name: str,
    layers: Sequence[ProjectLayer],
    title: str,
    crs: str,
    extent: tuple[float, float, float, float] | None = None,
    name: str | None = None,
) -> Path:
    """A ``.qgz`` project (zip holding ``<name>.qgs``, ``name`` by default the stem of
    ``path``) beside the GeoPackage ``gpkg_name``."""
    text = project_xml(gpkg_name, layers, title, crs, extent)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name or Path(path).stem}.qgs", text.encode("utf-8"))
    Path(path).write_bytes(buffer.getvalue())
    return Path(path)
