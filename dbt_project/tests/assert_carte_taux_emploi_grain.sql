-- carte_taux_emploi: one row per contour x millésime, and a territory's map never draws both
-- generations of contours for the same millésime.
select
    territoire,
    millesime,
    code_qpv,
    'ligne en double' as probleme
from {{ ref('carte_taux_emploi') }}
group by territoire, millesime, code_qpv
having count(*) > 1
union all
select
    territoire,
    millesime,
    null as code_qpv,
    'deux générations de contours retenues' as probleme
from {{ ref('carte_taux_emploi') }}
where contour_retenu
group by territoire, millesime
having count(distinct geographie_contour) > 1
