-- Every action-level funding rule (int_suivi__regles, niveau_controle = 'action') evaluated on
-- every action it concerns: one row per action x rule, with the observed value, the threshold and
-- the result. The SQL depends on the rule's controle (which measure) and sens (min, max, egal,
-- cible), never on its name: a new threshold, year or territory is a new line of the CSV.
-- Results: conforme, infraction, non_remis (a document owed, still missing after its deadline),
-- a_venir (a document not handed in yet, deadline not reached), non_renseigne (value missing).
{%- set date_reference = var('date_reference', none) -%}
{%- if date_reference -%}
    {%- set date_reference_sql = "cast('" ~ date_reference ~ "' as date)" -%}
{%- else -%}
    {%- set date_reference_sql = "current_date" -%}
{%- endif %}
with

regles as (

    select * from {{ ref('int_suivi__regles') }}
    where niveau_controle = 'action'

),

actions as (

    select * from {{ ref('int_suivi__actions') }}

),

financeurs as (

    select * from {{ ref('int_suivi__actions_financeurs') }}

),

marqueurs as (

    select
        territoire,
        echelle,
        niveau,
        rang
    from {{ ref('ref_marqueur_egalite') }}

),

-- The actions a rule applies to: same territory, year in the rule's period, and the rule's
-- conditions on the action (status, year of funding, quartier d'intérêt communautaire, porteur
-- exemption).
applicables as (

    select
        regles.*,
        actions.dossier,
        actions.intitule,
        actions.porteur_nom,
        actions.statut_code,
        actions.cout_total,
        actions.couts_indirects,
        actions.achats,
        actions.cpo,
        actions.cpo_duree,
        actions.part_public_qpv,
        actions.nombre_reunions_suivi,
        actions.marqueur_egalite,
        actions.marqueur_rang,
        actions.echelle_marqueur,
        actions.date_bilan,
        actions.date_bilan_intermediaire,
        actions.date_fin_action,
        actions.date_demande_report,
        actions.source_fichier,
        actions.annee
    from regles
    inner join actions
        on
            regles.territoire = actions.territoire
            and actions.annee >= regles.annee_debut
            and actions.annee <= coalesce(regles.annee_fin, actions.annee)
    where
        (regles.condition_statut is null or regles.condition_statut = actions.statut_code)
        and (
            regles.condition_rang is null or regles.condition_rang = actions.rang_financement
        )
        and (
            regles.condition_quartier is null
            or (regles.condition_quartier = 'qic' and actions.vise_qic)
        )
        and (
            regles.exception_porteur is null
            or not (
                {{ normalise_libelle('actions.porteur_type') }}
                = {{ normalise_libelle('regles.exception_porteur') }}
                or {{ normalise_libelle('actions.porteur_nom') }}
                like '%' || {{ normalise_libelle('regles.exception_porteur') }} || '%'
            )
        )

),

-- Amounts of the rule's financeur for the action (all financeurs when the rule names none),
-- restricted to the rule's nature of subsidy when it has one. The join is on the action's key
-- only (a hash join); the rule's financeur and nature filter the aggregates, so that no OR in
-- the join condition turns it into a nested-loop join over every financeur line.
candidats as (

    select
        applicables.regle_cle,
        applicables.dossier,
        financeurs.financeur,
        financeurs.montant_demande,
        financeurs.montant_accorde,
        (applicables.financeur is null or applicables.financeur = financeurs.financeur)
        and (
            applicables.condition_nature is null
            or {{ normalise_libelle('applicables.condition_nature') }}
            = {{ normalise_libelle('financeurs.nature_subvention') }}
        ) as retenu
    from applicables
    left join financeurs
        on
            applicables.territoire = financeurs.territoire
            and applicables.annee = financeurs.annee
            and applicables.dossier = financeurs.dossier

),

montants as (

    select
        regle_cle,
        dossier,
        count(financeur) filter (where retenu) as nb_lignes_financeur,
        sum(montant_demande) filter (where retenu) as montant_demande,
        sum(montant_accorde) filter (where retenu) as montant_accorde
    from candidats
    group by regle_cle, dossier

),

