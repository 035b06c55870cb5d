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
    grouped.territoire,
    grouped.annee,
    grouped.orientation_code,
    -- display order: canonical bands, bands outside the référentiel, age not given, publics,
    -- unknown values (the report orders its rows by its first columns)
    case
        when grouped.dimension = 'public' then 7
        when grouped.dimension = 'inconnue' then 8
        when grouped.modalite_code = 'moins_16' then 1
        when grouped.modalite_code = '16_25' then 2
        when grouped.modalite_code = '26_64' then 3
        when grouped.modalite_code = '65_plus' then 4
        when grouped.modalite_code = 'non_renseigne' then 6
        else 5
    end as ordre_modalite,
    grouped.modalite_libelle,
    grouped.orientation_libelle,
    grouped.dimension,
    grouped.modalite_code,
    grouped.hors_referentiel,
    grouped.effectif,
    round(100.0 * grouped.effectif / nullif(totals.total, 0), 1) as part_pct
from grouped
left join totals
    on
        grouped.territoire = totals.territoire
        and grouped.annee = totals.annee
        and grouped.orientation_code = totals.orientation_code
