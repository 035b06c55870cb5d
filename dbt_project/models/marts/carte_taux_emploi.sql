-- Map layer of the taux d'emploi: one row per QPV contour of a territory x millésime of the
-- taux d'emploi, with the value to colour it by. The indicator is published in the geography of
-- its base (2015 codes for the INSEE bases 2021-2022) while the contours loaded may be of the
-- other generation (the demo has the 2024 contours only). A contour shows:
--   * its own value when its code has one ('contour du QPV');
--   * else the value of the single QPV of the other generation it is linked to by the 2015 <-> 2024
--     crosswalk ('QPV 2015 correspondant', periphery changed: the value is that of the old
--     perimeter), when the link is one-to-one;
--   * else nothing, with the reason (several QPV linked: a value per QPV cannot be drawn on one
--     contour; no linked QPV: new QPV without data).
-- contour_retenu says which contours a map of the territory draws: those of the indicator's own
-- geography when the territory has them, else those of the other generation, never both.
with

taux as (

    select * from {{ ref('taux_emploi_quartier') }}

),

contours as (

    select * from {{ ref('int_qpv__contours_territoire') }}

),

liens as (

    select * from {{ ref('int_qpv__liens_contours') }}

),

millesimes as (

    select distinct
        territoire,
        millesime,
        geographie as geographie_indicateur
    from taux

),

valeurs as (

    {{ carte_valeurs('millesimes', 'millesime', 'taux') }}

),

lignes as (

    {{ carte_lignes(
        'millesimes', 'millesime', 'geographie_indicateur', 'code_qpv_indicateur',
        'sans donnée : aucun QPV lié publié'
    ) }}

)

select
    lignes.territoire,
    lignes.millesime,
    lignes.code_qpv,
    lignes.libelle_qpv,
    lignes.geographie_contour,
    lignes.geographie_indicateur,
    lignes.code_qpv_indicateur,
    lignes.representation,
    taux.taux_emploi,
    taux.taux_emploi_femmes,
    taux.ecart_epci_points,
    taux.ecart_france_points,
    taux.secret_taux_emploi,
    {{ carte_contour_retenu('geographie_indicateur') }} as contour_retenu,
    lignes.geom
from lignes
left join taux
    on
        lignes.code_qpv_indicateur = taux.code_qpv
        and lignes.millesime = taux.millesime
