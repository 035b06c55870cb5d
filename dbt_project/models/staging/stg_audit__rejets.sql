with

source as (

    select * from {{ source('raw', 'rejets') }}

)

select
    source,
    fichier,
    feuille,
    cast(ligne as bigint) as ligne,
    colonne,
    valeur_brute,
    motif
from source
