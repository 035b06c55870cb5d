"""Open the QGIS kit with QGIS itself, headless, and print what it sees as JSON.

Run by QGIS's own Python (Debian ``python3-qgis``: ``/usr/bin/python3``, with
``QT_QPA_PLATFORM=offscreen``), never by the project's venv: ``tests/test_qgis.py`` starts it in a
subprocess. Usage: ``python3 qgis_check.py <project.qgz> <layers.gpkg>``. Prints
``{"read": ..., "crs": ..., "project": {name: {...}}, "gpkg": {layer: {...}}}``: for each layer of
the project and each layer of the GeoPackage opened alone (QGIS then applies the default style of
``layer_styles``), whether it is valid, its CRS, its renderer, its labels, its field aliases, its
number of features and of styles stored in the GeoPackage.
"""

from __future__ import annotations

import json
import sqlite3
import sys


def rule_counts(layer) -> tuple[dict[str, int], list[str]]:
    """Features drawn by each rule of a rule-based renderer (by legend label), and the rules
    whose filter QGIS cannot parse."""
    from qgis.core import QgsExpression, QgsRenderContext

    renderer = layer.renderer()
    if renderer is None or renderer.type() != "RuleRenderer":
        return {}, []
    errors = [
        rule.filterExpression()
        for rule in renderer.rootRule().descendants()
        if rule.filterExpression()
        and rule.filterExpression() != "ELSE"
        and QgsExpression(rule.filterExpression()).hasParserError()
    ]
    labels = {item.ruleKey(): item.label() for item in renderer.legendSymbolItems()}
    counts = dict.fromkeys(labels.values(), 0)
    context = QgsRenderContext()
    renderer.startRender(context, layer.fields())
    for feature in layer.getFeatures():
        for key in renderer.legendKeysForFeature(feature, context):
            if key in labels:  # not the root rule
                counts[labels[key]] += 1
    renderer.stopRender(context)
    return counts, errors


def describe(layer) -> dict:
    fields = layer.fields()
    counts, errors = rule_counts(layer)
    return {
        "rules": counts,
        "expression_errors": errors,
        "valid": layer.isValid(),
        "crs": layer.crs().authid(),
        "renderer": layer.renderer().type() if layer.renderer() else None,
        "labels": layer.labelsEnabled(),
        "aliases": {f.name(): layer.attributeAlias(i) for i, f in enumerate(fields)},
        "features": layer.featureCount(),
        "subset": layer.subsetString(),
        "source": layer.source(),
        "geometry": int(layer.geometryType()),
    }


def main(project_path: str, gpkg_path: str) -> None:
    from qgis.core import QgsApplication, QgsProject, QgsVectorLayer

    app = QgsApplication([], False)
    app.initQgis()
    try:
        out: dict = {"project": {}, "gpkg": {}}
        project = QgsProject.instance()
        out["read"] = project.read(project_path)
        out["crs"] = project.crs().authid()
        out["absolute_paths"] = project.readBoolEntry("Paths", "/Absolute", True)[0]
        for layer in project.mapLayers().values():
            out["project"][layer.name()] = describe(layer)
        with sqlite3.connect(gpkg_path) as con:
            names = [
                r[0]
                for r in con.execute(
                    "select table_name from gpkg_contents where data_type = 'features'"
                )
            ]
        for name in names:
            layer = QgsVectorLayer(f"{gpkg_path}|layername={name}", name, "ogr")
            info = describe(layer)
            info["styles_in_database"] = layer.listStylesInDatabase()[0]
            out["gpkg"][name] = info
        # printed before exitQgis(), after which the process may end without returning
        print(json.dumps(out, ensure_ascii=False), flush=True)
    finally:
        app.exitQgis()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
