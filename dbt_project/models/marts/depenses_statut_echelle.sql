-- Spending by territory, year, action status (in the territory's own words, ref_statuts_action)
-- and scale of intervention (communale, regroupement de communes, intercommunale): number of
-- actions, amounts requested and granted (all financeurs, then crédits spécifiques), share of the
-- year's total granted in the territory. One action counts once (int_suivi__actions: its
-- financeur lines summed). A status not found in the territory's référentiel keeps the label
-- typed in the file (statut_reconnu = false); an empty cell is 'NON_RENSEIGNE'.
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

statuts as (

    select
        territoire,
        statut_code,
        libelle
    from {{ ref('ref_statuts_action') }}

),

labelled as (

    select
        actions.territoire,
        actions.annee,
        coalesce(
            actions.statut_code,
            nullif({{ normalise_libelle('actions.statut_libelle') }}, ''),
            'NON_RENSEIGNE'
        ) as statut_code,
        coalesce(statuts.libelle, actions.statut_libelle, 'Statut non renseigné')
            as statut_libelle,
        actions.statut_categorie,
        actions.statut_code is not null as statut_reconnu,
        coalesce(actions.echelle, 'Échelle non renseignée') as echelle,
        actions.dossier,
        actions.montant_demande,
        actions.montant_accorde,
        actions.montant_accorde_credits_specifiques
    from actions
    left join statuts
        on
            actions.territoire = statuts.territoire
            and actions.statut_code = statuts.statut_code

),

grouped as (

    select
        territoire,
        annee,
        statut_code,
        any_value(statut_libelle) as statut_libelle,
        any_value(statut_categorie) as statut_categorie,
        bool_and(statut_reconnu) as statut_reconnu,
        echelle,
        count(distinct dossier) as nb_actions,
        count(distinct dossier) filter (where montant_accorde > 0) as nb_actions_financees,
        cast(sum(montant_demande) as decimal(18, 2)) as montant_demande,
        cast(sum(montant_accorde) as decimal(18, 2)) as montant_accorde,
        cast(sum(montant_accorde_credits_specifiques) as decimal(18, 2))
            as montant_accorde_credits_specifiques
    from labelled
    group by territoire, annee, statut_code, echelle

)

select
    *,
    round(
        montant_accorde
        / nullif(sum(montant_accorde) over (partition by territoire, annee), 0),
        4
    ) as part_accorde_annee
from grouped
