{#
    Point-in-QPV: the single home of the assignment rule. Rendered by dbt, and with plain Jinja by
    geo/points.py (the asset raw/lieux, the benchmark tools/bench_geo.py): no dbt-only function here.

    Rule, per record:
    * statut 'coordonnees_invalides': a coordinate missing, not numeric, infinite, out of range
      (WGS84: |lon| > 180 or |lat| > 90; Lambert-93: outside the envelope below) or exactly
      (0, 0), the usual geocoder failure value; motif says which;
    * statut 'lon_lat_inverses': the coordinates only make sense swapped (WGS84: (lon, lat) in no
      French territory while (lat, lon) is; Lambert-93: x in the range of y and y in that of x).
      Not assigned: code_qpv and nb_qpv are NULL, code_qpv_apres_inversion gives the QPV found
      after swapping back, so that the source can be fixed;
    * otherwise 'dans_qpv' or 'hors_qpv'. A QPV is a closed set: a point on its boundary is in it
      (ST_Intersects, not ST_Contains). A point in several QPV (shared boundary, overlap) gets
      the smallest code_qpv; nb_qpv counts them (0 outside every QPV).
    Lambert-93 (EPSG:2154) input is transformed to WGS84 with ST_Transform (always_xy).

    How: one LEFT spatial join of the points to the polygons (DuckDB's SPATIAL_JOIN, an R-tree
    of the polygons' boxes then the exact ST_Intersects), streamed: memory does not grow with the
    number of points. A point can only be in two polygons inside the intersection of their
    bounding boxes ("zones"): the few points in a zone (found through the squares of 1/128
    degree meeting a zone, then the zones themselves) are assigned first (smallest code, count,
    keyed by their coordinates); the join keeps, for them, the row of the smallest code only.

    Parameters:
    * points: a relation or FROM item (read_parquet(...), a subquery in parentheses...);
    * lon, lat: the coordinate columns of points (SQL identifiers, quoted when needed), x / y in
      Lambert-93;
    * polygons: a relation with code_qpv (one row per code), geom (WGS84) and, unless geographie
      is none, geographie (e.g. ref('dim_qpv'));
    * geographie: the generation of the polygons used ('2024', '2015'; none: no filter);
    * crs: 'EPSG:4326' (longitude, latitude in degrees) or 'EPSG:2154' (Lambert-93 x, y);
    * texte: the coordinates are text (blanks, no-break spaces, decimal comma: '2,35' and
      '1.234,5' are read; a dot with a comma is a thousands separator);
    * details: also return motif, code_qpv_apres_inversion, lon_wgs84, lat_wgs84 (coordinates
      used, swapped back for 'lon_lat_inverses', NULL when invalid) and geographie_qpv;
    * colonnes: the columns of points to return (SQL identifiers), none for all of them.
    Returns: those columns, then statut, code_qpv, nb_qpv (and the details).

    Usage: select * from ({{ assign_qpv(ref('mes_points'), 'lon', 'lat', ref('dim_qpv')) }})
#}

{% macro assign_qpv_emprise_lambert93() -%}
    {#- Lambert-93 envelope of metropolitan France and Corsica, metres, with a margin:
        x min, y min, x max, y max. Also used to recognise a Lambert-93 file (geo/points.py). -#}
    0, 6000000, 1300000, 7200000
{%- endmacro %}

{% macro assign_qpv_nombre(expr, texte) -%}
    {%- if texte -%}
        {%- set t = "regexp_replace(trim(cast(" ~ expr ~ " as varchar)), '[\\s\\x{00A0}\\x{202F}]', '', 'g')" -%}
        try_cast(
            case when contains({{ t }}, ',') then replace(replace({{ t }}, '.', ''), ',', '.')
                else {{ t }} end as double
        )
    {%- else -%}
        cast({{ expr }} as double)
    {%- endif -%}
{%- endmacro %}

{% macro assign_qpv_carre(ix, iy) -%}
    ((cast({{ ix }} as bigint) + 32768) * 65536 + cast({{ iy }} as bigint) + 32768)
{%- endmacro %}

{% macro assign_qpv_dans(x, y, boites) -%}
    ({% for b in boites %}{% if not loop.first %} or {% endif -%}
        ({{ x }} between {{ b[0] }} and {{ b[2] }} and {{ y }} between {{ b[1] }} and {{ b[3] }})
    {%- endfor %})
{%- endmacro %}

{% macro assign_qpv(
    points, lon, lat, polygons, geographie='2024', crs='EPSG:4326', texte=false,
    details=false, colonnes=none
) %}
    {#- Generous envelopes of the French territories (lon min, lat min, lon max, lat max), used
        only to recognise swapped coordinates, never to reject a valid point. -#}
    {%- set metropole = [(-5.8, 41.0, 10.0, 51.6)] %}
    {%- set territoires = metropole + [
        (-61.9, 15.8, -60.9, 16.6),
        (-61.3, 14.3, -60.7, 15.0),
        (-54.7, 2.0, -51.5, 5.9),
        (55.1, -21.5, 56.0, -20.8),
        (44.9, -13.1, 45.4, -12.5),
        (-63.2, 17.8, -62.7, 18.2),
        (-56.5, 46.7, -56.0, 47.2),
        (163.5, -22.8, 168.2, -19.5),
        (-155.0, -28.0, -134.0, -7.0),
        (-178.3, -14.4, -176.0, -13.2),
    ] %}
    {#- metropole, Guadeloupe, Martinique, Guyane, La Réunion, Mayotte, Saint-Martin and
        Saint-Barthélemy, Saint-Pierre-et-Miquelon, Nouvelle-Calédonie, Polynésie, Wallis-et-Futuna -#}
    {%- set l93 = [assign_qpv_emprise_lambert93().split(',') | map('float') | list] %}
    {%- set absente = "_qpv_x is null or _qpv_y is null or isnan(_qpv_x) or isnan(_qpv_y)"
        ~ " or isinf(_qpv_x) or isinf(_qpv_y)" %}
    {%- if crs not in ('EPSG:4326', 'EPSG:2154') %}
    select error('assign_qpv : système de coordonnées non pris en charge : {{ crs }}')
    {%- else %}
    with

    _qpv_polygones as (
        select
            code_qpv,
            geom,
            st_xmin(geom) as _x0,
            st_ymin(geom) as _y0,
            st_xmax(geom) as _x1,
            st_ymax(geom) as _y1
        from {{ polygons }}
        where
            geom is not null
            {%- if geographie is not none %} and geographie = '{{ geographie }}'{% endif %}
    ),

    -- intersections of the bounding boxes of two QPV: the only places a point can be in both
    _qpv_zones as (
        select
            st_makeenvelope(x0, y0, x1, y1) as geom,
            x0,
            y0,
            x1,
            y1
        from (
            select
                greatest(a._x0, b._x0) as x0,
                greatest(a._y0, b._y0) as y0,
                least(a._x1, b._x1) as x1,
                least(a._y1, b._y1) as y1
            from _qpv_polygones as a
            inner join _qpv_polygones as b
                on
                    a.code_qpv < b.code_qpv
                    and a._x0 <= b._x1 and b._x0 <= a._x1
                    and a._y0 <= b._y1 and b._y0 <= a._y1
        )
    ),

    -- squares of 1/128 degree (about 870 m) meeting a zone: a quick first filter (a point
    -- x is in the square floor(x * 128), multiplying by 128 is exact)
    _qpv_carres as (
        select distinct {{ assign_qpv_carre('cx', 'cy') }} as carre
        from
            _qpv_zones,
            range(cast(floor(x0 * 128) as bigint), cast(floor(x1 * 128) as bigint) + 1) as rx (cx),
            range(cast(floor(y0 * 128) as bigint), cast(floor(y1 * 128) as bigint) + 1) as ry (cy)
    ),

    -- every record, checked (_qpv_etat 0: usable, 1: swapped, 2: invalid), with the WGS84
    -- coordinates to look up (swapped back when swapped, NULL when invalid); read twice
    _qpv_points as not materialized (
        select
            *,
            {%- if crs == 'EPSG:4326' %}
                case _qpv_etat when 0 then _qpv_x when 1 then _qpv_y end as _qpv_lon,
                case _qpv_etat when 0 then _qpv_y when 1 then _qpv_x end as _qpv_lat
            {%- else %}
                st_x(_qpv_p) as _qpv_lon,
                st_y(_qpv_p) as _qpv_lat
            {%- endif %}
        from (
            select
                *
                {%- if crs == 'EPSG:2154' %},
                    st_transform(
                        case _qpv_etat
                            when 0 then st_point(_qpv_x, _qpv_y)
                            when 1 then st_point(_qpv_y, _qpv_x)
                        end,
                        'EPSG:2154', 'EPSG:4326', always_xy := true
                    ) as _qpv_p
                {%- endif %}
            from (
                select
                    *,
                    {%- if crs == 'EPSG:4326' %}
                        case
                            when {{ assign_qpv_dans('_qpv_x', '_qpv_y', metropole) }} then 0
                            when {{ absente }} then 2
                            when {{ assign_qpv_dans('_qpv_x', '_qpv_y', territoires) }} then 0
                            when _qpv_x = 0 and _qpv_y = 0 then 2
                            when {{ assign_qpv_dans('_qpv_y', '_qpv_x', territoires) }} then 1
                            when abs(_qpv_x) > 180 or abs(_qpv_y) > 90 then 2
                            else 0
                        end as _qpv_etat
                    {%- else %}
                        case
                            when {{ assign_qpv_dans('_qpv_x', '_qpv_y', l93) }} then 0
                            when {{ absente }} then 2
                            when {{ assign_qpv_dans('_qpv_y', '_qpv_x', l93) }} then 1
                            else 2
                        end as _qpv_etat
                    {%- endif %}
                from (
                    select
                        *,
                        {{ assign_qpv_nombre('_qpv_xr', texte) }} as _qpv_x,
                        {{ assign_qpv_nombre('_qpv_yr', texte) }} as _qpv_y
                    from (
                        select
                            {%- if colonnes is none %}
                                _src.*,
                            {%- else %}
                                {%- for c in colonnes %}
                                    _src.{{ c }},
                                {%- endfor %}
                            {%- endif %}
                            _src.{{ lon }} as _qpv_xr,
                            _src.{{ lat }} as _qpv_yr
                        from {{ points }} as _src
                    )
                )
            )
        )
    ),

    -- the records in a zone: smallest code and number of QPV, by coordinates
    _qpv_ambigus as (
        select
            z._qpv_lon,
            z._qpv_lat,
            min(q.code_qpv) as _qpv_min,
            count(distinct q.code_qpv) as _qpv_n
        from (
            select distinct
                p._qpv_lon,
                p._qpv_lat
            from _qpv_points as p
            semi join _qpv_carres as c
                on c.carre = {{ assign_qpv_carre('floor(p._qpv_lon * 128)', 'floor(p._qpv_lat * 128)') }}
            inner join _qpv_zones as z
                on st_intersects(z.geom, st_point(p._qpv_lon, p._qpv_lat))
        ) as z
        inner join _qpv_polygones as q
            on st_intersects(q.geom, st_point(z._qpv_lon, z._qpv_lat))
        group by z._qpv_lon, z._qpv_lat
    ),

    _qpv_joints as (
        select
            p.*,
            q.code_qpv as _qpv_code
        from _qpv_points as p
        left join _qpv_polygones as q
            on st_intersects(q.geom, st_point(p._qpv_lon, p._qpv_lat))
    ),

    _qpv_resultats as (
        select
            j.*,
            case
                when a._qpv_n is not null then a._qpv_n
                when j._qpv_code is null then 0
                else 1
            end as _qpv_nb
        from _qpv_joints as j
        left join _qpv_ambigus as a
            on j._qpv_lon = a._qpv_lon and j._qpv_lat = a._qpv_lat
        where a._qpv_min is null or j._qpv_code = a._qpv_min
    )

    select
        * exclude (
            _qpv_xr, _qpv_yr, _qpv_x, _qpv_y, _qpv_etat, _qpv_lon, _qpv_lat, _qpv_code, _qpv_nb
            {%- if crs == 'EPSG:2154' %}, _qpv_p{% endif %}
        ),
        case _qpv_etat
            when 0 then case when _qpv_code is not null then 'dans_qpv' else 'hors_qpv' end
            when 1 then 'lon_lat_inverses'
            else 'coordonnees_invalides'
        end as statut,
        case when _qpv_etat = 0 then _qpv_code end as code_qpv,
        case when _qpv_etat = 0 then _qpv_nb end as nb_qpv
        {%- if details %},
            case
                when _qpv_etat = 0 then null
                when _qpv_etat = 1 then 'longitude et latitude (x et y) inversées'
                when
                    _qpv_xr is null or _qpv_yr is null
                    or trim(cast(_qpv_xr as varchar)) = '' or trim(cast(_qpv_yr as varchar)) = ''
                    then 'coordonnée absente'
                when {{ absente }} then 'coordonnée non numérique'
                when _qpv_x = 0 and _qpv_y = 0
                    then 'coordonnées (0, 0) : échec de géocodage probable'
                {%- if crs == 'EPSG:4326' %}
                    else 'hors des bornes en degrés (longitude -180..180, latitude -90..90)'
                {%- else %}
                    else 'hors de l''emprise du Lambert-93 (France métropolitaine)'
                {%- endif %}
            end as motif,
            case when _qpv_etat = 1 then _qpv_code end as code_qpv_apres_inversion,
            _qpv_lon as lon_wgs84,
            _qpv_lat as lat_wgs84,
            {%- if geographie is none %}
                cast(null as varchar) as geographie_qpv
            {%- else %}
                cast('{{ geographie }}' as varchar) as geographie_qpv
            {%- endif %}
        {%- endif %}
    from _qpv_resultats
    {%- endif %}
{% endmacro %}
