-- The QPV each action targets, with the share of the action assigned to each: one row per action
-- x QPV. 'TOUS' means every QPV of the territory's perimeter (ref_perimetre_qpv) in the QPV
-- geography in force that year (the latest generation started by the year: 2015 until 2023,
-- 2024 from 2024). Split key: the QPV's INSEE population (int_suivi__qpv_insee) when every QPV
-- of the action has one ('population'); otherwise an equal split ('egale', flagged); a single
-- QPV gets everything ('unique'). Actions without any QPV code (quartier d'intérêt
-- communautaire, hors QPV, cell empty) get one row with code_qpv = 'SANS_QPV'.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ supprimer_annees_reconstruites() }}"
    )
}}

with

actions as (

    select * from {{ ref('int_suivi__actions') }}
    where {{ annees_reconstruites() }}

),

perimetre as (

    select
        territoire,
        code_qpv,
        cast(geographie as varchar) as geographie,
        libelle_qpv
    from {{ ref('ref_perimetre_qpv') }}

),

insee as (

    select * from {{ ref('int_suivi__qpv_insee') }}

),

annees as (

    select distinct
        territoire,
        annee
    from actions

),

geographie_annee as (

    select
        annees.territoire,
        annees.annee,
        max(perimetre.geographie) as geographie
    from annees
    inner join perimetre
        on
            annees.territoire = perimetre.territoire
            and try_cast(perimetre.geographie as integer) <= annees.annee
    group by annees.territoire, annees.annee

),

codes_saisis as (

    select
        territoire,
        annee,
        dossier,
        trim(code) as code_qpv
    from actions,
        unnest(string_split(coalesce(qpv_codes, ''), ';')) as codes (code)
    where trim(code) <> ''

),

-- A code as typed; « TOUS » is every QPV of the territory's perimeter in the geography of the
-- year (kept as « TOUS » when the perimeter has none). Two branches: a join condition that
-- tests the typed code would compare every code with every QPV of the country.
cibles as (

    select
        territoire,
        annee,
        dossier,
        code_qpv,
        false as tous_qpv
    from codes_saisis
    where code_qpv <> 'TOUS'
    union all
    select
        codes_saisis.territoire,
        codes_saisis.annee,
        codes_saisis.dossier,
        coalesce(perimetre.code_qpv, codes_saisis.code_qpv) as code_qpv,
        true as tous_qpv
    from codes_saisis
    left join geographie_annee
        on
            codes_saisis.territoire = geographie_annee.territoire
            and codes_saisis.annee = geographie_annee.annee
    left join perimetre
        on
            codes_saisis.territoire = perimetre.territoire
            and geographie_annee.geographie = perimetre.geographie
    where codes_saisis.code_qpv = 'TOUS'
    union all
    select
        territoire,
        annee,
        dossier,
        'SANS_QPV' as code_qpv,
        false as tous_qpv
    from actions
    where not exists (
        select 1 from codes_saisis
        where
            codes_saisis.territoire = actions.territoire
            and codes_saisis.annee = actions.annee
            and codes_saisis.dossier = actions.dossier
    )

),

-- A code typed twice for the same action counts once.
distincts as (

    select
        territoire,
        annee,
        dossier,
        code_qpv,
        bool_or(tous_qpv) as tous_qpv
    from cibles
    group by territoire, annee, dossier, code_qpv

),

avec_population as (

    select
        distincts.*,
        insee.population,
        insee.millesime_population,
        count(*) over (partition by distincts.territoire, distincts.annee, distincts.dossier)
            as nb_qpv_action,
        count(insee.population) over (
            partition by distincts.territoire, distincts.annee, distincts.dossier
        ) as nb_qpv_avec_population,
        sum(insee.population) over (
            partition by distincts.territoire, distincts.annee, distincts.dossier
        ) as population_action
    from distincts
    left join insee
        on
            distincts.annee = insee.annee
            and distincts.code_qpv = insee.code_qpv

),

final as (

    select
        territoire,
        annee,
        dossier,
        code_qpv,
        tous_qpv,
        nb_qpv_action,
        population,
        millesime_population,
        case
            when nb_qpv_action = 1 then 'unique'
            when nb_qpv_avec_population = nb_qpv_action and population_action > 0
                then 'population'
            else 'egale'
        end as cle_repartition,
        case
            when nb_qpv_action = 1 then 1.0
            when nb_qpv_avec_population = nb_qpv_action and population_action > 0
                then population / population_action
            else 1.0 / nb_qpv_action
        end as part_action
    from avec_population

)

select * from final
