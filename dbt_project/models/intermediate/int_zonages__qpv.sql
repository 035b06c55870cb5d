-- The QPV each zoning covers: one row per zoning x QPV code, with the zoning's period. A row of
-- zonages.csv names a QPV (taken as is) or a commune (every QPV spanning that commune, from
-- bridge_qpv_commune: 2015 and 2024 geographies alike). Quartiers d'intérêt communautaire
-- (no QPV, no commune code) cover no QPV: an action reaches them by name (see depenses_zonage).
with

zonages as (

    select * from {{ ref('ref_zonages') }}

),

bridge as (

    select * from {{ ref('bridge_qpv_commune') }}

),

couverts as (

    select
        territoire,
        code_zonage,
        code_qpv,
        'qpv' as rattachement
    from zonages
    where code_qpv is not null
    union all
    select
        zonages.territoire,
        zonages.code_zonage,
        bridge.code_qpv,
        'commune' as rattachement
    from zonages
    inner join bridge on zonages.code_commune = bridge.code_commune
    where zonages.code_commune is not null

),

-- A zoning's type, name and period (the reader checks they agree on every row).
attributs as (

    select
        territoire,
        code_zonage,
        any_value(type_zonage) as type_zonage,
        any_value(type_zonage_libelle) as type_zonage_libelle,
        any_value(nom) as nom_zonage,
        min(annee_debut) as annee_debut,
        max(annee_fin) as annee_fin
    from zonages
    group by territoire, code_zonage

)

select
    couverts.territoire,
    couverts.code_zonage,
    attributs.type_zonage,
    attributs.type_zonage_libelle,
    attributs.nom_zonage,
    couverts.code_qpv,
    min(couverts.rattachement) as rattachement,
    attributs.annee_debut,
    attributs.annee_fin
from couverts
inner join attributs
    on
        couverts.territoire = attributs.territoire
        and couverts.code_zonage = attributs.code_zonage
group by all
