-- Spending by territory, year and transversal theme of the action (the theme each project names:
-- CABBALR's priorités transversales, seed 003; CAMVS's fils rouges, seed 004; VM's orientations
-- transversales, seed 000), with the part of it inscribed in a projet de quartier (VM's
-- « Projets de Quartier », seed 000; CAMVS's projets de quartier, seed 004). One action counts
-- once (int_suivi__actions). A theme not found in the hierarchy keeps the typed text
-- (thematique_reconnue = false); no theme: 'NON_RENSEIGNE'.
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

labelled as (

    select
        territoire,
        annee,
        referentiel,
        coalesce(
            thematique_code,
            nullif({{ normalise_libelle('thematique_libelle') }}, ''),
            'NON_RENSEIGNE'
        ) as thematique_code,
        coalesce(thematique_libelle, 'Aucune thématique transversale renseignée')
            as thematique_libelle,
        thematique_code is not null or thematique_libelle is null as thematique_reconnue,
        projet_quartier,
        dossier,
        montant_demande,
        montant_accorde
    from actions

),

grouped as (

    select
        territoire,
        annee,
        any_value(referentiel) as referentiel,
        thematique_code,
        any_value(thematique_libelle) as thematique_libelle,
        bool_and(thematique_reconnue) as thematique_reconnue,
        count(distinct dossier) as nb_actions,
        count(distinct dossier) filter (where montant_accorde > 0) as nb_actions_financees,
        cast(sum(montant_demande) as decimal(18, 2)) as montant_demande,
        cast(sum(montant_accorde) as decimal(18, 2)) as montant_accorde,
        count(distinct dossier) filter (where projet_quartier) as nb_actions_projet_quartier,
        cast(coalesce(sum(montant_accorde) filter (where projet_quartier), 0) as decimal(18, 2))
            as montant_accorde_projet_quartier,
        bool_or(projet_quartier is not null) as projet_quartier_renseigne
    from labelled
    group by territoire, annee, thematique_code

)

select
    *,
    round(
        montant_accorde
        / nullif(sum(montant_accorde) over (partition by territoire, annee), 0),
        4
    ) as part_accorde_annee
from grouped
