-- Every action-level funding rule (int_suivi__regles, niveau_controle = 'action') evaluated on
-- every action it concerns: one row per action x rule, with the observed value, the threshold and
-- the result. The SQL depends on the rule's controle (which measure) and sens (min, max, egal,
-- cible), never on its name: a new threshold, year or territory is a new line of the CSV.
-- Results: conforme, infraction, non_remis (a document owed, still missing after its deadline),
-- a_venir (a document not handed in yet, deadline not reached), non_renseigne (value missing),
-- a_examiner (a project to review, not a breach: marqueur of the previous programmation below a
-- level), non_verifiable (the loaded data cannot tell: previous year's programmation not loaded,
-- previous action not found, or a date column absent from every file of the year; never counted
-- as conforme, listed in the mart regles_non_verifiables).
-- The previous year's action of a project: same territory, year N-1, same dossier base (a CPO
-- tranche) or same porteur (SIRET, else name) and same intitulé (accents and case ignored).
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ supprimer_annees_reconstruites() }}",
        post_hook="{{ documents_echus(this) }}"
    )
}}

{%- set date_reference = var('date_reference', none) -%}
{%- if date_reference -%}
    {%- set date_reference_sql = "cast('" ~ date_reference ~ "' as date)" -%}
{%- else -%}
    {%- set date_reference_sql = "current_date" -%}
{%- endif %}
with

-- What the evaluation reads of a rule; its name, description and source (long texts) join the
-- results at the end, once per evaluation, instead of travelling with the 2 million action x
-- rule pairs of a national build.
regles as (

    select
        regle_cle,
        territoire,
        financeur,
        annee_debut,
        annee_fin,
        condition_statut,
        condition_rang,
        condition_nature,
        condition_quartier,
        exception_porteur,
        controle,
        sens,
        tolerance,
        valeur,
        unite,
        seuil_nombre,
        seuil_date,
        seuil_mois,
        seuil_jour,
        seuil_niveau
    from {{ ref('int_suivi__regles') }}
    where niveau_controle = 'action'

),

descriptions as (

    select
        regle_cle,
        regle,
        description,
        source_seed,
        source_libelle,
        citation
    from {{ ref('int_suivi__regles') }}
    where niveau_controle = 'action'

),

actions as (

    select * from {{ ref('int_suivi__actions') }}
    where {{ annees_reconstruites(recul=1) }}

),

financeurs as (

    select * from {{ ref('int_suivi__actions_financeurs') }}
    where {{ annees_reconstruites() }}

),

financeurs_ref as (

    select
        financeur,
        nature as institution,
        type_credit
    from {{ ref('ref_financeurs') }}

),

