-- Each loaded QPV (contours, official list) with the EPCI of each of its communes: the
-- commune codes of the source (insee_com, ';'-separated) joined to Etalab's composition of the
-- EPCI (ref_epci_communes), plus the SIREN the official list gives. A QPV over two EPCI has two
-- rows. Label: the one of the best-priority source.
with

sources as (

    select
        code_qpv,
        geographie,
        libelle_qpv,
        insee_com,
        priorite
    from {{ ref('int_qpv__sources') }}
    where origine in ('contours', 'liste_officielle')

),

communes as (

    select
        sources.code_qpv,
        trim(commune.code_commune) as code_commune
    from sources,
        unnest(string_split(sources.insee_com, ';')) as commune (code_commune)
    where sources.insee_com is not null

),

par_commune as (

    select distinct
        communes.code_qpv,
        epci_communes.siren_epci
    from communes
    inner join {{ ref('ref_epci_communes') }} as epci_communes
        on communes.code_commune = epci_communes.code_commune

),

par_liste as (

    select distinct
        code_qpv,
        siren_epci
    from {{ ref('stg_sig_ville__liste_qpv') }}
    where siren_epci is not null

),

libelles as (

    select
        code_qpv,
        arg_min(geographie, priorite) as geographie,
        arg_min(libelle_qpv, priorite) filter (where libelle_qpv is not null) as libelle_qpv
    from sources
    group by code_qpv

)

select
    liens.code_qpv,
    libelles.geographie,
    libelles.libelle_qpv,
    liens.siren_epci
from (
    select * from par_commune
    union
    select * from par_liste
) as liens
inner join libelles on liens.code_qpv = libelles.code_qpv
