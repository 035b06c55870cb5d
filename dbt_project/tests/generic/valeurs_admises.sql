{#-
    Columns whose values must belong to a closed list, checked in one scan of the model: one dbt
    node per model instead of one `accepted_values` node per column (dbt spends ~0.1 s per node
    whatever the volume). `valeurs` maps each column to its admitted values: strings compared as
    text, numbers and booleans as they are. NULL passes, as with `accepted_values`.
    A failure returns one row per column and value outside its list, with how many rows.
-#}
{% test valeurs_admises(model, valeurs) %}

{%- for colonne, admises in valeurs.items() %}
select
    '{{ colonne }}' as colonne,
    cast({{ adapter.quote(colonne) }} as varchar) as valeur,
    count(*) as lignes
from {{ model }}
where {{ adapter.quote(colonne) }} not in (
    {%- for valeur in admises %}
    {%- if valeur is string %}
    '{{ valeur | replace("'", "''") }}'
    {%- elif valeur is sameas true or valeur is sameas false %}
    {{ valeur | string | lower }}
    {%- else %}
    {{ valeur }}
    {%- endif %}
    {{- "," if not loop.last }}
    {%- endfor %}
)
group by all
{{ "union all" if not loop.last }}
{%- endfor %}

{% endtest %}
