-- Geocoded places counted per geography x type of place x status x QPV. Individual places are
-- never published; for places of people (beneficiaries' homes...), counts between 1 and 4 are
-- masked with their dossier and ambiguity counts (statistical secrecy). part_type = share of
-- the type's places with valid coordinates (dans_qpv + hors_qpv) that fall in this QPV (or
-- outside every QPV).
with

lieux as (

    select * from {{ ref('stg_geo__lieux') }}

),

dim_qpv as (

    select * from {{ ref('dim_qpv') }}

),

grouped as (

    select
        geographie_qpv,
        type_lieu,
        statut,
        code_qpv,
        count(*) as nb,
        count(distinct dossier) as nb_dossiers,
        count(*) filter (where nb_qpv > 1) as nb_ambigus
    from lieux
    group by geographie_qpv, type_lieu, statut, code_qpv

),

shares as (

    select
        *,
        sum(nb) filter (where statut in ('dans_qpv', 'hors_qpv'))
            over (partition by geographie_qpv, type_lieu)
            as nb_valides_type,
        regexp_matches(
            lower(strip_accents(type_lieu)), 'benef|residen|domicil|habitant|usager|personne'
        ) as type_personnes
    from grouped

),

secrets as (

    select
        *,
        type_personnes and nb between 1 and 4 as secret
    from shares

),

final as (

    select
        shares.geographie_qpv,
        shares.type_lieu,
        shares.statut,
        shares.code_qpv,
        dim_qpv.libelle_qpv,
        dim_qpv.territoire,
        shares.secret as secret_statistique,
        case when not shares.secret then shares.nb end as nb_lieux,
        case when not shares.secret then shares.nb_dossiers end as nb_dossiers,
        case when not shares.secret then shares.nb_ambigus end as nb_ambigus,
        case
            when not shares.secret and shares.statut in ('dans_qpv', 'hors_qpv')
                then round(100.0 * shares.nb / nullif(shares.nb_valides_type, 0), 1)
        end as part_type
    from secrets as shares
    left join dim_qpv on shares.code_qpv = dim_qpv.code_qpv

)

select * from final
