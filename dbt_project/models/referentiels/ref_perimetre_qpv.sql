-- The QPV of each territory: those its folder lists (perimetre_qpv.csv), or, for a territory
-- whose perimeter is « officiel », every loaded QPV (contours, official list) with a commune
-- in its EPCI.
with

listes as (

    select
        territoire,
        code_qpv,
        geographie,
        libelle_qpv,
        note
    from {{ ref('stg_territoires__perimetre_qpv') }}

),

officiels as (

    select distinct
        territoires.territoire,
        epci.code_qpv,
        epci.geographie,
        epci.libelle_qpv,
        'périmètre officiel : QPV ayant une commune dans l''EPCI ' || territoires.siren as note
    from {{ ref('ref_territoires') }} as territoires
    inner join {{ ref('int_qpv__epci') }} as epci on territoires.siren = epci.siren_epci
    where territoires.perimetre = 'officiel'

)

select * from listes
union all
select * from officiels
