-- Every QPV with a contour has a valid geometry and a positive surface (computed in a projected
-- CRS at ingestion; a repair that collapses a polygon would give zero).
select
    code_qpv,
    surface_km2,
    st_isvalid(geom) as geometrie_valide
from {{ ref('dim_qpv') }}
where
    geom is not null
    and (
        surface_km2 is null
        or surface_km2 <= 0
        or not st_isvalid(geom)
    )
