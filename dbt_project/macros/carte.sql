{#
  Shared body of the map marts (carte_taux_emploi, carte_effort_qpv). Expects the CTEs
  `contours` (territory contours of dim_qpv), `<periodes>` (territoire, <periode>,
  <geographie_periode>: the generation of the codes of that period) and `valeurs` (per contour
  and period: nb_propre, nb_sources, codes_sources, code_source, representation). A contour
  shows its own value, else the single linked one, else nothing with the reason; a territory's
  map draws the contours of the period's own generation when it has them, else the other one.
#}
{#
  Per contour and period, the values a contour can show: `source` is the CTE of the mapped
  values (code_qpv, territoire, <periode>); the contour's own code first, else the single
  linked one (int_qpv__liens_contours).
#}
{% macro carte_valeurs(periodes, periode, source) %}
    select
        contours.code_qpv,
        {{ periodes }}.{{ periode }},
        count(distinct {{ source }}.code_qpv) filter (where liens.propre) as nb_propre,
        count(distinct {{ source }}.code_qpv) as nb_sources,
        string_agg(distinct {{ source }}.code_qpv, ';' order by {{ source }}.code_qpv)
            as codes_sources,
        arg_min({{ source }}.code_qpv, case when liens.propre then 0 else 1 end) as code_source,
        arg_min(liens.representation, case when liens.propre then 0 else 1 end)
            as representation
    from contours
    inner join {{ periodes }} on contours.territoire = {{ periodes }}.territoire
    inner join liens on contours.code_qpv = liens.code_contour
    inner join {{ source }}
        on
            liens.code_source = {{ source }}.code_qpv
            and {{ periodes }}.territoire = {{ source }}.territoire
            and {{ periodes }}.{{ periode }} = {{ source }}.{{ periode }}
    group by contours.code_qpv, {{ periodes }}.{{ periode }}
{% endmacro %}

{% macro carte_lignes(periodes, periode, geographie_periode, code_valeur, sans_donnee) %}
    select
        contours.territoire,
        {{ periodes }}.{{ periode }},
        contours.code_qpv,
        contours.libelle_qpv,
        contours.geographie as geographie_contour,
        {{ periodes }}.{{ geographie_periode }},
        case
            when valeurs.nb_propre = 1 or valeurs.nb_sources = 1 then valeurs.code_source
        end as {{ code_valeur }},
        case
            when valeurs.nb_propre = 1 or valeurs.nb_sources = 1 then valeurs.representation
            when valeurs.nb_sources > 1
                then 'non représentable : plusieurs QPV liés (' || valeurs.codes_sources || ')'
            else '{{ sans_donnee }}'
        end as representation,
        exists(
            select 1 from contours as autres
            where
                autres.territoire = contours.territoire
                and autres.geographie = {{ periodes }}.{{ geographie_periode }}
        ) as territoire_a_contours_periode,
        contours.geom
    from contours
    inner join {{ periodes }} on contours.territoire = {{ periodes }}.territoire
    left join valeurs
        on
            contours.code_qpv = valeurs.code_qpv
            and {{ periodes }}.{{ periode }} = valeurs.{{ periode }}
{% endmacro %}

{% macro carte_contour_retenu(geographie_periode) %}
    case
        when lignes.territoire_a_contours_periode
            then lignes.geographie_contour = lignes.{{ geographie_periode }}
        else lignes.geographie_contour <> lignes.{{ geographie_periode }}
    end
{% endmacro %}