mesures as (

    select
        applicables.*,
        montants.montant_demande as montant_demande_financeur,
        case
            when applicables.controle in ('montant_demande', 'part_demande_cout')
                then montants.nb_lignes_financeur > 0
            -- a cap on the subsidy granted concerns a subsidy, not a refused request
            when applicables.controle = 'montant_accorde'
                then coalesce(montants.montant_accorde, 0) > 0
            when applicables.controle = 'date_bilan'
                then coalesce(montants.montant_accorde, 0) > 0
            -- the marqueur is the territory's instrument: no scale in force, nothing to judge
            when applicables.controle = 'niveau_marqueur'
                then applicables.echelle_marqueur is not null
            when applicables.controle = 'cpo_duree'
                then
                    applicables.cpo
                    and (applicables.financeur is null or montants.nb_lignes_financeur > 0)
            else applicables.financeur is null or montants.nb_lignes_financeur > 0
        end as concernee,
        case applicables.controle
            when 'montant_demande' then montants.montant_demande
            when 'montant_accorde' then montants.montant_accorde
            when 'part_demande_cout'
                then round(montants.montant_demande / nullif(applicables.cout_total, 0), 6)
            when 'cout_total' then applicables.cout_total
            when 'part_couts_indirects'
                then round(applicables.couts_indirects / nullif(applicables.cout_total, 0), 6)
            when 'part_achats'
                then round(applicables.achats / nullif(applicables.cout_total, 0), 6)
            when 'cpo_duree' then applicables.cpo_duree
            when 'part_public_qpv' then applicables.part_public_qpv
            when 'nombre_reunions_suivi' then applicables.nombre_reunions_suivi
            when 'niveau_marqueur' then applicables.marqueur_rang
        end as valeur_nombre,
        case applicables.controle
            when 'date_bilan' then applicables.date_bilan
            when 'date_bilan_intermediaire' then applicables.date_bilan_intermediaire
            when 'date_fin_action' then applicables.date_fin_action
            when 'date_demande_report' then applicables.date_demande_report
        end as valeur_date,
        case
            when applicables.controle = 'niveau_marqueur' then seuil_marqueur.rang
            else applicables.seuil_nombre
        end as seuil_comparable,
        coalesce(
            applicables.seuil_date,
            make_date(applicables.annee + 1, applicables.seuil_mois, applicables.seuil_jour)
        ) as echeance
    from applicables
    inner join montants
        on
            applicables.regle_cle = montants.regle_cle
            and applicables.dossier = montants.dossier
    left join marqueurs as seuil_marqueur
        on
            applicables.territoire = seuil_marqueur.territoire
            and applicables.echelle_marqueur = seuil_marqueur.echelle
            and applicables.seuil_niveau = seuil_marqueur.niveau

),

evaluees as (

    select
        *,
        case
            when controle like 'date%' and valeur_date is not null
                then
                    case
                        when sens = 'max' and valeur_date > echeance then 'infraction'
                        when sens = 'min' and valeur_date < echeance then 'infraction'
                        else 'conforme'
                    end
            when controle in ('date_bilan', 'date_bilan_intermediaire')
                then
                    case
                        when echeance < {{ date_reference_sql }} then 'non_remis'
                        else 'a_venir'
                    end
            when controle like 'date%' then 'conforme'
            when valeur_nombre is null or seuil_comparable is null then 'non_renseigne'
            when sens = 'min' and valeur_nombre < seuil_comparable then 'infraction'
            when sens = 'max' and valeur_nombre > seuil_comparable then 'infraction'
            when sens = 'egal' and valeur_nombre <> seuil_comparable then 'infraction'
            when
                sens = 'cible' and abs(valeur_nombre - seuil_comparable) > tolerance
                then 'infraction'
            else 'conforme'
        end as resultat
    from mesures
    where concernee

),

final as (

    select
        regle_cle,
        territoire,
        annee,
        dossier,
        intitule,
        porteur_nom,
        regle,
        financeur,
        controle,
        sens,
        unite,
        case
            when unite in ('date', 'date_n_plus_1') then cast(echeance as varchar)
            else valeur
        end as seuil,
        case
            when controle = 'niveau_marqueur' then marqueur_egalite
            when valeur_date is not null then cast(valeur_date as varchar)
            when unite = 'part' then cast(round(valeur_nombre, 4) as varchar)
            when unite = 'EUR' then cast(round(valeur_nombre, 2) as varchar)
            else cast(valeur_nombre as varchar)
        end as valeur_observee,
        valeur_nombre,
        valeur_date,
        seuil_comparable as seuil_nombre,
        echeance,
        case
            when valeur_date is not null then date_diff('day', echeance, valeur_date)
            else valeur_nombre - seuil_comparable
        end as ecart,
        resultat,
        resultat in ('infraction', 'non_remis') as en_infraction,
        condition_statut,
        condition_rang,
        condition_nature,
        condition_quartier,
        tolerance,
        description,
        source_seed,
        source_libelle,
        citation,
        source_fichier
    from evaluees

)

select * from final
