with

source as (

    select * from {{ source('raw', 'insee_valeurs') }}

),

renamed as (

    select
        upper(source) as source,
        cast(millesime as integer) as millesime,
        fichier,
        feuille,
        cast(ligne as bigint) as ligne,
        type_territoire,
        code_territoire,
        libelle_territoire,
        geographie,
        upper(trim(variable)) as variable,
        variable_fichier,
        cast(valeur as double) as valeur,
        valeur_texte,
        cast(secret as boolean) as secret,
        marqueur_secret
    from source

)

select * from renamed
