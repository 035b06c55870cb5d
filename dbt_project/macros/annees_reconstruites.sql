{#-
    Models keyed by programmation year, rebuilt year by year.

    A build of some programmation years (observatoire build --annee N, the partitioned job
    suivi_par_annee) starts from a copy of the published warehouse and runs dbt with the
    environment variable OBSERVATOIRE_ANNEE_DEPUIS = N. A yearly model (materialized incremental)
    then deletes its rows of the years >= N (pre_hook supprimer_annees_reconstruites) and computes
    those years only (the filter annees_reconstruites on the yearly inputs): the years before N
    stay as they were published. The years after N are recomputed too, since a year may read the
    previous one (the previous year's action of a project in int_suivi__controles_actions).

    Everywhere else (a full build, a fresh warehouse, the tests, --full-refresh, which a build of
    some years passes when the published warehouse comes from another version of the project) the
    filter is "true" and the model is an ordinary table.

    An environment variable, not a dbt var: dbt re-parses the whole project (about 10 s) when the
    --vars change, and reads the variable here only once a model runs (is_incremental() is false
    while parsing), so the parse kept from the last build stays valid.
-#}
{% macro annees_reconstruites(colonne='annee', recul=0) -%}
    {#- this is none in a dbt unit test that does not set is_incremental -#}
    {%- if this is not none and is_incremental() and env_var('OBSERVATOIRE_ANNEE_DEPUIS', '') != '' -%}
        {{ colonne }} >= {{ (env_var('OBSERVATOIRE_ANNEE_DEPUIS') | int) - recul }}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{% macro supprimer_annees_reconstruites() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ annees_reconstruites() }}
    {%- endif -%}
{%- endmacro %}

{#-
    The one result of int_suivi__controles_actions that changes with the date alone: a document
    still awaited whose deadline has passed since (a_venir becomes non_remis). The years a build of
    some years keeps are brought to the build's date, as a full build would give them; on a table
    computed in full, nothing matches.
-#}
{% macro documents_echus(relation) -%}
    {%- set date_reference = var('date_reference', none) -%}
    update {{ relation }}
    set resultat = 'non_remis', en_infraction = true
    where
        resultat = 'a_venir'
        and echeance < {% if date_reference -%}
            cast('{{ date_reference }}' as date)
        {%- else -%}
            current_date
        {%- endif %}
{%- endmacro %}
