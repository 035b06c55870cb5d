{#-
    Columns that must never be NULL, checked in one scan of the model: one dbt node per model
    instead of one `not_null` node per column (dbt spends ~0.1 s per node whatever the volume).
    A failure returns one row per column holding NULLs, with its name and how many rows.
-#}
{% test colonnes_renseignees(model, colonnes) %}

select
    colonne,
    lignes_nulles
from (
    select
        {%- for colonne in colonnes %}
        count(*) filter (where {{ adapter.quote(colonne) }} is null) as {{ adapter.quote(colonne) }}
        {{- "," if not loop.last }}
        {%- endfor %}
    from {{ model }}
) unpivot (
    lignes_nulles for colonne in (
        {%- for colonne in colonnes %}
        {{ adapter.quote(colonne) }}{{ "," if not loop.last }}
        {%- endfor %}
    )
)
where lignes_nulles > 0

{% endtest %}
