-- The split key of an action over its QPV sums to 1: no euro is lost or counted twice.
select
    territoire,
    annee,
    dossier,
    sum(part_action) as somme_parts
from {{ ref('int_suivi__actions_qpv') }}
group by territoire, annee, dossier
having abs(sum(part_action) - 1) > 1e-9
