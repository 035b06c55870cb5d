-- For each year of the suivi data (programmations and bilans) and each QPV with INSEE values:
-- its population (DEMO POP_MUN, indicator pop_municipale) and share of women (DEMO TX_F,
-- indicator part_femmes), taken from the latest millésime not after the year, else the earliest
-- one after it. Only the QPV codes of the INSEE bases loaded (2015 geography here) have values:
-- a 2024 code gets none.
with

valeurs as (

    select
        code_territoire as code_qpv,
        indicateur,
        millesime,
        valeur
    from {{ ref('int_insee__valeurs_indicateurs') }}
    where
        type_territoire = 'qpv'
        and indicateur in ('pop_municipale', 'part_femmes')
        and valeur is not null

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
        row_number() over (
            partition by annees.annee, valeurs.code_qpv, valeurs.indicateur
            order by
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
        max(valeur) filter (where indicateur = 'part_femmes') as part_femmes,
        max(millesime) filter (where indicateur = 'part_femmes') as millesime_part_femmes
    from choix
    where rang = 1
    group by annee, code_qpv

)

select * from final
