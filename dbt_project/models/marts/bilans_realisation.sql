-- Realisation of the actions by territory, year and orientation (level 1): actions financed in
-- the programmation, bilans received, actions realised / partially / not (with rates over the
-- bilans that answer), the main reasons given for non-realisation, planned vs actual
-- beneficiaries and results expected vs obtained (seed 004's bilan, seed 001's suivi).
with

actions as (

    select * from {{ ref('int_suivi__bilans_actions') }}

),

financees as (

    select
        territoire,
        annee,
        coalesce(orientation_n1_code, orientation_code, 'NON_RENSEIGNE') as orientation_code,
        any_value(
            coalesce(orientation_n1_libelle, orientation_libelle_referentiel, orientation_libelle)
        ) as orientation_libelle,
        count(distinct dossier) as nb_actions_financees
    from {{ ref('int_suivi__programmations') }}
    where montant_accorde > 0
    group by territoire, annee, coalesce(orientation_n1_code, orientation_code, 'NON_RENSEIGNE')

),

motifs as (

    select
        territoire,
        annee,
        orientation_code,
        motif_non_realisation as motif,
        count(*) as nb
    from actions
    where realisation in ('non', 'partiellement') and motif_non_realisation is not null
    group by territoire, annee, orientation_code, motif_non_realisation

),

motifs_principaux as (

    select
        territoire,
        annee,
        orientation_code,
        string_agg(motif || ' (' || nb || ')', ' ; ' order by nb desc, motif asc)
            as motifs_principaux
    from (
        select
            *,
            row_number() over (
                partition by territoire, annee, orientation_code order by nb desc, motif asc
            ) as rang
        from motifs
    )
    where rang <= 3
    group by territoire, annee, orientation_code

),

grouped as (

    select
        territoire,
        annee,
        orientation_code,
        any_value(orientation_libelle) as orientation_libelle,
        count(*) as nb_bilans,
        count(*) filter (where realisation = 'oui') as nb_realisees,
        count(*) filter (where realisation = 'partiellement') as nb_partiellement_realisees,
        count(*) filter (where realisation = 'non') as nb_non_realisees,
        count(*) filter (where realisation is null) as nb_realisation_non_renseignee,
        count(*) filter (where realisation_incoherente) as nb_realisation_incoherente,
        count(*) filter (where beneficiaires_prevus is not null) as nb_actions_avec_prevision,
        cast(coalesce(sum(beneficiaires_prevus), 0) as bigint) as beneficiaires_prevus,
        cast(
            coalesce(
                sum(beneficiaires_realises) filter (where beneficiaires_prevus is not null), 0
            ) as bigint
        ) as beneficiaires_realises_prevus,
        cast(coalesce(sum(beneficiaires_realises), 0) as bigint) as beneficiaires_realises,
        count(*) filter (
            where resultat_attendu is not null and resultat_obtenu is not null
        ) as nb_actions_avec_resultat,
        count(*) filter (where resultat_obtenu >= resultat_attendu) as nb_resultats_atteints
    from actions
    group by territoire, annee, orientation_code

),

joined as (

    select
        coalesce(grouped.territoire, financees.territoire) as territoire,
        coalesce(grouped.annee, financees.annee) as annee,
        coalesce(grouped.orientation_code, financees.orientation_code) as orientation_code,
        coalesce(grouped.orientation_libelle, financees.orientation_libelle)
            as orientation_libelle,
        coalesce(financees.nb_actions_financees, 0) as nb_actions_financees,
        coalesce(grouped.nb_bilans, 0) as nb_bilans,
        coalesce(grouped.nb_realisees, 0) as nb_realisees,
        coalesce(grouped.nb_partiellement_realisees, 0) as nb_partiellement_realisees,
        coalesce(grouped.nb_non_realisees, 0) as nb_non_realisees,
        coalesce(grouped.nb_realisation_non_renseignee, 0) as nb_realisation_non_renseignee,
        coalesce(grouped.nb_realisation_incoherente, 0) as nb_realisation_incoherente,
        motifs_principaux.motifs_principaux as motifs_non_realisation_principaux,
        coalesce(grouped.nb_actions_avec_prevision, 0) as nb_actions_avec_prevision,
        coalesce(grouped.beneficiaires_prevus, 0) as beneficiaires_prevus,
        coalesce(grouped.beneficiaires_realises_prevus, 0) as beneficiaires_realises_prevus,
        coalesce(grouped.beneficiaires_realises, 0) as beneficiaires_realises,
        coalesce(grouped.nb_actions_avec_resultat, 0) as nb_actions_avec_resultat,
        coalesce(grouped.nb_resultats_atteints, 0) as nb_resultats_atteints
    from grouped
    full outer join financees
        on
            grouped.territoire = financees.territoire
            and grouped.annee = financees.annee
            and grouped.orientation_code = financees.orientation_code
    left join motifs_principaux
        on
            grouped.territoire = motifs_principaux.territoire
            and grouped.annee = motifs_principaux.annee
            and grouped.orientation_code = motifs_principaux.orientation_code

)

select
    *,
    round(
        100.0 * nb_realisees
        / nullif(nb_realisees + nb_partiellement_realisees + nb_non_realisees, 0),
        1
    ) as taux_realisation,
    round(
        100.0 * nb_partiellement_realisees
        / nullif(nb_realisees + nb_partiellement_realisees + nb_non_realisees, 0),
        1
    ) as taux_realisation_partielle,
    round(
        100.0 * nb_non_realisees
        / nullif(nb_realisees + nb_partiellement_realisees + nb_non_realisees, 0),
        1
    ) as taux_non_realisation,
    round(100.0 * nb_bilans / nullif(nb_actions_financees, 0), 1) as taux_bilans_recus,
    round(100.0 * beneficiaires_realises_prevus / nullif(beneficiaires_prevus, 0), 1)
        as taux_atteinte_beneficiaires,
    round(100.0 * nb_resultats_atteints / nullif(nb_actions_avec_resultat, 0), 1)
        as taux_resultats_atteints
from joined
