-- depenses_objectif summed over the objectifs of an orientation gives depenses_orientation (same
-- actions, same amounts), and both give the granted total of the programmation lines.
with

objectif as (

    select
        territoire,
        annee,
        orientation_code,
        financeur,
        type_credit,
        sum(montant_demande) as montant_demande,
        sum(montant_accorde) as montant_accorde
    from {{ ref('depenses_objectif') }}
    group by all

),

orientation as (

    select
        territoire,
        annee,
        orientation_code,
        financeur,
        type_credit,
        sum(montant_demande) as montant_demande,
        sum(montant_accorde) as montant_accorde
    from {{ ref('depenses_orientation') }}
    group by all

)

select
    coalesce(objectif.territoire, orientation.territoire) as territoire,
    coalesce(objectif.annee, orientation.annee) as annee,
    coalesce(objectif.orientation_code, orientation.orientation_code) as orientation_code,
    objectif.montant_accorde as accorde_objectifs,
    orientation.montant_accorde as accorde_orientation
from objectif
full outer join orientation
    on
        objectif.territoire = orientation.territoire
        and objectif.annee = orientation.annee
        and objectif.orientation_code = orientation.orientation_code
        and objectif.financeur = orientation.financeur
        and objectif.type_credit = orientation.type_credit
where
    objectif.territoire is null
    or orientation.territoire is null
    or abs(objectif.montant_accorde - orientation.montant_accorde) > 0.005
    or abs(objectif.montant_demande - orientation.montant_demande) > 0.005
