-- Beneficiaries by territory, year and orientation, all places of residence together, by age
-- band and type of public: the sums of beneficiaires_age_public over qpv_residence, as
-- beneficiaires_genre_orientation sums beneficiaires_genre. part_pct: share of the
-- orientation's beneficiaries (beneficiaires_genre_orientation.total).
with

detail as (

    select * from {{ ref('beneficiaires_age_public') }}

),

grouped as (

    select
        territoire,
        annee,
        orientation_code,
        any_value(orientation_libelle) as orientation_libelle,
        dimension,
        modalite_code,
        modalite_libelle,
        bool_or(hors_referentiel) as hors_referentiel,
        cast(sum(effectif) as bigint) as effectif
    from detail
    group by
        territoire, annee, orientation_code, dimension, modalite_code, modalite_libelle

),

totals as (

    select
        territoire,
        annee,
        orientation_code,
        total
    from {{ ref('beneficiaires_genre_orientation') }}

)

select
    grouped.*,
    round(100.0 * grouped.effectif / nullif(totals.total, 0), 1) as part_pct,
    case grouped.modalite_code
        when 'moins_16' then 1
        when '16_25' then 2
        when '26_64' then 3
        when '65_plus' then 4
        when 'non_renseigne' then 6
        else 5
    end as ordre_modalite
from grouped
left join totals
    on
        grouped.territoire = totals.territoire
        and grouped.annee = totals.annee
        and grouped.orientation_code = totals.orientation_code
