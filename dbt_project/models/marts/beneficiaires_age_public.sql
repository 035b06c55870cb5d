-- Beneficiaries by territory, year, orientation (level 1), QPV of residence (a QPV code,
-- HORS_QPV or NON_RENSEIGNE) and age band or type of public, as declared in the bilans
-- (stg_suivi__bilans_effectifs). Bands of the référentiel are grouped under their canonical
-- label; a band outside it is kept under its declared label (hors_referentiel). part_pct: share
-- of the cell's beneficiaries (by sex, as beneficiaires_genre.total).
with

effectifs as (

    select * from {{ ref('stg_suivi__bilans_effectifs') }}

),

actions as (

    select
        territoire,
        annee,
        dossier,
        orientation_code,
        orientation_libelle
    from {{ ref('int_suivi__bilans_actions') }}

),

joined as (

    select
        effectifs.*,
        actions.orientation_code,
        actions.orientation_libelle
    from effectifs
    inner join actions
        on
            effectifs.territoire = actions.territoire
            and effectifs.annee = actions.annee
            and effectifs.dossier = actions.dossier

),

grouped as (

    select
        territoire,
        annee,
        orientation_code,
        any_value(orientation_libelle) as orientation_libelle,
        qpv_residence,
        dimension,
        coalesce(modalite_code, 'HORS_REFERENTIEL') as modalite_code,
        modalite_libelle,
        bool_or(hors_referentiel) as hors_referentiel,
        count(distinct dossier) as nb_actions,
        cast(sum(effectif) as bigint) as effectif
    from joined
    group by
        territoire, annee, orientation_code, qpv_residence, dimension,
        coalesce(modalite_code, 'HORS_REFERENTIEL'), modalite_libelle

),

totals as (

    select
        territoire,
        annee,
        orientation_code,
        qpv_residence,
        total
    from {{ ref('beneficiaires_genre') }}

)

select
    grouped.*,
    round(100.0 * grouped.effectif / nullif(totals.total, 0), 1) as part_pct
from grouped
left join totals
    on
        grouped.territoire = totals.territoire
        and grouped.annee = totals.annee
        and grouped.orientation_code = totals.orientation_code
        and grouped.qpv_residence = totals.qpv_residence
