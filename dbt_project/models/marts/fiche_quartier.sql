-- One row per QPV x millésime with the key indicators of each theme, as published (NULL under
-- secret or when no loaded file publishes it), taken from int_indicateurs__qpv_valeurs (one value
-- per indicator whatever the file: INSEE before local providers). The list below is the fiche:
-- each column is a dictionary indicator (ref_indicateurs) and its YAML says libellé and unit.
-- Beside the published pop_municipale, `population` and `methode_population` give the QPV's
-- population of the millésime from int_qpv__populations: the published one, else (a 2024 code
-- with values from another file, e.g. a local provider) the one carried from its 2015
-- predecessors through the crosswalk, with its method.
{% set fiche = [
    'pop_municipale', 'part_femmes', 'part_etrangers', 'part_60_plus', 'part_75_plus',
    'part_menages_1_personne', 'part_familles_monoparentales', 'indice_fragilite',
    'taux_emploi', 'taux_emploi_femmes', 'taux_emploi_etrangers', 'part_emplois_precaires',
    'part_emplois_precaires_femmes',
    'demandeurs_emploi_abcde', 'demandeurs_emploi_abcde_femmes', 'demandeurs_emploi_abcde_hommes',
    'demandeurs_emploi_abc', 'demandeurs_emploi_abc_femmes', 'demandeurs_emploi_abc_hommes',
    'demandeurs_emploi_abc_rsa', 'demandeurs_emploi_abc_50_plus',
    'revenu_disponible_median_uc', 'revenu_declare_median_uc', 'taux_pauvrete_60',
    'part_prestations_sociales', 'part_menages_imposes', 'part_menages_bas_revenus',
    'allocataires_caf', 'personnes_couvertes_caf', 'allocataires_rsa',
    'allocataires_prime_activite', 'allocataires_aah', 'allocataires_caf_monoparents',
    'part_allocataires_dependants_50', 'beneficiaires_cnam', 'part_beneficiaires_c2s',
    'part_0_24', 'part_0_17', 'indice_jeunesse', 'demandeurs_emploi_abc_moins_25',
    'enfants_couverts_caf', 'allocataires_caf_jeunes_non_etudiants',
] %}
with

valeurs as (

    select * from {{ ref('int_indicateurs__qpv_valeurs') }}

),

fiche as (

    select unnest([
        {% for indicateur in fiche -%}
            '{{ indicateur }}'{{ ',' if not loop.last }}
        {% endfor %}
    ]) as indicateur

),

pivoted as (

    select
        valeurs.code_qpv,
        valeurs.millesime,
        max(valeurs.geographie) as geographie,
        {% for indicateur in fiche -%}
            max(valeurs.valeur) filter (
                where valeurs.indicateur = '{{ indicateur }}'
            ) as {{ indicateur }},
        {% endfor -%}
        -- C2S: one variable until 2021 (CC2S), two from 2022 (non participative + participative)
        coalesce(
            max(valeurs.valeur) filter (where valeurs.indicateur = 'beneficiaires_c2s'),
            max(valeurs.valeur) filter (
                where valeurs.indicateur = 'beneficiaires_c2s_non_participative'
            )
            + max(valeurs.valeur) filter (
                where valeurs.indicateur = 'beneficiaires_c2s_participative'
            )
        ) as beneficiaires_c2s,
        count(fiche.indicateur) filter (where not valeurs.secret) as nb_indicateurs_publies,
        count(fiche.indicateur) filter (where valeurs.secret) as nb_indicateurs_secrets,
        string_agg(distinct valeurs.source, ', ' order by valeurs.source) as sources
    from valeurs
    left join fiche on valeurs.indicateur = fiche.indicateur
    group by valeurs.code_qpv, valeurs.millesime

),

qpv as (

    select
        code_qpv,
        libelle_qpv,
        territoire,
        siren_epci,
        lib_epci,
        noms_communes
    from {{ ref('dim_qpv') }}

),

populations as (

    select * from {{ ref('int_qpv__populations') }}

),

final as (

    select
        pivoted.code_qpv,
        qpv.libelle_qpv,
        pivoted.geographie,
        qpv.territoire,
        qpv.siren_epci,
        qpv.lib_epci,
        qpv.noms_communes,
        pivoted.millesime,
        {% for indicateur in fiche -%}
            pivoted.{{ indicateur }},
        {% endfor -%}
        pivoted.beneficiaires_c2s,
        populations.population,
        populations.methode_population,
        pivoted.nb_indicateurs_publies,
        pivoted.nb_indicateurs_secrets,
        pivoted.sources
    from pivoted
    left join qpv on pivoted.code_qpv = qpv.code_qpv
    left join populations
        on
            pivoted.code_qpv = populations.code_qpv
            and pivoted.millesime = populations.millesime

)

select * from final
