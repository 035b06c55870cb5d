-- The geography change of each territory: one row per link of the QPV 2015 <-> 2024 crosswalk
-- (int_qpv__passage_2015_2024: official correspondence file, else seeded pairs to confirm), with
-- the territory of the QPV (dim_qpv, 2024 code first) and the populations known for each side.
-- A QPV of one generation with no partner in the other (entered or left the geography) also has
-- a row, its missing side NULL.
with

passage as (

    select * from {{ ref('int_qpv__passage_2015_2024') }}

),

dim as (

    select * from {{ ref('dim_qpv') }}

),

qpv_2015 as (

    select * from dim
    where geographie = '2015'

),

qpv_2024 as (

    select * from dim
    where geographie = '2024'

),

liens as (

    select
        code_qpv_2015,
        code_qpv_2024,
        libelle_qpv_2015,
        libelle_qpv_2024,
        type_lien,
        statut,
        origine
    from passage
    union all
    select
        code_qpv as code_qpv_2015,
        null as code_qpv_2024,
        libelle_qpv as libelle_qpv_2015,
        null as libelle_qpv_2024,
        'sorti_ou_non_relie' as type_lien,
        null as statut,
        'dim_qpv (aucun lien dans la table de passage)' as origine
    from qpv_2015
    where
        code_qpv not in (
            select p.code_qpv_2015 from passage as p
            where p.code_qpv_2015 is not null
        )
    union all
    select
        null as code_qpv_2015,
        code_qpv as code_qpv_2024,
        null as libelle_qpv_2015,
        libelle_qpv as libelle_qpv_2024,
        'entre_ou_non_relie' as type_lien,
        null as statut,
        'dim_qpv (aucun lien dans la table de passage)' as origine
    from qpv_2024
    where
        code_qpv not in (
            select p.code_qpv_2024 from passage as p
            where p.code_qpv_2024 is not null
        )

)

select
    coalesce(qpv_2024.territoire, qpv_2015.territoire) as territoire,
    liens.code_qpv_2015,
    coalesce(liens.libelle_qpv_2015, qpv_2015.libelle_qpv) as libelle_qpv_2015,
    liens.code_qpv_2024,
    coalesce(liens.libelle_qpv_2024, qpv_2024.libelle_qpv) as libelle_qpv_2024,
    liens.type_lien,
    liens.statut,
    liens.origine,
    qpv_2015.population as population_2015,
    qpv_2015.millesime_population as millesime_population_2015,
    qpv_2024.population as population_2024,
    qpv_2024.millesime_population as millesime_population_2024,
    qpv_2024.surface_km2 as surface_km2_2024
from liens
left join qpv_2015 on liens.code_qpv_2015 = qpv_2015.code_qpv
left join qpv_2024 on liens.code_qpv_2024 = qpv_2024.code_qpv
