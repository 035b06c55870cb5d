-- The national aggregate row ("Ensemble des quartiers prioritaires"), communes, EPCI and France
-- are reference values, never QPV rows of indicateurs_qpv.
select
    code_qpv,
    millesime,
    source,
    variable
from {{ ref('indicateurs_qpv') }}
where not regexp_matches(code_qpv, '^Q[PN](\d{3}|02[AB])\d{2}[0-9NMIC]$')
