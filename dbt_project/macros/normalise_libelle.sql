{#- Lower case, no accents, punctuation as single spaces: labels compare whatever their typing. -#}
{% macro normalise_libelle(expr) -%}
    trim(regexp_replace(lower(strip_accents(coalesce({{ expr }}, ''))), '[^a-z0-9]+', ' ', 'g'))
{%- endmacro %}
