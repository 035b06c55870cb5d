-- The contours a territory's maps draw: the QPV of dim_qpv that belong to a contract territory
-- and have a geometry (both generations). Shared by int_qpv__liens_contours and the map marts
-- (carte_taux_emploi, carte_effort_qpv, through the macros of macros/carte.sql).
select
    code_qpv,
    libelle_qpv,
    geographie,
    territoire,
    geom
from {{ ref('dim_qpv') }}
where geom is not null and territoire is not null
