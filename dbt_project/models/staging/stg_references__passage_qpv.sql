with

source as (

    select * from {{ source('raw_indicateurs', 'passage_qpv_2015_2024') }}

),

renamed as (

    select
        upper(code_qpv_2015) as code_qpv_2015,
        libelle_qpv_2015,
        upper(code_qpv_2024) as code_qpv_2024,
        libelle_qpv_2024,
        statut,
        cast(rang as integer) as rang,
        fichier,
        cast(ligne as bigint) as ligne
    from source

)

select * from renamed
