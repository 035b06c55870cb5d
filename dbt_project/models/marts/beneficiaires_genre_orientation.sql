-- Beneficiaries by territory, year and orientation, all places of residence together, by sex:
-- the sums of beneficiaires_genre over qpv_residence (QPV codes, HORS_QPV, NON_RENSEIGNE).
-- part_femmes = femmes / (femmes + hommes), as in beneficiaires_genre.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ supprimer_annees_reconstruites() }}"
    )
}}

with

detail as (

    select * from {{ ref('beneficiaires_genre') }}
    where {{ annees_reconstruites() }}

),

grouped as (

    select
        territoire,
        annee,
        orientation_code,
        any_value(orientation_libelle) as orientation_libelle,
        sum(femmes) as femmes,
        sum(hommes) as hommes,
        sum(sexe_non_renseigne) as sexe_non_renseigne,
        sum(total) as total,
        sum(total) filter (where qpv_residence like 'Q%') as total_residents_qpv
    from detail
    group by territoire, annee, orientation_code

)

select
    *,
    round(100.0 * femmes / nullif(femmes + hommes, 0), 1) as part_femmes
from grouped
