-- QPV <-> commune bridge: one row per QPV and commune it spans (multi-commune QPV listed in one
-- field separated by ';' in the sources). 2015-geography QPV known only from INSEE bases have
-- commune names but no INSEE code.
with

sources as (

    select * from {{ ref('int_qpv__sources') }}
    where lib_com is not null or insee_com is not null

),

-- codes and names taken together from the best source that has them, so that they pair up
best as (

    select
        code_qpv,
        arg_min(
            { 'insee_com': insee_com, 'lib_com': lib_com, 'origine': origine }, priorite
        ) as meilleure
    from sources
    group by code_qpv

),

split as (

    select
        code_qpv,
        meilleure['origine'] as origine,
        string_split(coalesce(meilleure['insee_com'], ''), ';') as codes,
        string_split(coalesce(meilleure['lib_com'], ''), ';') as noms
    from best

),

exploded as (

    select
        code_qpv,
        origine,
        generate_subscripts(
            case when len(codes) >= len(noms) then codes else noms end, 1
        ) as rang,
        codes,
        noms
    from split

)

select
    code_qpv,
    nullif(trim(codes[rang]), '') as code_commune,
    nullif(trim(noms[rang]), '') as nom_commune,
    rang as rang_commune,
    origine
from exploded
where coalesce(nullif(trim(codes[rang]), ''), nullif(trim(noms[rang]), '')) is not null
