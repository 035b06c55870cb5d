-- The result indicators the national instruction asks the annual meeting of each contrat de
-- ville to rest on (seed 004, annex 8, instruction of 4 January 2023 on the governance of the
-- contracts, part III), one row per territory x year x indicator. Years: every year of
-- programmation loaded for the territory. What the warehouse cannot compute (progress of the
-- urban renewal project, the social landlords' TFPB actions) is listed with statut
-- 'non renseigné' and valeur empty, so that the synthesis shows what is missing.
with

synthese as (

    select * from {{ ref('synthese_programmation') }}

),

mesures as (

    select * from {{ ref('int_objectifs__mesures') }}
    where orientation_code = '*'

),

objectifs as (

    select
        territoire,
        annee,
        count(*) as nb_objectifs,
        count(*) filter (where statut <> 'non renseigné') as nb_objectifs_suivis,
        count(*) filter (where statut = 'atteint') as nb_objectifs_atteints
    from {{ ref('tableau_bord_objectifs') }}
    group by territoire, annee

),

-- The share of each action assigned to the QPV covered by a zoning type that year, each QPV
-- once per type even when two zonings of the type cover it (two cités éducatives on one QPV).
qpv_par_type as (

    select distinct
        actions_qpv.territoire,
        actions_qpv.annee,
        actions_qpv.dossier,
        actions_qpv.code_qpv,
        actions_qpv.part_action,
        zonages_qpv.type_zonage
    from {{ ref('int_suivi__actions_qpv') }} as actions_qpv
    inner join {{ ref('int_zonages__qpv') }} as zonages_qpv
        on
            actions_qpv.territoire = zonages_qpv.territoire
            and actions_qpv.code_qpv = zonages_qpv.code_qpv
            and actions_qpv.annee >= coalesce(zonages_qpv.annee_debut, actions_qpv.annee)
            and actions_qpv.annee <= coalesce(zonages_qpv.annee_fin, actions_qpv.annee)

),

zonages as (

    select
        qpv_par_type.territoire,
        qpv_par_type.annee,
        sum(qpv_par_type.part_action * actions.montant_accorde) filter (
            where qpv_par_type.type_zonage = 'site_renouvellement_urbain'
        ) as montant_renouvellement_urbain,
        sum(qpv_par_type.part_action * actions.montant_accorde) filter (
            where qpv_par_type.type_zonage = 'cite_educative'
        ) as montant_cites_educatives,
        sum(qpv_par_type.part_action * actions.montant_accorde) filter (
            where qpv_par_type.type_zonage = 'cite_emploi'
        ) as montant_cites_emploi
    from qpv_par_type
    inner join {{ ref('int_suivi__actions') }} as actions
        on
            qpv_par_type.territoire = actions.territoire
            and qpv_par_type.annee = actions.annee
            and qpv_par_type.dossier = actions.dossier
    group by qpv_par_type.territoire, qpv_par_type.annee

),

territoires as (

    select
        synthese.territoire,
        synthese.annee,
        synthese.nb_actions,
        synthese.nb_qpv_concernes,
        synthese.montant_accorde_credits_specifiques,
        synthese.montant_accorde_droit_commun,
        beneficiaires.valeur as beneficiaires,
        beneficiaires.effectif_secret as effectif_beneficiaires,
        part_femmes.valeur as part_femmes_beneficiaires,
        part_femmes.effectif_secret as effectif_part_femmes,
        objectifs.nb_objectifs,
        objectifs.nb_objectifs_suivis,
        objectifs.nb_objectifs_atteints,
        zonages.montant_renouvellement_urbain,
        zonages.montant_cites_educatives,
        zonages.montant_cites_emploi
    from synthese
    left join mesures as beneficiaires
        on
            synthese.territoire = beneficiaires.territoire
            and synthese.annee = beneficiaires.annee
            and beneficiaires.mesure = 'beneficiaires'
    left join mesures as part_femmes
        on
            synthese.territoire = part_femmes.territoire
            and synthese.annee = part_femmes.annee
            and part_femmes.mesure = 'part_femmes_beneficiaires'
    left join objectifs
        on synthese.territoire = objectifs.territoire and synthese.annee = objectifs.annee
    left join zonages
        on synthese.territoire = zonages.territoire and synthese.annee = zonages.annee

),

-- rang, rubrique (annex 8), code, label, unit, value
lignes as (

    select
        territoires.territoire,
        territoires.annee,
        unnest([
            {
                'rang': 1, 'rubrique': 'Mise en œuvre du contrat', 'code': 'actions_programmees',
                'libelle': 'Actions programmées', 'unite': 'actions',
                'valeur': cast(territoires.nb_actions as decimal(18, 2)),
                'effectif': cast(null as bigint)
            },
            {
                'rang': 2, 'rubrique': 'Mise en œuvre du contrat', 'code': 'qpv_concernes',
                'libelle': 'QPV concernés par au moins une action', 'unite': 'QPV',
                'valeur': cast(territoires.nb_qpv_concernes as decimal(18, 2)),
                'effectif': cast(null as bigint)
            },
            {
                'rang': 3, 'rubrique': 'Mise en œuvre du contrat',
                'code': 'credits_specifiques',
                'libelle': 'Crédits spécifiques de la politique de la ville accordés',
                'unite': 'euros',
                'valeur': cast(territoires.montant_accorde_credits_specifiques as decimal(18, 2)),
                'effectif': cast(null as bigint)
            },
            {
                'rang': 4, 'rubrique': 'Dispositifs de droit commun mobilisés',
                'code': 'droit_commun',
                'libelle': 'Crédits de droit commun accordés aux actions de la programmation',
                'unite': 'euros',
                'valeur': cast(territoires.montant_accorde_droit_commun as decimal(18, 2)),
                'effectif': cast(null as bigint)
            },
            {
                'rang': 5, 'rubrique': 'Mise en œuvre du contrat', 'code': 'beneficiaires',
                'libelle': 'Bénéficiaires des actions (bilans)', 'unite': 'personnes',
                'valeur': cast(territoires.beneficiaires as decimal(18, 2)),
                'effectif': cast(territoires.effectif_beneficiaires as bigint)
            },
            {
                'rang': 6, 'rubrique': 'Mise en œuvre du contrat',
                'code': 'part_femmes_beneficiaires',
                'libelle': 'Part des femmes parmi les bénéficiaires (bilans)', 'unite': '%',
                'valeur': cast(territoires.part_femmes_beneficiaires as decimal(18, 2)),
                'effectif': cast(territoires.effectif_part_femmes as bigint)
            },
            {
                'rang': 7, 'rubrique': 'Indicateurs de résultats du contrat',
                'code': 'objectifs_suivis',
                'libelle': 'Objectifs du contrat observés dans l''entrepôt', 'unite': 'objectifs',
                'valeur': cast(territoires.nb_objectifs_suivis as decimal(18, 2)),
                'effectif': cast(null as bigint)
            },
            {
                'rang': 8, 'rubrique': 'Indicateurs de résultats du contrat',
                'code': 'objectifs_atteints',
                'libelle': 'Objectifs du contrat atteints', 'unite': 'objectifs',
                'valeur': cast(territoires.nb_objectifs_atteints as decimal(18, 2)),
                'effectif': cast(null as bigint)
            },
            {
                'rang': 9, 'rubrique': 'Renouvellement urbain',
                'code': 'montant_renouvellement_urbain',
                'libelle': 'Montant accordé aux actions des sites NPNRU/PNRU (part de leurs QPV)',
                'unite': 'euros',
                'valeur': cast(territoires.montant_renouvellement_urbain as decimal(18, 2)),
                'effectif': cast(null as bigint)
            },
            {
                'rang': 10, 'rubrique': 'Renouvellement urbain',
                'code': 'avancement_renouvellement_urbain',
                'libelle': 'Avancement contractuel, financier et opérationnel du projet '
                || 'de renouvellement urbain',
                'unite': 'revue de projet',
                'valeur': cast(null as decimal(18, 2)),
                'effectif': cast(null as bigint)
            },
            {
                'rang': 11, 'rubrique': 'Dispositifs de la politique de la ville',
                'code': 'montant_cites_educatives',
                'libelle': 'Montant accordé aux actions des cités éducatives (part de leurs QPV)',
                'unite': 'euros',
                'valeur': cast(territoires.montant_cites_educatives as decimal(18, 2)),
                'effectif': cast(null as bigint)
            },
            {
                'rang': 12, 'rubrique': 'Dispositifs de la politique de la ville',
                'code': 'montant_cites_emploi',
                'libelle': 'Montant accordé aux actions des cités de l''emploi (part de leurs QPV)',
                'unite': 'euros',
                'valeur': cast(territoires.montant_cites_emploi as decimal(18, 2)),
                'effectif': cast(null as bigint)
            },
            {
                'rang': 13, 'rubrique': 'Bailleurs sociaux',
                'code': 'actions_tfpb',
                'libelle': 'Actions de gestion urbaine de proximité en contrepartie '
                || 'de l''abattement de TFPB',
                'unite': 'actions',
                'valeur': cast(null as decimal(18, 2)),
                'effectif': cast(null as bigint)
            }
        ]) as ligne
    from territoires

),

colonnes as (

    select
        territoire,
        annee,
        struct_extract(ligne, 'rang') as rang,
        struct_extract(ligne, 'rubrique') as rubrique,
        struct_extract(ligne, 'code') as code,
        struct_extract(ligne, 'libelle') as libelle,
        struct_extract(ligne, 'unite') as unite,
        struct_extract(ligne, 'valeur') as valeur,
        struct_extract(ligne, 'effectif') as effectif_secret
    from lignes

)

select
    territoire,
    annee,
    rang,
    rubrique,
    code as code_indicateur,
    libelle as libelle_indicateur,
    unite,
    valeur,
    effectif_secret,
    case when valeur is null then 'non renseigné' else 'renseigné' end as statut,
    case
        when code in ('avancement_renouvellement_urbain', 'actions_tfpb')
            then
                'pas de donnée dans l''entrepôt (à saisir depuis la revue de projet '
                || 'ou le bilan des bailleurs)'
        when valeur is null then 'aucune donnée chargée pour ce territoire et cette année'
    end as motif_non_renseigne,
    'Instruction du 4 janvier 2023 relative à la gouvernance des contrats de ville, '
    || 'partie III (seed 004, annexe 8)' as source
from colonnes
