-- Map layer of the effort financier: one row per QPV contour of a territory x programmation
-- year, with the amounts of effort_financier_qpv to colour it by. The programmation names QPV in
-- the geography in force that year (2015 codes until 2023, 2024 codes after) while the contours
-- loaded may be of the other generation. As in carte_taux_emploi (int_qpv__liens_contours), a
-- contour shows its own QPV's figures, else those of the single QPV of the other generation it is
-- linked to, else nothing with the reason. contour_retenu: the contours a map of the territory
-- draws for that year, one generation only.
with

effort as (

    select * from {{ ref('effort_financier_qpv') }}
    where code_qpv <> 'SANS_QPV'

),

contours as (

    select * from {{ ref('int_qpv__contours_territoire') }}

),

liens as (

    select * from {{ ref('int_qpv__liens_contours') }}

),

annees as (

    select
        territoire,
        annee,
        -- the generation of the year's QPV codes (a programmation uses one)
        mode(geographie) as geographie_programmation
    from effort
    group by territoire, annee

),

valeurs as (

    {{ carte_valeurs('annees', 'annee', 'effort') }}

),

lignes as (

    {{ carte_lignes(
        'annees', 'annee', 'geographie_programmation', 'code_qpv_effort',
        'sans donnée : aucune action sur ce QPV ou un QPV lié'
    ) }}

)

select
    lignes.territoire,
    lignes.annee,
    lignes.code_qpv,
    lignes.libelle_qpv,
    lignes.geographie_contour,
    lignes.geographie_programmation,
    lignes.code_qpv_effort,
    lignes.representation,
    effort.montant_accorde,
    effort.montant_accorde_credits_specifiques,
    effort.population,
    effort.methode_population,
    effort.euros_par_habitant,
    effort.repartition_egale,
    {{ carte_contour_retenu('geographie_programmation') }} as contour_retenu,
    lignes.geom
from lignes
left join effort
    on
        lignes.code_qpv_effort = effort.code_qpv
        and lignes.territoire = effort.territoire
        and lignes.annee = effort.annee
