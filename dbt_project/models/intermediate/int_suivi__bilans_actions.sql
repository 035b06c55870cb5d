-- One row per action with a bilan (territoire x annee x dossier): what the bilan says of the
-- action (realisation and its reason, planned vs actual beneficiaries, result expected vs
-- obtained, residents' participation) and the action's orientation (level 1) taken from the
-- programmation of the same year, as beneficiaires_genre does.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ supprimer_annees_reconstruites() }}"
    )
}}

with

bilans as (

    select * from {{ ref('stg_suivi__bilans') }}
    where {{ annees_reconstruites() }}

),

programmations as (

    select
        territoire,
        annee,
        dossier,
        any_value(orientation_code) as orientation_code,
        any_value(orientation_n1_code) as orientation_n1_code,
        any_value(orientation_n1_libelle) as orientation_n1_libelle,
        any_value(orientation_libelle_referentiel) as orientation_libelle_referentiel,
        any_value(orientation_libelle) as orientation_libelle
    from {{ ref('int_suivi__programmations') }}
    where {{ annees_reconstruites() }}
    group by territoire, annee, dossier

),

lines as (

    select
        *,
        -- beneficiaries of the line: by sex when given (as beneficiaires_genre.total), else the
        -- stated total
        case
            when coalesce(femmes, hommes, sexe_non_renseigne) is not null
                then
                    coalesce(femmes, 0) + coalesce(hommes, 0) + coalesce(sexe_non_renseigne, 0)
            else total_beneficiaires
        end as beneficiaires_ligne
    from bilans

),

per_action as (

    select
        territoire,
        annee,
        dossier,
        -- one answer is expected per action; when its lines disagree the lowest wins
        -- (non < partiellement < oui) and the action is flagged
        case
            when bool_or(realisation = 'non') then 'non'
            when bool_or(realisation = 'partiellement') then 'partiellement'
            when bool_or(realisation = 'oui') then 'oui'
        end as realisation,
        count(distinct realisation) > 1 as realisation_incoherente,
        min(motif_non_realisation) as motif_non_realisation,
        max(beneficiaires_prevus) as beneficiaires_prevus,
        cast(sum(beneficiaires_ligne) as bigint) as beneficiaires_realises,
        cast(sum(beneficiaires_ligne) filter (where qpv_residence like 'Q%') as bigint)
            as beneficiaires_residents_qpv,
        min(indicateur_resultat) as indicateur_resultat,
        max(resultat_attendu) as resultat_attendu,
        max(resultat_obtenu) as resultat_obtenu,
        bool_or(participation_habitants) as participation_habitants,
        string_agg(distinct participation_formes, ';') as participation_formes,
        min(participation_modalites) as participation_modalites,
        min(mobilisation_publics) as mobilisation_publics,
        count(*) as nb_lignes
    from lines
    group by territoire, annee, dossier

)

select
    per_action.*,
    coalesce(
        programmations.orientation_n1_code, programmations.orientation_code, 'NON_RENSEIGNE'
    ) as orientation_code,
    coalesce(
        programmations.orientation_n1_libelle,
        programmations.orientation_libelle_referentiel,
        programmations.orientation_libelle
    ) as orientation_libelle,
    programmations.dossier is not null as dossier_programme
from per_action
left join programmations
    on
        per_action.territoire = programmations.territoire
        and per_action.annee = programmations.annee
        and per_action.dossier = programmations.dossier
