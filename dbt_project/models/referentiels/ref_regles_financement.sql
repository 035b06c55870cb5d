-- The funding rules of the territories (regles_financement.csv of their folders), typed.
select
    territoire,
    regle,
    financeur,
    cast(annee_debut as integer) as annee_debut,
    cast(annee_fin as integer) as annee_fin,
    condition_statut,
    valeur,
    unite,
    controle,
    sens,
    cast(tolerance as double) as tolerance,
    cast(condition_rang as integer) as condition_rang,
    condition_nature,
    condition_volet,
    condition_quartier,
    exception_porteur,
    description,
    source_seed,
    source_libelle,
    citation
from {{ source('raw', 'territoires_regles_financement') }}
