"""The rapport annuel as the last asset of a build: one report per territory, latest year.

Written into the marts folder of the build (``<marts>/rapport/``), so that it is published with
the marts it reads (atomically, by ``observatoire build``). The PDF is printed when Chromium is
there and ``OBSERVATOIRE_RAPPORT_PDF`` is not ``0`` (the test suite turns it off to save time; the
report test prints one on purpose). A report that cannot be written is logged and reported in
the metadata but does not stop the publication of the data: it is not a blocking check. Beyond
``OBSERVATOIRE_RAPPORTS_MAX`` territories (20), a build writes no report and says so.
"""

import os

import dagster as dg

from pipelines.warehouse.resources import ProjectFolders, Warehouse

ENV_PDF = "OBSERVATOIRE_RAPPORT_PDF"
ENV_MAX = "OBSERVATOIRE_RAPPORTS_MAX"
#: Most territories whose reports a build writes: an EPCI's or a department's build writes
#: them (about 1 s each, and 8 s for a PDF), a national one (344 territories) leaves them to
#: ``observatoire report --territoire``.
REPORTS_MAX = 20


def reports_max() -> int:
    return int(os.environ.get(ENV_MAX, REPORTS_MAX))


def report_territories(con) -> list[str]:
    """The territories that have a programmation year: those a build would report on."""
    from pipelines.report import available_years, territories

    return [t.code for t in territories(con) if available_years(con, t.code)]


@dg.asset(
    key=["rapport", "rapports_annuels"],
    group_name="exports",
    kinds={"html", "pdf"},
    deps=[dg.AssetKey(["exports", "marts_parquet"])],
    description="Rapport annuel de chaque territoire (dernière année de programmation), HTML "
    "autonome et PDF, dans <marts>/rapport/, lu dans les marts.",
)
def rapports_annuels(
    context: dg.AssetExecutionContext, warehouse: Warehouse, folders: ProjectFolders
) -> dg.MaterializeResult:
    from pipelines.report import latest_reports
    from pipelines.report.render import chromium

    out = folders.marts / "rapport"
    pdf = os.environ.get(ENV_PDF, "1") != "0" and chromium() is not None
    with warehouse.connect() as con:
        count = len(report_territories(con))
    if count > reports_max():
        reason = (
            f"{count} territoires (plus de {reports_max()}, {ENV_MAX}) : aucun rapport écrit "
            "par la construction ; observatoire report --territoire <code> écrit celui d'un "
            "territoire"
        )
        context.log.warning(f"rapport annuel: {reason}")
        return dg.MaterializeResult(metadata={"erreur": dg.MetadataValue.text(reason)})
    try:
        with warehouse.connect() as con:
            reports = latest_reports(con, out, pdf=pdf)
    except Exception as err:  # noqa: BLE001 - the data is published all the same
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        context.log.error(f"rapport annuel non écrit: {reason}")
        return dg.MaterializeResult(metadata={"erreur": dg.MetadataValue.text(reason)})
    for r in reports:
        if r.error:
            context.log.error(f"rapport {r.territory} {r.year} non écrit: {r.error}")
        else:
            context.log.info(
                f"rapport {r.territory} {r.year}: {r.html}" + (" + PDF" if r.pdf else "")
            )
    failed = {r.territory: r.error for r in reports if r.error}
    return dg.MaterializeResult(
        metadata={
            "rapports_en_echec": dg.MetadataValue.json(failed),
            "dossier": dg.MetadataValue.path(str(out)),
            "rapports": dg.MetadataValue.json(
                {r.territory: {"annee": r.year, "pdf": bool(r.pdf)} for r in reports if not r.error}
            ),
            "pdf": dg.MetadataValue.bool(pdf),
        }
    )
