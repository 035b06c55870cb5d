-- Which QPV codes a contour can stand for on a map: one row per contour of dim_qpv (a territory's
-- QPV with a geometry) x code whose value it may show: its own code, and its partners of the
-- other generation in the 2015 <-> 2024 crosswalk. Map marts (carte_taux_emploi,
-- carte_effort_qpv) pick, per contour, its own value first, else the single linked one.
with

contours as (

    select * from {{ ref('int_qpv__contours_territoire') }}

),

passage as (

    select * from {{ ref('int_qpv__passage_2015_2024') }}

),

liens as (

    select
        code_qpv as code_contour,
        code_qpv as code_source,
        'contour du QPV' as representation
    from contours
    union all
    select
        passage.code_qpv_2024 as code_contour,
        passage.code_qpv_2015 as code_source,
        'QPV 2015 correspondant' as representation
    from passage
    union all
    select
        passage.code_qpv_2015 as code_contour,
        passage.code_qpv_2024 as code_source,
        'QPV 2024 correspondant' as representation
    from passage

)

select distinct
    contours.territoire,
    contours.code_qpv as code_contour,
    contours.libelle_qpv as libelle_contour,
    contours.geographie as geographie_contour,
    liens.code_source,
    liens.representation,
    liens.representation = 'contour du QPV' as propre
from contours
inner join liens on contours.code_qpv = liens.code_contour
where liens.code_source is not null
