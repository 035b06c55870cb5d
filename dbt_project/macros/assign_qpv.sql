{#
    Point-in-QPV in SQL, for small relations inside dbt (the national-scale path is the Python
    asset raw/lieux, geo/points.py). Same rules: a point on a QPV boundary is in the QPV
    (ST_Intersects); a point in several QPV gets the smallest code and nb_qpv > 1; coordinates
    NULL, not finite, out of range or exactly (0, 0) give statut 'coordonnees_invalides'.
    Swapped coordinates are not detected here (use the Python path for raw files).

    points: a relation or subquery with an identifier and WGS84 longitude / latitude columns.
    polygons: a relation with code_qpv, geographie and geom (e.g. ref('dim_qpv')).
    Returns: every column of points, then statut, code_qpv, nb_qpv.

    Usage: select * from ({{ assign_qpv(ref('mes_points'), 'lon', 'lat', ref('dim_qpv')) }})
#}
{% macro assign_qpv(points, lon, lat, polygons, geographie='2024') %}
    with
    _pts as (
        select
            *,
            row_number() over () as _rang,
            try_cast({{ lon }} as double) as _lon,
            try_cast({{ lat }} as double) as _lat
        from {{ points }}
    ),
    _valides as (
        select
            *,
            _lon is not null and _lat is not null
            and isfinite(_lon) and isfinite(_lat)
            and abs(_lon) <= 180 and abs(_lat) <= 90
            and not (_lon = 0 and _lat = 0) as _ok
        from _pts
    ),
    _qpv as (
        select code_qpv, geom
        from {{ polygons }}
        where geom is not null and geographie = '{{ geographie }}'
    ),
    _hits as (
        select
            _valides._rang,
            min(_qpv.code_qpv) as _code,
            count(distinct _qpv.code_qpv) as _n
        from _valides
        inner join _qpv
            on st_intersects(_qpv.geom, st_point(_valides._lon, _valides._lat))
        where _valides._ok
        group by _valides._rang
    )
    select
        _valides.* exclude (_rang, _lon, _lat, _ok),
        case
            when not _valides._ok then 'coordonnees_invalides'
            when _hits._code is not null then 'dans_qpv'
            else 'hors_qpv'
        end as statut,
        _hits._code as code_qpv,
        case when _valides._ok then coalesce(_hits._n, 0) end as nb_qpv
    from _valides
    left join _hits on _valides._rang = _hits._rang
{% endmacro %}
