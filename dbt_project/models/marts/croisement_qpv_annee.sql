-- Programmation x observation, one row per territory x programmation year x QPV (seed 002:
-- « croiser les réalités urbaines, sociales et économiques observées avec la réalité du
-- déploiement des financements »):
-- * every QPV of the territory's perimeter in the geography in force that year (rows with no
--   action say so: 0 action, 0 €), every other code the actions target, and 'SANS_QPV' for the
--   actions without a QPV code;
-- * amounts granted (and their split, number of actions, € per inhabitant) from
--   effort_financier_qpv, requested amounts split with the same key (int_suivi__actions_qpv),
--   the main orientation and financeur from croisement_qpv_orientation_financeur;
-- * beneficiaries living in the QPV (bilans of the territory's actions of that year, by QPV of
--   residence; masked on publication, pipelines/publication/secret_statistique.csv);
-- * key indicators of the quartier (int_indicateurs__qpv_valeurs), latest millésime not after
--   the year, under the QPV's own code, else (a 2024 code without a value) under its single 2015
--   predecessor (one-to-one link of the crosswalk, flagged); each beside the EPCI's value
--   (int_references__valeurs: published of the same millésime first, else the latest published,
--   else a value quoted by the EPCI's own document) and the gap, computed only when both
--   millésimes are the same (comparabilite_* says otherwise).
{% set indicateurs = [
    'taux_emploi', 'taux_pauvrete_60', 'revenu_disponible_median_uc',
    'part_familles_monoparentales', 'part_beneficiaires_c2s', 'indice_fragilite',
] %}
with

actions as (

    select * from {{ ref('int_suivi__actions') }}

),

cibles as (

    select * from {{ ref('int_suivi__actions_qpv') }}

),

effort as (

    select * from {{ ref('effort_financier_qpv') }}

),

ventilation as (

    select * from {{ ref('croisement_qpv_orientation_financeur') }}

),

insee as (

    select * from {{ ref('int_suivi__qpv_insee') }}

),

perimetre as (

    select
        territoire,
        code_qpv,
        cast(geographie as varchar) as geographie,
        libelle_qpv
    from {{ ref('ref_perimetre_qpv') }}

),

territoires as (

    select
        territoire,
        siren
    from {{ ref('ref_territoires') }}

),

annees as (

    select distinct
        territoire,
        annee
    from actions

),

-- the geography in force: the latest generation started by the year (as int_suivi__actions_qpv)
geographie_annee as (

    select
        annees.territoire,
        annees.annee,
        max(perimetre.geographie) as geographie
    from annees
    inner join perimetre
        on
            annees.territoire = perimetre.territoire
            and try_cast(perimetre.geographie as integer) <= annees.annee
    group by annees.territoire, annees.annee

),

quartiers as (

    select
        geographie_annee.territoire,
        geographie_annee.annee,
        perimetre.code_qpv
    from geographie_annee
    inner join perimetre
        on
            geographie_annee.territoire = perimetre.territoire
            and geographie_annee.geographie = perimetre.geographie
    union
    select
        territoire,
        annee,
        code_qpv
    from effort

),

demandes as (

    select
        cibles.territoire,
        cibles.annee,
        cibles.code_qpv,
        sum(actions.montant_demande * cibles.part_action) as montant_demande
    from cibles
    inner join actions
        on
            cibles.territoire = actions.territoire
            and cibles.annee = actions.annee
            and cibles.dossier = actions.dossier
    group by cibles.territoire, cibles.annee, cibles.code_qpv

),

orientations as (

    select
        territoire,
        annee,
        code_qpv,
        orientation_code,
        any_value(orientation_libelle) as orientation_libelle,
        sum(montant_accorde) as montant_accorde
    from ventilation
    group by territoire, annee, code_qpv, orientation_code

),

orientation_principale as (

    select
        territoire,
        annee,
        code_qpv,
        arg_max(orientation_code, montant_accorde) as orientation_principale_code,
        arg_max(orientation_libelle, montant_accorde) as orientation_principale_libelle,
        max(montant_accorde) as orientation_principale_montant
    from orientations
    where montant_accorde > 0
    group by territoire, annee, code_qpv

),

financeurs as (

    select
        territoire,
        annee,
        code_qpv,
        financeur,
        any_value(financeur_nom) as financeur_nom,
        sum(montant_accorde) as montant_accorde
    from ventilation
    group by territoire, annee, code_qpv, financeur

),

financeur_principal as (

    select
        territoire,
        annee,
        code_qpv,
        arg_max(financeur_nom, montant_accorde) as financeur_principal,
        max(montant_accorde) as financeur_principal_montant
    from financeurs
    where montant_accorde > 0
    group by territoire, annee, code_qpv

),

beneficiaires as (

    select
        territoire,
        annee,
        qpv_residence as code_qpv,
        count(distinct dossier) as nb_actions_bilan,
        cast(coalesce(sum(femmes), 0) as bigint) as femmes,
        cast(coalesce(sum(hommes), 0) as bigint) as hommes,
        cast(coalesce(sum(sexe_non_renseigne), 0) as bigint) as sexe_non_renseigne
    from {{ ref('stg_suivi__bilans') }}
    group by territoire, annee, qpv_residence

),

valeurs as (

    select
        code_qpv,
        indicateur,
        millesime,
        valeur
    from {{ ref('int_indicateurs__qpv_valeurs') }}
    where
        indicateur in (
            {% for indicateur in indicateurs -%}
                '{{ indicateur }}'{{ ',' if not loop.last }}
            {% endfor %}
        )
        and valeur is not null

),

predecesseurs as (

    select
        code_qpv_2024,
        code_qpv_2015
    from {{ ref('int_qpv__passage_2015_2024') }}
    where type_lien = 'un_pour_un'

),

candidats as (

    select
        quartiers.territoire,
        quartiers.annee,
        quartiers.code_qpv,
        valeurs.indicateur,
        valeurs.valeur,
        valeurs.millesime,
        valeurs.code_qpv as code_qpv_valeur,
        0 as priorite
    from quartiers
    inner join valeurs
        on
            quartiers.code_qpv = valeurs.code_qpv
            and valeurs.millesime <= quartiers.annee
    union all
    select
        quartiers.territoire,
        quartiers.annee,
        quartiers.code_qpv,
        valeurs.indicateur,
        valeurs.valeur,
        valeurs.millesime,
        valeurs.code_qpv as code_qpv_valeur,
        1 as priorite
    from quartiers
    inner join predecesseurs on quartiers.code_qpv = predecesseurs.code_qpv_2024
    inner join valeurs
        on
            predecesseurs.code_qpv_2015 = valeurs.code_qpv
            and valeurs.millesime <= quartiers.annee

),

indicateurs_choisis as (

    select * from candidats
    qualify row_number() over (
        partition by territoire, annee, code_qpv, indicateur
        order by priorite asc, millesime desc
    ) = 1

),

refs as (

    select * from {{ ref('int_references__valeurs') }}
    where territoire_type = 'epci'

),

references_candidates as (

    select
        choisis.territoire,
        choisis.annee,
        choisis.code_qpv,
        choisis.indicateur,
        refs.valeur,
        refs.millesime,
        refs.source,
        refs.nature,
        case
            when refs.millesime = choisis.millesime then 'meme_millesime'
            when refs.millesime is not null then 'millesimes_differents'
            else 'millesime_reference_non_indique'
        end as comparabilite
    from indicateurs_choisis as choisis
    inner join territoires on choisis.territoire = territoires.territoire
    inner join refs
        on
            choisis.indicateur = refs.indicateur
            and refs.territoire_code in (territoires.territoire, territoires.siren)
            -- a quoted value only from the EPCI's own document
            and (refs.nature = 'publiee' or refs.siren_document = territoires.siren)
    qualify row_number() over (
        partition by choisis.territoire, choisis.annee, choisis.code_qpv, choisis.indicateur
        order by
            case
                when refs.nature = 'publiee' and refs.millesime = choisis.millesime then 0
                when refs.nature = 'publiee' then 1
                else 2
            end asc,
            refs.millesime desc nulls last,
            refs.source asc
    ) = 1

),

indicateurs_pivot as (

    select
        choisis.territoire,
        choisis.annee,
        choisis.code_qpv,
        {% for indicateur in indicateurs -%}
            max(choisis.valeur) filter (
                where choisis.indicateur = '{{ indicateur }}'
            ) as {{ indicateur }},
            max(choisis.millesime) filter (
                where choisis.indicateur = '{{ indicateur }}'
            ) as millesime_{{ indicateur }},
            max(reference.valeur) filter (
                where choisis.indicateur = '{{ indicateur }}'
            ) as {{ indicateur }}_epci,
            max(reference.millesime) filter (
                where choisis.indicateur = '{{ indicateur }}'
            ) as millesime_{{ indicateur }}_epci,
            max(reference.comparabilite) filter (
                where choisis.indicateur = '{{ indicateur }}'
            ) as comparabilite_{{ indicateur }}_epci,
        {% endfor -%}
        max(choisis.code_qpv_valeur) filter (where choisis.priorite = 1)
            as code_qpv_2015_indicateurs,
        string_agg(choisis.indicateur, ', ' order by choisis.indicateur) filter (
            where choisis.priorite = 1
        ) as indicateurs_geographie_2015,
        string_agg(distinct reference.source, ' ; ' order by reference.source)
            as sources_references_epci
    from indicateurs_choisis as choisis
    left join references_candidates as reference
        on
            choisis.territoire = reference.territoire
            and choisis.annee = reference.annee
            and choisis.code_qpv = reference.code_qpv
            and choisis.indicateur = reference.indicateur
    group by choisis.territoire, choisis.annee, choisis.code_qpv

),

final as (

    select
        quartiers.territoire,
        quartiers.annee,
        quartiers.code_qpv,
        case
            when quartiers.code_qpv = 'SANS_QPV'
                then
                    'Actions sans QPV identifié (quartier d''intérêt communautaire, '
                    || 'hors QPV ou non renseigné)'
            else coalesce(effort.libelle_qpv, perimetre.libelle_qpv)
        end as libelle_qpv,
        case
            when quartiers.code_qpv like 'QP%' then '2015'
            when quartiers.code_qpv like 'QN%' then '2024'
        end as geographie,
        coalesce(effort.nb_actions, 0) as nb_actions,
        coalesce(effort.nb_actions_financees, 0) as nb_actions_financees,
        cast(coalesce(demandes.montant_demande, 0) as decimal(18, 2)) as montant_demande,
        coalesce(effort.montant_accorde, 0) as montant_accorde,
        coalesce(effort.montant_accorde_credits_specifiques, 0)
            as montant_accorde_credits_specifiques,
        coalesce(effort.montant_accorde_droit_commun, 0) as montant_accorde_droit_commun,
        coalesce(effort.repartition_egale, false) as repartition_egale,
        orientation_principale.orientation_principale_code,
        orientation_principale.orientation_principale_libelle,
        cast(orientation_principale.orientation_principale_montant as decimal(18, 2))
            as orientation_principale_montant,
        financeur_principal.financeur_principal,
        cast(financeur_principal.financeur_principal_montant as decimal(18, 2))
            as financeur_principal_montant,
        insee.population,
        insee.millesime_population,
        insee.methode_population,
        round(coalesce(effort.montant_accorde, 0) / nullif(insee.population, 0), 2)
            as euros_par_habitant,
        round(
            coalesce(effort.montant_accorde_credits_specifiques, 0)
            / nullif(insee.population, 0),
            2
        ) as euros_par_habitant_credits_specifiques,
        case when quartiers.code_qpv <> 'SANS_QPV' then coalesce(beneficiaires.nb_actions_bilan, 0)
        end as nb_actions_bilan_residents,
        case when quartiers.code_qpv <> 'SANS_QPV' then coalesce(beneficiaires.femmes, 0)
        end as beneficiaires_femmes,
        case when quartiers.code_qpv <> 'SANS_QPV' then coalesce(beneficiaires.hommes, 0)
        end as beneficiaires_hommes,
        case
            when quartiers.code_qpv <> 'SANS_QPV'
                then coalesce(beneficiaires.sexe_non_renseigne, 0)
        end as beneficiaires_sexe_non_renseigne,
        case
            when quartiers.code_qpv <> 'SANS_QPV'
                then
                    coalesce(beneficiaires.femmes, 0)
                    + coalesce(beneficiaires.hommes, 0)
                    + coalesce(beneficiaires.sexe_non_renseigne, 0)
        end as beneficiaires,
        round(
            100.0 * beneficiaires.femmes
            / nullif(beneficiaires.femmes + beneficiaires.hommes, 0),
            1
        ) as part_femmes_beneficiaires,
        {% for indicateur in indicateurs -%}
            indicateurs_pivot.{{ indicateur }},
            indicateurs_pivot.millesime_{{ indicateur }},
            indicateurs_pivot.{{ indicateur }}_epci,
            indicateurs_pivot.millesime_{{ indicateur }}_epci,
            case
                when indicateurs_pivot.comparabilite_{{ indicateur }}_epci = 'meme_millesime'
                    then round(
                        indicateurs_pivot.{{ indicateur }}
                        - indicateurs_pivot.{{ indicateur }}_epci,
                        1
                    )
            end as ecart_{{ indicateur }}_epci,
            indicateurs_pivot.comparabilite_{{ indicateur }}_epci,
        {% endfor -%}
        indicateurs_pivot.code_qpv_2015_indicateurs,
        indicateurs_pivot.indicateurs_geographie_2015,
        indicateurs_pivot.sources_references_epci
    from quartiers
    left join effort
        on
            quartiers.territoire = effort.territoire
            and quartiers.annee = effort.annee
            and quartiers.code_qpv = effort.code_qpv
    left join perimetre
        on
            quartiers.territoire = perimetre.territoire
            and quartiers.code_qpv = perimetre.code_qpv
    left join demandes
        on
            quartiers.territoire = demandes.territoire
            and quartiers.annee = demandes.annee
            and quartiers.code_qpv = demandes.code_qpv
    left join orientation_principale
        on
            quartiers.territoire = orientation_principale.territoire
            and quartiers.annee = orientation_principale.annee
            and quartiers.code_qpv = orientation_principale.code_qpv
    left join financeur_principal
        on
            quartiers.territoire = financeur_principal.territoire
            and quartiers.annee = financeur_principal.annee
            and quartiers.code_qpv = financeur_principal.code_qpv
    left join insee
        on
            quartiers.annee = insee.annee
            and quartiers.code_qpv = insee.code_qpv
    left join beneficiaires
        on
            quartiers.territoire = beneficiaires.territoire
            and quartiers.annee = beneficiaires.annee
            and quartiers.code_qpv = beneficiaires.code_qpv
    left join indicateurs_pivot
        on
            quartiers.territoire = indicateurs_pivot.territoire
            and quartiers.annee = indicateurs_pivot.annee
            and quartiers.code_qpv = indicateurs_pivot.code_qpv

)

select * from final
