-- Geocoded places with their QPV (one row per place x geography of the contours), typed.
-- Individual places never leave the warehouse: only counts per QPV are published
-- (marts.lieux_qpv). Until the asset raw/lieux is part of the build, raw.lieux may not exist:
-- the model is then empty, with the same columns.
{%- set lieux = source('raw_geo', 'lieux') %}
{%- set exists = execute and adapter.get_relation(
    database=lieux.database, schema=lieux.schema, identifier=lieux.identifier
) is not none %}
with

source as (

    {% if exists %}
        select * from {{ lieux }}
    {% else %}
        select
            cast(null as varchar) as source_fichier,
            cast(null as bigint) as source_ligne,
            cast(null as varchar) as identifiant,
            cast(null as varchar) as type_lieu,
            cast(null as varchar) as dossier,
            cast(null as double) as lon,
            cast(null as double) as lat,
            cast(null as varchar) as crs_source,
            cast(null as varchar) as geographie_qpv,
            cast(null as varchar) as statut,
            cast(null as varchar) as motif,
            cast(null as varchar) as code_qpv,
            cast(null as integer) as nb_qpv,
            cast(null as varchar) as code_qpv_apres_inversion
        where false
    {% endif %}

),

renamed as (

    select
        source_fichier,
        cast(source_ligne as bigint) as source_ligne,
        identifiant,
        coalesce(nullif(trim(type_lieu), ''), 'NON_RENSEIGNE') as type_lieu,
        nullif(trim(dossier), '') as dossier,
        cast(lon as double) as lon,
        cast(lat as double) as lat,
        crs_source,
        geographie_qpv,
        statut,
        motif,
        code_qpv,
        cast(nb_qpv as integer) as nb_qpv,
        code_qpv_apres_inversion
    from source

)

select * from renamed
