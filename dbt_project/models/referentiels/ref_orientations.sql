-- The orientation hierarchies of the territories (orientations.csv of their folders), typed.
select
    referentiel,
    territoire,
    cast(annee_debut as integer) as annee_debut,
    cast(annee_fin as integer) as annee_fin,
    cast(niveau as integer) as niveau,
    type_niveau,
    code,
    libelle,
    nullif(code_parent, '') as code_parent,
    coalesce(cast(transversal as boolean), false) as transversal,
    source_seed
from {{ source('raw', 'territoires_orientations') }}
