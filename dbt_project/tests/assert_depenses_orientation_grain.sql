-- Grain of depenses_orientation: territoire x annee x referentiel x orientation x financeur x
-- credit type.
select
    territoire,
    annee,
    referentiel,
    orientation_code,
    financeur,
    type_credit,
    count(*) as nb_lignes
from {{ ref('depenses_orientation') }}
group by territoire, annee, referentiel, orientation_code, financeur, type_credit
having count(*) > 1