-- Pairs (action, previous year's action of the same project). Two equi-joins (hash joins)
-- instead of one join with an OR, which DuckDB can only evaluate on every pair of actions of a
-- territory's two years (the normalised labels computed for each pair): the same dossier base,
-- or else the same porteur and the same intitulé; each pair is found by one branch only.
actions_cles as (

    select
        territoire,
        annee,
        dossier,
        dossier_base,
        date_bilan,
        marqueur_rang,
        marqueur_egalite,
        echelle_marqueur,
        coalesce(porteur_siret, {{ normalise_libelle('porteur_nom') }}) as porteur_cle,
        {{ normalise_libelle('intitule') }} as intitule_cle
    from actions

),

paires_precedentes as (

    select
        courantes.territoire,
        courantes.annee,
        courantes.dossier,
        anciennes.dossier as dossier_ancien,
        anciennes.date_bilan,
        anciennes.marqueur_rang,
        anciennes.marqueur_egalite,
        anciennes.echelle_marqueur
    from actions_cles as courantes
    inner join actions_cles as anciennes
        on
            courantes.territoire = anciennes.territoire
            and courantes.annee - 1 = anciennes.annee
            and courantes.dossier_base = anciennes.dossier_base

    union all

    select
        courantes.territoire,
        courantes.annee,
        courantes.dossier,
        anciennes.dossier as dossier_ancien,
        anciennes.date_bilan,
        anciennes.marqueur_rang,
        anciennes.marqueur_egalite,
        anciennes.echelle_marqueur
    from actions_cles as courantes
    inner join actions_cles as anciennes
        on
            courantes.territoire = anciennes.territoire
            and courantes.annee - 1 = anciennes.annee
            and courantes.porteur_cle = anciennes.porteur_cle
            and courantes.intitule_cle = anciennes.intitule_cle
    where (courantes.dossier_base = anciennes.dossier_base) is not true

),

precedentes as (

    select
        territoire,
        annee,
        dossier,
        string_agg(distinct dossier_ancien, ', ' order by dossier_ancien)
            as dossier_precedent,
        max(date_bilan) as date_bilan_precedent,
        max(marqueur_rang) as marqueur_rang_precedent,
        arg_max(marqueur_egalite, marqueur_rang) as marqueur_precedent,
        max(echelle_marqueur) as echelle_marqueur_precedente
    from paires_precedentes
    group by territoire, annee, dossier

),

-- The programmation years loaded per territory, and whether a date column is filled on at least
-- one action of the year (else the files of that year do not carry it).
annees_chargees as (

    select
        territoire,
        annee,
        count(date_demande_report) > 0 as date_demande_report_chargee
    from actions
    group by territoire, annee

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
        actions.annee,
        actions.statut_categorie,
        precedentes.dossier_precedent,
        precedentes.date_bilan_precedent,
        precedentes.marqueur_rang_precedent,
        precedentes.marqueur_precedent,
        precedentes.echelle_marqueur_precedente,
        annee_precedente.annee is not null as programmation_precedente_chargee,
        coalesce(annee_courante.date_demande_report_chargee, false)
            as date_demande_report_chargee
    from regles
    inner join actions
        on
            regles.territoire = actions.territoire
            and actions.annee >= regles.annee_debut
            and actions.annee <= coalesce(regles.annee_fin, actions.annee)
    left join precedentes
        on
            actions.territoire = precedentes.territoire
            and actions.annee = precedentes.annee
            and actions.dossier = precedentes.dossier
    left join annees_chargees as annee_courante
        on
            actions.territoire = annee_courante.territoire
            and actions.annee = annee_courante.annee
    left join annees_chargees as annee_precedente
        on
            actions.territoire = annee_precedente.territoire
            and actions.annee - 1 = annee_precedente.annee
    where
        -- the years rebuilt (actions holds the year before them too, for the previous actions)
        {{ annees_reconstruites('actions.annee') }}
        and (regles.condition_statut is null or regles.condition_statut = actions.statut_code)
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
        applicables.annee,
        applicables.dossier,
        financeurs.financeur,
        financeurs.montant_demande,
        financeurs.montant_accorde,
        (applicables.financeur is null or applicables.financeur = financeurs.financeur)
        and (
            applicables.condition_nature is null
            or {{ normalise_libelle('applicables.condition_nature') }}
            = {{ normalise_libelle('financeurs.nature_subvention') }}
        ) as retenu,
        -- droit commun of the same institution as the rule's financeur (Région droit commun
        -- for a rule on the Région's crédits spécifiques)
        coalesce(
            financeur_ligne.type_credit = 'droit_commun'
            and financeur_ligne.institution = financeur_regle.institution
            and financeurs.financeur <> applicables.financeur,
            false
        ) as droit_commun_meme_financeur
    from applicables
    left join financeurs
        on
            applicables.territoire = financeurs.territoire
            and applicables.annee = financeurs.annee
            and applicables.dossier = financeurs.dossier
    left join financeurs_ref as financeur_ligne
        on financeurs.financeur = financeur_ligne.financeur
    left join financeurs_ref as financeur_regle
        on applicables.financeur = financeur_regle.financeur

),

-- One row per rule x action: the action's key is its year and its dossier (a dossier number
-- may come back the next year under a rule of several years: its amounts stay apart).
montants as (

    select
        regle_cle,
        annee,
        dossier,
        count(financeur) filter (where retenu) as nb_lignes_financeur,
        sum(montant_demande) filter (where retenu) as montant_demande,
        sum(montant_accorde) filter (where retenu) as montant_accorde,
        coalesce(sum(montant_accorde) filter (where droit_commun_meme_financeur), 0)
            as montant_droit_commun
    from candidats
    group by regle_cle, annee, dossier

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
            -- a project carried on from the previous year: found there, or a reconduction
            when applicables.controle in ('bilan_annee_precedente', 'marqueur_annee_precedente')
                then
                    applicables.dossier_precedent is not null
                    or applicables.statut_categorie like 'reconduite%'
            -- a request for prorogation concerns an action ending after 31/12 of its year
            when applicables.controle = 'date_demande_prorogation'
                then
                    applicables.date_fin_action > make_date(applicables.annee, 12, 31)
                    and (applicables.financeur is null or montants.nb_lignes_financeur > 0)
            when applicables.controle = 'montant_droit_commun_meme_financeur'
                then coalesce(montants.montant_demande, 0) > 0
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
            when 'marqueur_annee_precedente' then applicables.marqueur_rang_precedent
            when 'montant_droit_commun_meme_financeur' then montants.montant_droit_commun
        end as valeur_nombre,
        case applicables.controle
            when 'date_bilan' then applicables.date_bilan
            when 'date_bilan_intermediaire' then applicables.date_bilan_intermediaire
            when 'date_fin_action' then applicables.date_fin_action
            when 'date_demande_report' then applicables.date_demande_report
            when 'date_demande_prorogation' then applicables.date_demande_report
            when 'bilan_annee_precedente'
                then
                    case
                        when applicables.valeur = 'provisoire_ou_final'
                            then
                                coalesce(
                                    applicables.date_bilan_precedent,
                                    applicables.date_bilan_intermediaire
                                )
                        else applicables.date_bilan_precedent
                    end
        end as valeur_date,
        case
            when applicables.controle = 'niveau_marqueur' then seuil_marqueur.rang
            when applicables.controle = 'marqueur_annee_precedente'
                then seuil_marqueur_precedent.rang
            else applicables.seuil_nombre
        end as seuil_comparable,
        case
            when applicables.unite = 'date_n'
                then make_date(applicables.annee, applicables.seuil_mois, applicables.seuil_jour)
            else
                coalesce(
                    applicables.seuil_date,
                    make_date(
                        applicables.annee + 1, applicables.seuil_mois, applicables.seuil_jour
                    )
                )
        end as echeance,
        case
            when
                applicables.controle in ('bilan_annee_precedente', 'marqueur_annee_precedente')
                and not applicables.programmation_precedente_chargee
                then 'programmation de l''année précédente non chargée'
            when
                applicables.controle in ('bilan_annee_precedente', 'marqueur_annee_precedente')
                and applicables.dossier_precedent is null
                then
                    'action de l''année précédente non retrouvée (ni même dossier, ni même '
                    || 'porteur avec le même intitulé)'
            when
                applicables.controle = 'date_demande_prorogation'
                and not applicables.date_demande_report_chargee
                then 'date de demande de report absente des fichiers de l''année'
        end as motif_non_verifiable
    from applicables
    inner join montants
        on
            applicables.regle_cle = montants.regle_cle
            and applicables.annee = montants.annee
            and applicables.dossier = montants.dossier
    left join marqueurs as seuil_marqueur
        on
            applicables.territoire = seuil_marqueur.territoire
            and applicables.echelle_marqueur = seuil_marqueur.echelle
            and applicables.seuil_niveau = seuil_marqueur.niveau
    left join marqueurs as seuil_marqueur_precedent
        on
            applicables.territoire = seuil_marqueur_precedent.territoire
            and applicables.echelle_marqueur_precedente = seuil_marqueur_precedent.echelle
            and applicables.seuil_niveau = seuil_marqueur_precedent.niveau

),

