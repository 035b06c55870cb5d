-- The shares of a territory's year add up to 1 when the year's total granted is positive.
-- Each share is rounded to 4 decimals, so the tolerance is 0.001 or half a unit of the 4th
-- decimal per row, whichever is larger.
select
    territoire,
    annee,
    count(*) as nb_lignes,
    sum(montant_accorde) as total_accorde,
    sum(part_accorde_annee) as somme_parts
from {{ ref('depenses_orientation') }}
group by territoire, annee
having
    sum(montant_accorde) > 0
    and (
        sum(part_accorde_annee) is null
        or abs(sum(part_accorde_annee) - 1) > greatest(0.001, 0.00005 * count(*))
    )
