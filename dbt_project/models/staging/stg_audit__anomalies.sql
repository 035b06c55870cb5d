with

source as (

    select * from {{ source('raw', 'anomalies') }}

)

select
    source,
    type,
    fichier,
    cast(ligne as bigint) as ligne,
    dossier,
    message,
    colonne,
    valeur_brute,
    upper(trim(territoire)) as territoire,
    cast(annee as integer) as annee
from source