evaluees as (

    select
        *,
        case
            when motif_non_verifiable is not null then 'non_verifiable'
            when controle = 'bilan_annee_precedente'
                then case when valeur_date is not null then 'conforme' else 'non_remis' end
            when controle = 'marqueur_annee_precedente'
                then
                    case
                        when valeur_nombre is null or seuil_comparable is null
                            then 'non_renseigne'
                        when valeur_nombre < seuil_comparable then 'a_examiner'
                        else 'conforme'
                    end
            -- an action prorogated without any request, in a year whose files carry the dates
            when controle = 'date_demande_prorogation' and valeur_date is null then 'infraction'
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

resultats as (

    select
        regle_cle,
        territoire,
        annee,
        dossier,
        financeur,
        controle,
        sens,
        unite,
        case
            when unite in ('date', 'date_n', 'date_n_plus_1') then cast(echeance as varchar)
            else valeur
        end as seuil,
        case
            when controle = 'niveau_marqueur' then marqueur_egalite
            when controle = 'marqueur_annee_precedente' then marqueur_precedent
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
        dossier_precedent,
        motif_non_verifiable,
        condition_statut,
        condition_rang,
        condition_nature,
        condition_quartier,
        tolerance
    from evaluees

),

final as (

    select
        resultats.regle_cle,
        resultats.territoire,
        resultats.annee,
        resultats.dossier,
        actions.intitule,
        actions.porteur_nom,
        descriptions.regle,
        resultats.financeur,
        resultats.controle,
        resultats.sens,
        resultats.unite,
        resultats.seuil,
        resultats.valeur_observee,
        resultats.valeur_nombre,
        resultats.valeur_date,
        resultats.seuil_nombre,
        resultats.echeance,
        resultats.ecart,
        resultats.resultat,
        resultats.en_infraction,
        resultats.dossier_precedent,
        resultats.motif_non_verifiable,
        resultats.condition_statut,
        resultats.condition_rang,
        resultats.condition_nature,
        resultats.condition_quartier,
        resultats.tolerance,
        descriptions.description,
        descriptions.source_seed,
        descriptions.source_libelle,
        descriptions.citation,
        actions.source_fichier
    from resultats
    inner join descriptions on resultats.regle_cle = descriptions.regle_cle
    inner join actions
        on
            resultats.territoire = actions.territoire
            and resultats.annee = actions.annee
            and resultats.dossier = actions.dossier

)

select * from final
