-- The quartiers d'intérêt communautaire of the territories (their folders), typed.
select
    territoire,
    nom,
    commune,
    cast(population as integer) as population,
    source_seed,
    note
from {{ source('raw', 'territoires_quartiers_interet_communautaire') }}
