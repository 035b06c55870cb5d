"""The optional last asset of a build: the published marts copied to the team's PostGIS.

Part of the Definitions only when ``OBSERVATOIRE_POSTGRES_URL`` is set (a libpq URL such as
``postgresql://observatoire@sig.agglo.local/observatoire``; the password from ``PGPASSWORD`` or
``~/.pgpass``); ``OBSERVATOIRE_POSTGRES_SCHEMA`` and ``OBSERVATOIRE_POSTGRES_ROLE_LECTURE``
change the schema and the read-only role. It runs after ``publication/entrepot``, on the
warehouse just published, with :func:`pipelines.publication.postgis.publish_warehouse`.

A server that is down or refuses the copy does not fail the build: the warehouse and the marts
are published already, the PostGIS schema stays as it was, and the build summary says it
(« AVERTISSEMENT : publication PostgreSQL ... », from the metadata ``erreur`` of this asset,
:func:`pipelines.warehouse.launch._report`).
"""

import dagster as dg

from pipelines.publication.postgis import (
    PostgisError,
    hide_password,
    publish_warehouse,
    settings_from_env,
)
from pipelines.warehouse.publication import KEY as PUBLICATION_KEY
from pipelines.warehouse.resources import ProjectFolders

KEY = dg.AssetKey(["publication", "postgis"])


def build_postgis_asset():
    """The asset, downstream of the publication of the warehouse."""

    @dg.asset(
        key=KEY,
        group_name="publication",
        kinds={"postgres"},
        deps=[PUBLICATION_KEY],
        description="Copie des marts publiés (secret statistique appliqué, géométries en "
        "Lambert-93, commentaires du mémento, rôle de lecture) dans un schéma du serveur "
        "PostgreSQL/PostGIS de l'équipe (OBSERVATOIRE_POSTGRES_URL), remplacé d'un coup. Un "
        "serveur injoignable n'empêche pas la publication de l'entrepôt : un avertissement le dit.",
    )
    def postgis(context: dg.AssetExecutionContext, folders: ProjectFolders) -> dg.MaterializeResult:
        settings = settings_from_env()
        if settings is None:
            return dg.MaterializeResult(
                metadata={"erreur": dg.MetadataValue.text("OBSERVATOIRE_POSTGRES_URL non défini")}
            )
        url, schema, role = settings
        server = hide_password(url)
        try:
            result = publish_warehouse(folders.paths.warehouse, url, schema, role, log=context.log)
        except Exception as err:  # noqa: BLE001 - the warehouse is published all the same
            reason = str(err) if isinstance(err, PostgisError) else f"{type(err).__name__}: {err}"
            reason = reason.strip().splitlines()[0] if reason.strip() else type(err).__name__
            context.log.error(f"publication PostgreSQL ({server}) en échec : {reason}")
            return dg.MaterializeResult(
                metadata={
                    "serveur": dg.MetadataValue.text(server),
                    "schema": dg.MetadataValue.text(schema),
                    "erreur": dg.MetadataValue.text(reason),
                }
            )
        context.log.info(
            f"marts publiés dans PostgreSQL {server}, schéma {schema} ({len(result.rows)} tables)"
        )
        return dg.MaterializeResult(
            metadata={
                "serveur": dg.MetadataValue.text(server),
                "schema": dg.MetadataValue.text(schema),
                "lignes_par_mart": dg.MetadataValue.json(result.rows),
                "secondes": dg.MetadataValue.float(round(result.seconds, 1)),
            }
        )

    return postgis
