with

source as (

    select * from {{ source('raw', 'qpv_contours') }}

),

renamed as (

    select
        code_qpv,
        libelle_qpv,
        geographie,
        insee_com,
        lib_com,
        cast(surface_km2 as double) as surface_km2,
        crs_surface,
        cast(centroide_lon as double) as centroide_lon,
        cast(centroide_lat as double) as centroide_lat,
        cast(geometrie_reparee as boolean) as geometrie_reparee,
        source_fichier,
        source_couche,
        crs_source,
        geom
    from source

)

select * from renamed
