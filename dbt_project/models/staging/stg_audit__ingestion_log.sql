with

source as (

    select * from {{ source('raw', 'ingestion_log') }}

)

select
    source,
    fichier,
    empreinte_sha256,
    cast(taille_octets as bigint) as taille_octets,
    cast(lignes_lues as bigint) as lignes_lues,
    cast(lignes_chargees as bigint) as lignes_chargees,
    cast(lignes_rejetees as bigint) as lignes_rejetees,
    statut,
    message,
    cast(horodatage as timestamp) as horodatage
from source
