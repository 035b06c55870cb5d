-- Commune contours (one row per INSEE commune code), drawn as outlines under the QPV of the
-- report's maps. Empty when no commune contours file is loaded.
with

source as (

    select * from {{ source('raw', 'communes_contours') }}

),

renamed as (

    select
        code_commune,
        nom_commune,
        cast(geometrie_reparee as boolean) as geometrie_reparee,
        source_fichier,
        source_couche,
        crs_source,
        geom
    from source

)

select * from renamed
