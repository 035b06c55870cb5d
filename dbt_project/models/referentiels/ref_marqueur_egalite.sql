-- The scales of the marqueur égalité femmes-hommes of the territories (marqueur_egalite.csv of
-- their folders), typed: a scale belongs to a territory and a period (annee_fin NULL: no end).
-- A territory without the file has no marqueur: its actions are not placed on any scale.
select
    territoire,
    echelle,
    cast(annee_debut as integer) as annee_debut,
    cast(annee_fin as integer) as annee_fin,
    niveau,
    cast(rang as integer) as rang,
    libelle,
    definition,
    criteres_echelle,
    source_seed,
    citation
from {{ source('raw', 'territoires_marqueur_egalite') }}
