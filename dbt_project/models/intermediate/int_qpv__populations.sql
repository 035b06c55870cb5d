-- Population of every QPV code (both generations) x millésime, with the method that gives it:
-- * 'publiee': the value published for that code (INSEE base of its own geography, 2015 `QP` or
--   2024 `QN` codes alike, else a local provider's table: int_indicateurs__qpv_valeurs);
-- * for a 2024 code with no published value that millésime, the populations of its 2015
--   predecessors carried through the 2015 <-> 2024 correspondence (int_qpv__passage_2015_2024),
--   each predecessor weighted by the share of it that went to this QPV:
--   - 'passage_un_pour_un': one predecessor, itself linked to this QPV only (weight 1); the 2015
--     perimeter's population, flagged;
--   - 'passage_fusion': several predecessors, each linked to this QPV only: their sum;
--   - 'estimation_surfacique': a predecessor split between several 2024 QPV: weight = area of the
--     2015 contour inside the 2024 contour / area of the 2015 contour when both contours are
--     loaded, else the 2024 QPV's share of the surface of the 2024 QPV the predecessor is linked
--     to (no 2015 contour). Flagged « estimation ».
--   A 2024 QPV gets a carried value only when every predecessor has a population that millésime
--   (and a weight); a QPV that entered the geography in 2024 (no predecessor) gets none.
-- Areas for the weights are ratios of areas of the WGS84 geometries within one QPV: the scale
-- distortion of the degrees is the same for both terms at that scale and cancels out.
with

publiees as (

    select
        code_qpv,
        millesime,
        valeur as population,
        source || ' ' || millesime || ' (' || variable || ')' as source_population
    from {{ ref('int_indicateurs__qpv_valeurs') }}
    where
        indicateur = 'pop_municipale'
        and valeur is not null

),

passage as (

    select * from {{ ref('int_qpv__passage_2015_2024') }}
    where code_qpv_2015 is not null and code_qpv_2024 is not null

),

contours as (

    select
        code_qpv,
        surface_km2,
        geom
    from {{ ref('stg_sig_ville__contours') }}

),

poids as (

    select
        passage.code_qpv_2015,
        passage.code_qpv_2024,
        passage.nb_qpv_2024_lies,
        case
            when passage.nb_qpv_2024_lies = 1 then 1.0
            when contour_2015.geom is not null and contour_2024.geom is not null
                then
                    st_area(st_intersection(contour_2015.geom, contour_2024.geom))
                    / nullif(st_area(contour_2015.geom), 0)
            else
                contour_2024.surface_km2
                / nullif(
                    sum(contour_2024.surface_km2) over (partition by passage.code_qpv_2015), 0
                )
        end as poids,
        passage.nb_qpv_2024_lies > 1 and contour_2015.geom is not null as poids_intersection
    from passage
    left join contours as contour_2015 on passage.code_qpv_2015 = contour_2015.code_qpv
    left join contours as contour_2024 on passage.code_qpv_2024 = contour_2024.code_qpv

),

millesimes as (

    select distinct millesime from publiees

),

liens_millesime as (

    select
        poids.*,
        millesimes.millesime,
        publiees.population as population_2015,
        publiees.source_population
    from poids
    cross join millesimes
    left join publiees
        on
            poids.code_qpv_2015 = publiees.code_qpv
            and millesimes.millesime = publiees.millesime

),

portees as (

    select
        code_qpv_2024 as code_qpv,
        millesime,
        sum(population_2015 * poids) as population,
        case
            when max(nb_qpv_2024_lies) > 1 then 'estimation_surfacique'
            when count(*) > 1 then 'passage_fusion'
            else 'passage_un_pour_un'
        end as methode_population,
        string_agg(
            code_qpv_2015
            || case
                when nb_qpv_2024_lies > 1
                    then
                        ' x ' || cast(round(poids, 3) as varchar)
                        || case
                            when poids_intersection then ' (part de son contour)'
                            else ' (part des surfaces 2024)'
                        end
                else ''
            end,
            ' + ' order by code_qpv_2015
        ) as codes_qpv_source,
        min(source_population) as source_population
    from liens_millesime
    group by code_qpv_2024, millesime
    having count(population_2015) = count(*) and count(poids) = count(*)

),

final as (

    select
        code_qpv,
        millesime,
        population,
        'publiee' as methode_population,
        false as population_estimee,
        code_qpv as codes_qpv_source,
        source_population
    from publiees
    union all
    select
        portees.code_qpv,
        portees.millesime,
        round(portees.population, 0) as population,
        portees.methode_population,
        portees.methode_population = 'estimation_surfacique' as population_estimee,
        portees.codes_qpv_source,
        portees.source_population
        || ' en géographie 2015, par la table de passage' as source_population
    from portees
    where not exists (
        select 1 from publiees
        where
            publiees.code_qpv = portees.code_qpv
            and publiees.millesime = portees.millesime
    )

)

select * from final
