-- Financeur aliases: the national ones of the project (seed ref_financeurs_alias_communs,
-- territoire NULL) and those of each territory folder (financeurs_alias.csv).
select
    alias,
    financeur,
    cast(null as varchar) as territoire
from {{ ref('ref_financeurs_alias_communs') }}

union all

select
    alias,
    financeur,
    territoire
from {{ source('raw', 'territoires_financeurs_alias') }}
