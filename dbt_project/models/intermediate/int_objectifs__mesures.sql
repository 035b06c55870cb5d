-- The warehouse measures a contract objective can be observed with (objectifs.csv, column
-- mesure): one row per territory x year x orientation x measure, orientation_code '*' for the
-- whole programmation, else the level-1 orientation of the territory's hierarchy. Counts of
-- actions and amounts from the programmations (int_suivi__actions, euros), beneficiaries from
-- the bilans (beneficiaires_genre), shares in % (0-100). The list of measures is the reader's
-- MESURES (pipelines/sources/territoires/reader.py).
with

actions as (

    select * from {{ ref('int_suivi__actions') }}

),

orientations as (

    select
        territoire,
        annee,
        dossier,
        any_value(coalesce(orientation_n1_code, orientation_code)) as orientation_code
    from {{ ref('int_suivi__programmations') }}
    group by territoire, annee, dossier

),

qpv as (

    select
        territoire,
        annee,
        dossier,
        code_qpv
    from {{ ref('int_suivi__actions_qpv') }}
    where code_qpv <> 'SANS_QPV'

),

actions_orientees as (

    select
        actions.*,
        coalesce(orientations.orientation_code, 'NON_RENSEIGNE') as orientation_n1
    from actions
    left join orientations
        on
            actions.territoire = orientations.territoire
            and actions.annee = orientations.annee
            and actions.dossier = orientations.dossier

),

-- each action twice: under its orientation and under '*' (the whole programmation)
actions_deux_fois as (

    select
        *,
        orientation_n1 as orientation_code_mesure
    from actions_orientees
    union all
    select
        *,
        '*' as orientation_code_mesure
    from actions_orientees

),

programmation as (

    select
        territoire,
        annee,
        orientation_code_mesure as orientation_code,
        cast(count(*) as double) as nb_actions,
        cast(count(*) filter (where montant_accorde > 0) as double) as nb_actions_financees,
        cast(count(distinct coalesce(porteur_siren, lower(trim(porteur_nom)))) as double)
            as nb_porteurs,
        cast(sum(montant_accorde) as double) as montant_accorde,
        cast(sum(montant_accorde_credits_specifiques) as double)
            as montant_accorde_credits_specifiques,
        cast(sum(montant_accorde_droit_commun) as double) as montant_accorde_droit_commun,
        100.0 * count(*) filter (where cpo) / nullif(count(cpo), 0) as part_actions_cpo
    from actions_deux_fois
    group by territoire, annee, orientation_code_mesure

),

qpv_concernes as (

    select
        qpv.territoire,
        qpv.annee,
        actions_deux_fois.orientation_code_mesure as orientation_code,
        cast(count(distinct qpv.code_qpv) as double) as nb_qpv_concernes
    from qpv
    inner join actions_deux_fois
        on
            qpv.territoire = actions_deux_fois.territoire
            and qpv.annee = actions_deux_fois.annee
            and qpv.dossier = actions_deux_fois.dossier
    group by qpv.territoire, qpv.annee, actions_deux_fois.orientation_code_mesure

),

beneficiaires_deux_fois as (

    select
        territoire,
        annee,
        orientation_code,
        total,
        femmes,
        hommes
    from {{ ref('beneficiaires_genre') }}
    union all
    select
        territoire,
        annee,
        '*' as orientation_code,
        total,
        femmes,
        hommes
    from {{ ref('beneficiaires_genre') }}

),

beneficiaires as (

    select
        territoire,
        annee,
        orientation_code,
        cast(sum(total) as double) as beneficiaires,
        cast(sum(femmes) as double) as beneficiaires_femmes,
        100.0 * sum(femmes) / nullif(sum(femmes) + sum(hommes), 0) as part_femmes_beneficiaires
    from beneficiaires_deux_fois
    group by territoire, annee, orientation_code

),

longues as (

    unpivot programmation
    on nb_actions, nb_actions_financees, nb_porteurs, montant_accorde,
    montant_accorde_credits_specifiques, montant_accorde_droit_commun, part_actions_cpo
    into name mesure value valeur
    union all by name
    unpivot qpv_concernes
    on nb_qpv_concernes
    into name mesure value valeur
    union all by name
    unpivot beneficiaires
    on beneficiaires, beneficiaires_femmes, part_femmes_beneficiaires
    into name mesure value valeur

),

effectifs as (

    select
        territoire,
        annee,
        orientation_code,
        sum(total) as total,
        sum(femmes) as femmes,
        least(sum(femmes), sum(hommes)) as plus_petit_sexe
    from beneficiaires_deux_fois
    group by territoire, annee, orientation_code

)

select
    longues.territoire,
    longues.annee,
    longues.orientation_code,
    longues.mesure,
    cast(round(longues.valeur, 2) as decimal(18, 2)) as valeur,
    case longues.mesure
        when 'beneficiaires' then effectifs.total
        when 'beneficiaires_femmes' then effectifs.femmes
        when 'part_femmes_beneficiaires' then effectifs.plus_petit_sexe
    end as effectif_secret
from longues
left join effectifs
    on
        longues.territoire = effectifs.territoire
        and longues.annee = effectifs.annee
        and longues.orientation_code = effectifs.orientation_code
where longues.valeur is not null
