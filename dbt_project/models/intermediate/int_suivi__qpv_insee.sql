-- For each year of the suivi data (programmations and bilans) and each QPV with values:
-- its population (int_qpv__populations: published in the QPV's own geography, else carried from
-- its 2015 predecessors through the crosswalk, with the method) and share of women (DEMO TX_F,
-- indicator part_femmes, published values only). A published population is preferred to a
-- carried one whatever its millésime; then the latest millésime not after the year, else the
-- earliest one after it.
with

valeurs as (

    select
        code_territoire as code_qpv,
        indicateur,
        millesime,
        valeur,
        'publiee' as methode_population,
        cast(null as varchar) as source_population
    from {{ ref('int_insee__valeurs_indicateurs') }}
    where
        type_territoire = 'qpv'
        and indicateur = 'part_femmes'
        and valeur is not null
    union all
    select
        code_qpv,
        'pop_municipale' as indicateur,
        millesime,
        population as valeur,
        methode_population,
        source_population
    from {{ ref('int_qpv__populations') }}
    where population is not null

),

annees as (

    select distinct annee from {{ ref('stg_suivi__programmations') }}
    where annee is not null
    union
    select distinct annee from {{ ref('stg_suivi__bilans') }}
    where annee is not null

),

choix as (

    select
        annees.annee,
        valeurs.code_qpv,
        valeurs.indicateur,
        valeurs.millesime,
        valeurs.valeur,
        valeurs.methode_population,
        valeurs.source_population,
        row_number() over (
            partition by annees.annee, valeurs.code_qpv, valeurs.indicateur
            order by
                valeurs.methode_population = 'publiee' desc,
                valeurs.millesime <= annees.annee desc,
                abs(valeurs.millesime - annees.annee),
                valeurs.millesime desc
        ) as rang
    from annees
    cross join valeurs

),

final as (

    select
        annee,
        code_qpv,
        max(valeur) filter (where indicateur = 'pop_municipale') as population,
        max(millesime) filter (where indicateur = 'pop_municipale') as millesime_population,
        max(methode_population) filter (where indicateur = 'pop_municipale')
            as methode_population,
        max(source_population) filter (where indicateur = 'pop_municipale')
            as source_population,
        max(valeur) filter (where indicateur = 'part_femmes') as part_femmes,
        max(millesime) filter (where indicateur = 'part_femmes') as millesime_part_femmes
    from choix
    where rang = 1
    group by annee, code_qpv

)

select * from final
