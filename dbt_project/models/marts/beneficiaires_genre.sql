-- Beneficiaries by territory, year, orientation and QPV of residence (a QPV code, HORS_QPV or
-- NON_RENSEIGNE), by sex. part_femmes = femmes / (femmes + hommes): people whose sex is not
-- stated are counted in the total but not in the share.
with

bilans as (

    select * from {{ ref('stg_suivi__bilans') }}

),

actions as (

    select
        territoire,
        annee,
        dossier,
        any_value(dossier_base) as dossier_base,
        any_value(orientation_code) as orientation_code,
        any_value(orientation_libelle_referentiel) as orientation_libelle_referentiel,
        any_value(orientation_libelle) as orientation_libelle
    from {{ ref('int_suivi__programmations') }}
    group by territoire, annee, dossier

),

joined as (

    select
        bilans.*,
        coalesce(actions.orientation_code, 'NON_RENSEIGNE') as orientation_code,
        coalesce(actions.orientation_libelle_referentiel, actions.orientation_libelle)
            as orientation_libelle
    from bilans
    left join actions
        on
            bilans.territoire = actions.territoire
            and bilans.annee = actions.annee
            and bilans.dossier = actions.dossier

),

grouped as (

    select
        territoire,
        annee,
        orientation_code,
        any_value(orientation_libelle) as orientation_libelle,
        qpv_residence,
        count(distinct dossier) as nb_actions,
        coalesce(sum(femmes), 0) as femmes,
        coalesce(sum(hommes), 0) as hommes,
        coalesce(sum(sexe_non_renseigne), 0) as sexe_non_renseigne
    from joined
    group by territoire, annee, orientation_code, qpv_residence

)

select
    territoire,
    annee,
    orientation_code,
    orientation_libelle,
    qpv_residence,
    nb_actions,
    femmes,
    hommes,
    sexe_non_renseigne,
    femmes + hommes + sexe_non_renseigne as total,
    round(100.0 * femmes / nullif(femmes + hommes, 0), 1) as part_femmes
from grouped
