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

{#-
    The rows a data test reads (dbt calls this macro for the model of every generic test, and
    applies the test's `where` config in it, as dbt's own version does).

    In a build of some years, the years a yearly model keeps are the rows of the published
    warehouse, which passed every blocking test of that same version of the project when it was
    published (otherwise a build of some years runs with --full-refresh and the variable is not
    set). A blocking test that judges each row, or each year, on its own (colonnes_renseignees,
    valeurs_admises, not_null, accepted_values, and unique on a key holding the year) therefore
    gives the same answer when it reads only the rebuilt years; it reads only those. The
    documents falling due (documents_echus) change only `resultat` to 'non_remis' and
    `en_infraction` to true in the kept years, values these tests admit.
    Kept whole: warning-level tests (their count of rows is reported as a full build reports
    it), tests with a threshold on their count of failing rows, relationships (the other side
    may have changed), unique without the year, singular tests (tests/*.sql) and every test in
    a full build.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set annees = annees_testees() -%}
    {%- if where and annees -%}
        {%- set where = '(' ~ where ~ ') and ' ~ annees -%}
    {%- elif annees -%}
        {%- set where = annees -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{% macro annees_testees() -%}
    {#- not while parsing: the variable is read only when a test runs, the parse stays valid -#}
    {%- if not execute or env_var('OBSERVATOIRE_ANNEE_DEPUIS', '') == '' -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- set test = model.get('test_metadata') or {} -%}
    {%- set colonne = (test.get('kwargs') or {}).get('column_name') or '' -%}
    {%- set par_ligne = test.get('name') in [
        'colonnes_renseignees', 'valeurs_admises', 'not_null', 'accepted_values'
    ] -%}
    {%- set par_annee = test.get('name') == 'unique'
        and modules.re.search('\\bannee\\b', colonne) is not none -%}
    {%- set teste = graph.nodes.get(model.get('attached_node') or '') or {} -%}
    {%- set annuel = namespace(oui=false) -%}
    {#- the model's configuration as the graph holds it: its pre-hooks under dbt's own key -#}
    {%- for crochet in (teste.get('config') or {}).get('pre-hook') or [] -%}
        {%- if 'supprimer_annees_reconstruites' in (crochet.get('sql') or '') -%}
            {%- set annuel.oui = true -%}
        {%- endif -%}
    {%- endfor -%}
    {#- a threshold on the count of failing rows (error_if, fail_calc) would judge all years
        together: such a test reads the whole table -#}
    {%- if (par_ligne or par_annee) and annuel.oui
        and (config.get('severity') or 'error') | lower == 'error'
        and (config.get('error_if') or '!= 0') == '!= 0'
        and (config.get('fail_calc') or 'count(*)') == 'count(*)' -%}
        {%- do return('annee >= ' ~ (env_var('OBSERVATOIRE_ANNEE_DEPUIS') | int)) -%}
    {%- endif -%}
    {%- do return('') -%}
{%- endmacro %}
