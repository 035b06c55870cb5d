with

source as (

    select * from {{ source('raw_indicateurs', 'valeurs_reference') }}

),

renamed as (

    select
        lower(territoire_type) as territoire_type,
        upper(territoire_code) as territoire_code,
        libelle_territoire,
        cast(millesime as integer) as millesime,
        trim(indicateur) as indicateur,
        cast(valeur as double) as valeur,
        source,
        note,
        fichier,
        cast(ligne as bigint) as ligne
    from source

)

select * from renamed
