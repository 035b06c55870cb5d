-- Financeur aliases: the national ones of the project (seed ref_financeurs_alias_communs,
-- territoire NULL), those of each territory folder (financeurs_alias.csv), and each territory's
-- own name as the EPCI (as written, and with its type in full: « CA de Lens - Liévin » and
-- « Communauté d'agglomération de Lens - Liévin »), unless its folder says otherwise.
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

union all

select
    noms.alias,
    'EPCI' as financeur,
    noms.territoire
from (
    select distinct
        territoire,
        alias
    from (
        select
            territoire,
            nom as alias
        from {{ ref('ref_territoires') }}
        union all
        select
            territoire,
            regexp_replace(
                regexp_replace(
                    regexp_replace(nom, '^CA ', 'Communauté d''agglomération '),
                    '^CC ', 'Communauté de communes '
                ),
                '^CU ', 'Communauté urbaine '
            ) as alias
        from {{ ref('ref_territoires') }}
    ) as variantes
    where alias is not null
) as noms
where not exists (
    select 1
    from {{ source('raw', 'territoires_financeurs_alias') }} as dossier
    where
        dossier.territoire = noms.territoire
        and {{ normalise_libelle('dossier.alias') }} = {{ normalise_libelle('noms.alias') }}
)
and not exists (
    select 1
    from {{ ref('ref_financeurs_alias_communs') }} as communs
    where {{ normalise_libelle('communs.alias') }} = {{ normalise_libelle('noms.alias') }}
)
