-- The QPV listed by the territory folders (perimetre_qpv.csv), codes in upper case.
with

source as (

    select * from {{ source('raw', 'territoires_perimetre_qpv') }}

),

renamed as (

    select
        territoire,
        upper(trim(code_qpv)) as code_qpv,
        trim(geographie) as geographie,
        nullif(trim(libelle_qpv), '') as libelle_qpv,
        note,
        fichier_source,
        ligne
    from source

)

select * from renamed
