-- An evolution is published only between millésimes far enough apart on the same code (same
-- geography); every other previous value is shown with its flag and no evolution.
select
    code_qpv,
    millesime,
    code_qpv_precedent,
    millesime_precedent,
    evolution_points,
    comparabilite_evolution
from {{ ref('taux_emploi_quartier') }}
where
    (
        evolution_points is not null
        and (
            comparabilite_evolution <> 'comparable'
            or code_qpv_precedent <> code_qpv
            or millesime - millesime_precedent < {{ var('ecart_min_millesimes_evolution', 2) }}
        )
    )
    or (comparabilite_evolution = 'autre_geographie' and code_qpv_precedent = code_qpv)
