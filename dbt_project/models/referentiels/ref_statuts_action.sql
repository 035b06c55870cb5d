-- The action statuses of the territories (statuts_action.csv of their folders).
select
    territoire,
    statut_code,
    libelle,
    categorie,
    source_seed
from {{ source('raw', 'territoires_statuts_action') }}
