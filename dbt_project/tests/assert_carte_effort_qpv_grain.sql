-- carte_effort_qpv: one row per contour x year, and a territory's map of a year never draws both
-- generations of contours.
select
    territoire,
    annee,
    code_qpv,
    'ligne en double' as probleme
from {{ ref('carte_effort_qpv') }}
group by territoire, annee, code_qpv
having count(*) > 1
union all
select
    territoire,
    annee,
    null as code_qpv,
    'deux générations de contours retenues' as probleme
from {{ ref('carte_effort_qpv') }}
where contour_retenu
group by territoire, annee
having count(distinct geographie_contour) > 1
