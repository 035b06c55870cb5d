with

source as (

    select * from {{ source('raw_indicateurs', 'indicateurs_locaux') }}

),

renamed as (

    select
        upper(source) as source,
        cast(millesime as integer) as millesime,
        fichier,
        feuille,
        cast(ligne as bigint) as ligne,
        type_territoire,
        upper(code_territoire) as code_territoire,
        libelle_territoire,
        geographie,
        trim(variable) as variable,
        variable_fichier,
        nullif(trim(indicateur), '') as indicateur,
        unite as unite_declaree,
        cast(facteur as double) as facteur,
        cast(valeur as double) as valeur,
        cast(valeur_fichier as double) as valeur_fichier,
        cast(secret as boolean) as secret,
        marqueur_secret,
        mapping
    from source

)

select * from renamed
