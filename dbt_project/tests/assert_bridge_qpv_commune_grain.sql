-- Grain of bridge_qpv_commune: one row per QPV and rank of the commune in its source field.
select
    code_qpv,
    rang_commune,
    count(*) as nb_lignes
from {{ ref('bridge_qpv_commune') }}
group by code_qpv, rang_commune
having count(*) > 1
