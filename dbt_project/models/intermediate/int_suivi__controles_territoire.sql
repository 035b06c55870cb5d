-- Territory-level funding rules (int_suivi__regles, niveau_controle = 'territoire') evaluated on
-- each programmation year of the territory: share of actions under CPO, number of actions under
-- suivi renforcé (in the year, or since the start of the rule's period), share of a financeur's
-- amounts in a volet. One row per rule x year, with the observed value, the threshold and the
-- result (conforme, infraction, non_renseigne; a_venir for a number over the period not reached
-- before its last year). As for
-- actions, the SQL depends on the rule's controle and sens, never on its name.
with

regles as (

    select * from {{ ref('int_suivi__regles') }}
    where niveau_controle = 'territoire'

),

actions as (

    select * from {{ ref('int_suivi__actions') }}

),

financeurs as (

    select * from {{ ref('int_suivi__actions_financeurs') }}

),

-- Actions of the year counted by a rule: all of them, or those with a line of the rule's
-- financeur.
actions_regles as (

    select
        regles.regle_cle,
        actions.annee,
        count(*) as nb_actions,
        count(*) filter (where actions.cpo) as nb_actions_cpo,
        count(actions.suivi_renforce) as nb_suivi_renforce_renseigne,
        count(*) filter (where actions.suivi_renforce) as nb_actions_suivi_renforce
    from regles
    inner join actions
        on
            regles.territoire = actions.territoire
            and actions.annee >= regles.annee_debut
            and actions.annee <= coalesce(regles.annee_fin, actions.annee)
    where
        regles.financeur is null
        or exists (
            select 1 from financeurs
            where
                financeurs.territoire = actions.territoire
                and financeurs.annee = actions.annee
                and financeurs.dossier = actions.dossier
                and financeurs.financeur = regles.financeur
        )
    group by regles.regle_cle, actions.annee

),

-- Actions put under suivi renforcé since the start of the rule's period, for a number without
-- periodicity (controle nombre_actions_suivi_renforce_periode: « 3 actions seront
-- sélectionnées », not 3 a year): an action counts once over the years (its dossier_base: a
-- multi-year series is one action).
annees as (

    select distinct
        territoire,
        annee
    from actions

),

suivi_periode as (

    select
        regles.regle_cle,
        annees.annee,
        count(distinct coalesce(actions.dossier_base, actions.dossier)) filter (
            where actions.suivi_renforce
        ) as nb_actions_suivi_periode
    from regles
    inner join annees
        on
            regles.territoire = annees.territoire
            and annees.annee >= regles.annee_debut
            and annees.annee <= coalesce(regles.annee_fin, annees.annee)
    inner join actions
        on
            regles.territoire = actions.territoire
            and actions.annee >= regles.annee_debut
            and actions.annee <= annees.annee
    where regles.controle = 'nombre_actions_suivi_renforce_periode'
    group by regles.regle_cle, annees.annee

),

-- Amounts of the rule's financeur (granted, else requested) in the year, and those of the
-- rule's volet: for the rules on a volet's share only (the others do not read them), so that
-- the rules x financeur lines pairs are not formed, nor their volets normalised, for nothing.
montants_regles as (

    select
        regles.regle_cle,
        financeurs.annee,
        sum(coalesce(financeurs.montant_accorde, financeurs.montant_demande)) as montant_total,
        coalesce(
            sum(coalesce(financeurs.montant_accorde, financeurs.montant_demande)) filter (
                where
                {{ normalise_libelle('financeurs.volet_regional') }}
                = {{ normalise_libelle('regles.condition_volet') }}
            ),
            0
        ) as montant_volet
    from regles
    inner join financeurs
        on
            regles.territoire = financeurs.territoire
            and financeurs.annee >= regles.annee_debut
            and financeurs.annee <= coalesce(regles.annee_fin, financeurs.annee)
            and (regles.financeur is null or regles.financeur = financeurs.financeur)
    where regles.controle = 'part_montant_volet'
    group by regles.regle_cle, financeurs.annee

),

mesures as (

    select
        regles.*,
        actions_regles.annee,
        actions_regles.nb_actions,
        case regles.controle
            when 'part_actions_cpo'
                then round(actions_regles.nb_actions_cpo / actions_regles.nb_actions, 6)
            when 'nombre_actions_suivi_renforce'
                then
                    case
                        when actions_regles.nb_suivi_renforce_renseigne > 0
                            then actions_regles.nb_actions_suivi_renforce
                    end
            when 'nombre_actions_suivi_renforce_periode'
                then
                    case
                        when actions_regles.nb_suivi_renforce_renseigne > 0
                            then suivi_periode.nb_actions_suivi_periode
                    end
            when 'part_montant_volet'
                then
                    round(
                        montants_regles.montant_volet / nullif(montants_regles.montant_total, 0), 6
                    )
        end as valeur_nombre
    from regles
    inner join actions_regles on regles.regle_cle = actions_regles.regle_cle
    left join montants_regles
        on
            actions_regles.regle_cle = montants_regles.regle_cle
            and actions_regles.annee = montants_regles.annee
    left join suivi_periode
        on
            actions_regles.regle_cle = suivi_periode.regle_cle
            and actions_regles.annee = suivi_periode.annee

),

final as (

    select
        regle_cle,
        territoire,
        annee,
        regle,
        financeur,
        controle,
        sens,
        unite,
        valeur as seuil,
        case
            when unite = 'part' then cast(round(valeur_nombre, 4) as varchar)
            else cast(valeur_nombre as varchar)
        end as valeur_observee,
        valeur_nombre,
        seuil_nombre,
        valeur_nombre - seuil_nombre as ecart,
        nb_actions,
        case
            when valeur_nombre is null or seuil_nombre is null then 'non_renseigne'
            -- a number over the whole period: below it, judged only in the period's last year
            when
                controle = 'nombre_actions_suivi_renforce_periode'
                and sens in ('egal', 'min')
                and valeur_nombre < seuil_nombre
                and annee < coalesce(annee_fin, annee + 1)
                then 'a_venir'
            when sens = 'min' and valeur_nombre < seuil_nombre then 'infraction'
            when sens = 'max' and valeur_nombre > seuil_nombre then 'infraction'
            when sens = 'egal' and valeur_nombre <> seuil_nombre then 'infraction'
            when sens = 'cible' and abs(valeur_nombre - seuil_nombre) > tolerance then 'infraction'
            else 'conforme'
        end as resultat,
        condition_volet,
        tolerance,
        description,
        source_seed,
        source_libelle,
        citation
    from mesures

)

select
    *,
    resultat = 'infraction' as en_infraction
from final
