-- A value is NULL exactly when it is under statistical secrecy: published values are never
-- lost and secret cells never get a number.
select
    code_qpv,
    millesime,
    source,
    variable,
    valeur,
    secret
from {{ ref('indicateurs_qpv') }}
where (valeur is null) != secret
