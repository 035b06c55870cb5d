with

source as (

    select * from {{ source('raw', 'liste_qpv') }}

),

renamed as (

    select
        code_qpv,
        libelle_qpv,
        insee_reg,
        lib_reg,
        insee_dep,
        lib_dep,
        insee_com,
        lib_com,
        siren_epci,
        lib_epci
    from source

)

select * from renamed
