"""One package per source: its reader and its Dagster ingestion assets, over :mod:`pipelines.lib`.

==================  ===========================  ============================================
package             raw folder                   assets (``raw/<table>``)
==================  ===========================  ============================================
``insee``           ``insee/``                   ``insee_valeurs``
``sig_ville``       ``sig_ville/``               ``qpv_contours``, ``liste_qpv``
``communes``        ``communes/``, ``sig_ville/`` ``communes_contours``
``indicateurs``     ``compas/``, ``indicateurs/`` ``indicateurs_locaux``
``referentiels``    ``referentiels/``            ``valeurs_reference``, ``passage_qpv_2015_2024``
``programmations``  ``programmations/``          ``programmations`` (partitions ``annee``)
``bilans``          ``bilans/``                  ``bilans`` (partitions ``annee``)
``territoires``     ``territoires/<code>/``      ``territoires`` (+ ``territoires_<fichier>``)
==================  ===========================  ============================================

``source_assets`` lists every asset above; it is built on first access, so that importing a
reader does not load Dagster.
"""

from __future__ import annotations

from typing import Any

__all__ = ["source_assets"]


def _source_assets() -> list[Any]:
    from pipelines.sources.bilans.assets import bilans
    from pipelines.sources.communes.assets import communes_contours
    from pipelines.sources.indicateurs.assets import indicateurs_locaux
    from pipelines.sources.insee.assets import insee_valeurs
    from pipelines.sources.lieux.assets import lieux
    from pipelines.sources.programmations.assets import programmations
    from pipelines.sources.referentiels.assets import passage_qpv_2015_2024, valeurs_reference
    from pipelines.sources.sig_ville.assets import liste_qpv, qpv_contours
    from pipelines.sources.territoires.assets import territoires

    return [
        insee_valeurs,
        qpv_contours,
        liste_qpv,
        communes_contours,
        programmations,
        bilans,
        indicateurs_locaux,
        valeurs_reference,
        passage_qpv_2015_2024,
        lieux,
        territoires,
    ]


def __getattr__(name: str) -> Any:
    if name == "source_assets":
        return _source_assets()
    raise AttributeError(f"module 'pipelines.sources' has no attribute {name!r}")
