-- Tableau de bord des objectifs: one row per territory x objective (objectifs.csv) x year. The
-- years of an objective: its annee_debut, its annee_cible and every year of programmation loaded
-- for the territory, kept between annee_debut and annee_cible when they are given. Observed
-- value: the objective's warehouse measure (int_objectifs__mesures) that year, for its
-- orientation when it names one. Status: 'non renseigné' without an observed value or without a
-- numeric target (motif says which); 'atteint' when the value reaches the target in the
-- objective's direction (au moins: valeur >= cible, au plus: valeur <= cible); otherwise
-- 'non atteint' from the target year on, 'en cours' before it (or without a target year).
with

objectifs as (

    select * from {{ ref('ref_objectifs') }}

),

mesures as (

    select * from {{ ref('int_objectifs__mesures') }}

),

annees_suivi as (

    select distinct
        territoire,
        annee
    from {{ ref('int_suivi__actions') }}

),

annees as (

    select
        objectifs.territoire,
        objectifs.code,
        annees_suivi.annee
    from objectifs
    inner join annees_suivi
        on
            objectifs.territoire = annees_suivi.territoire
            and annees_suivi.annee >= coalesce(objectifs.annee_debut, annees_suivi.annee)
            and annees_suivi.annee <= coalesce(objectifs.annee_cible, annees_suivi.annee)
    union
    select
        territoire,
        code,
        annee_debut as annee
    from objectifs
    where annee_debut is not null
    union
    select
        territoire,
        code,
        annee_cible as annee
    from objectifs
    where annee_cible is not null

),

observes as (

    select
        annees.annee,
        objectifs.*,
        mesures.valeur as valeur_observee,
        mesures.effectif_secret
    from annees
    inner join objectifs
        on
            annees.territoire = objectifs.territoire
            and annees.code = objectifs.code
    left join mesures
        on
            objectifs.territoire = mesures.territoire
            and annees.annee = mesures.annee
            and coalesce(objectifs.orientation_code, '*') = mesures.orientation_code
            and objectifs.mesure = mesures.mesure

),

final as (

    select
        territoire,
        code as code_objectif,
        libelle as libelle_objectif,
        priorite,
        annee,
        cible,
        unite,
        sens_libelle as sens,
        annee_cible,
        valeur_reference,
        annee_reference,
        mesure_libelle as mesure,
        orientation_code,
        valeur_observee,
        effectif_secret,
        cast(valeur_observee - cible as decimal(18, 2)) as ecart,
        case
            when valeur_observee is null or cible is null then 'non renseigné'
            when
                (sens = 'au_moins' and valeur_observee >= cible)
                or (sens = 'au_plus' and valeur_observee <= cible)
                then 'atteint'
            when annee >= annee_cible then 'non atteint'
            else 'en cours'
        end as statut,
        case
            when mesure is null then 'pas de mesure de l''entrepôt pour cet objectif'
            when valeur_observee is null
                then 'mesure sans valeur cette année (données non chargées)'
            when cible is null then 'pas de cible chiffrée'
        end as motif_non_renseigne,
        operateur,
        source_seed,
        source_libelle,
        citation,
        note
    from observes

)

select * from final
