-- One row per territory x programmation year: the headline figures of the suivi part of the
-- rapport annuel (actions, porteurs, QPV reached, amounts requested and granted, actions under a
-- convention pluriannuelle d'objectifs) and, where a rule of ref_regles_financement sets one, the
-- target share of actions under CPO in force that year (controle part_actions_cpo), and the
-- number of requests repeated with other amounts (only the last line counted). Amounts in euros,
-- DECIMAL(18, 2).
with

actions as (

    select * from {{ ref('int_suivi__actions') }}

),

actions_qpv as (

    select * from {{ ref('int_suivi__actions_qpv') }}

),

cibles_cpo as (

    select
        territoire,
        annee_debut,
        annee_fin,
        seuil_nombre as cible_part_actions_cpo,
        regle_cle
    from {{ ref('int_suivi__regles') }}
    where controle = 'part_actions_cpo'

),

par_annee as (

    select
        territoire,
        annee,
        count(*) as nb_actions,
        count(*) filter (where montant_accorde > 0) as nb_actions_financees,
        count(distinct coalesce(porteur_siren, lower(trim(porteur_nom)))) as nb_porteurs,
        count(*) filter (where cpo) as nb_actions_cpo,
        count(cpo) as nb_actions_cpo_renseigne,
        cast(sum(montant_demande) as decimal(18, 2)) as montant_demande,
        cast(sum(montant_accorde) as decimal(18, 2)) as montant_accorde,
        cast(sum(montant_accorde_credits_specifiques) as decimal(18, 2))
            as montant_accorde_credits_specifiques,
        cast(sum(montant_accorde_droit_commun) as decimal(18, 2)) as montant_accorde_droit_commun,
        cast(sum(cout_total) as decimal(18, 2)) as cout_total
    from actions
    group by territoire, annee

),

-- Requests repeated with other amounts: the reader kept the last line of the export and left the
-- others out (raw.anomalies, type demande_en_conflit); their number, for the report.
conflits as (

    select
        territoire,
        annee,
        count(*) as nb_demandes_en_conflit
    from {{ ref('stg_audit__anomalies') }}
    where type = 'demande_en_conflit'
    group by territoire, annee

),

qpv_par_annee as (

    select
        territoire,
        annee,
        count(distinct code_qpv) as nb_qpv_concernes
    from actions_qpv
    where code_qpv is not null
    group by territoire, annee

)

select
    par_annee.territoire,
    par_annee.annee,
    par_annee.nb_actions,
    par_annee.nb_actions_financees,
    par_annee.nb_porteurs,
    coalesce(qpv_par_annee.nb_qpv_concernes, 0) as nb_qpv_concernes,
    par_annee.montant_demande,
    par_annee.montant_accorde,
    par_annee.montant_accorde_credits_specifiques,
    par_annee.montant_accorde_droit_commun,
    par_annee.cout_total,
    par_annee.nb_actions_cpo,
    par_annee.nb_actions_cpo_renseigne,
    round(par_annee.nb_actions_cpo / nullif(par_annee.nb_actions_cpo_renseigne, 0), 6)
        as part_actions_cpo,
    cibles_cpo.cible_part_actions_cpo,
    cibles_cpo.regle_cle as regle_cible_cpo,
    coalesce(conflits.nb_demandes_en_conflit, 0) as nb_demandes_en_conflit
from par_annee
left join qpv_par_annee
    on
        par_annee.territoire = qpv_par_annee.territoire
        and par_annee.annee = qpv_par_annee.annee
left join conflits
    on
        par_annee.territoire = conflits.territoire
        and par_annee.annee = conflits.annee
left join cibles_cpo
    on
        par_annee.territoire = cibles_cpo.territoire
        and par_annee.annee >= cibles_cpo.annee_debut
        and par_annee.annee <= coalesce(cibles_cpo.annee_fin, par_annee.annee)
