-- Gender budgeting view: actions and amounts by level of the marqueur égalité femmes-hommes,
-- territory and year, on the scale the territory has in force that year (ref_marqueur_egalite
-- through int_suivi__actions, e.g. VM: 2019 scale 0/1/2 until 2025, 2026 scale 0/0+/1/2 since).
-- Only territory-years with a scale have rows: the marqueur is a territory's instrument, and a
-- marqueur typed in the programmation of a territory without one is not classified. Every level
-- of the scale has a row, even with no action; actions whose level is empty or not on the scale
-- go to niveau = 'NON_RENSEIGNE'. Where a funding rule of that year sets a minimum level
-- (ref_regles_financement, controle niveau_marqueur), niveau_eligible says which levels reach
-- it; without a minimum, niveau_minimum and niveau_eligible are NULL (nothing to say).
with

actions as (

    select * from {{ ref('int_suivi__actions') }}

),

marqueurs as (

    select
        territoire,
        echelle,
        niveau,
        rang,
        libelle
    from {{ ref('ref_marqueur_egalite') }}

),

regles as (

    select * from {{ ref('int_suivi__regles') }}
    where controle = 'niveau_marqueur'

),

annees as (

    select
        territoire,
        annee,
        any_value(echelle_marqueur) as echelle
    from actions
    where echelle_marqueur is not null
    group by territoire, annee

),

-- Every level of the year's scale, plus NON_RENSEIGNE when some actions have no level on it.
niveaux as (

    select
        annees.territoire,
        annees.annee,
        annees.echelle,
        marqueurs.niveau,
        marqueurs.rang,
        marqueurs.libelle
    from annees
    inner join marqueurs
        on
            annees.territoire = marqueurs.territoire
            and annees.echelle = marqueurs.echelle
    union all
    select distinct
        actions.territoire,
        actions.annee,
        actions.echelle_marqueur as echelle,
        'NON_RENSEIGNE' as niveau,
        cast(null as integer) as rang,
        'niveau non renseigné ou hors échelle' as libelle
    from actions
    where actions.echelle_marqueur is not null and actions.marqueur_rang is null

),

mesures as (

    select
        territoire,
        annee,
        coalesce(case when marqueur_rang is not null then marqueur_egalite end, 'NON_RENSEIGNE')
            as niveau,
        count(*) as nb_actions,
        count(*) filter (where montant_accorde > 0) as nb_actions_financees,
        cast(sum(montant_demande) as decimal(18, 2)) as montant_demande,
        cast(sum(montant_accorde) as decimal(18, 2)) as montant_accorde,
        cast(sum(montant_accorde_credits_specifiques) as decimal(18, 2))
            as montant_accorde_credits_specifiques
    from actions
    where echelle_marqueur is not null
    group by all

),

minimum as (

    select
        annees.territoire,
        annees.annee,
        max(marqueurs.rang) as rang_minimum,
        arg_max(marqueurs.niveau, marqueurs.rang) as niveau_minimum
    from annees
    inner join regles
        on
            annees.territoire = regles.territoire
            and annees.annee >= regles.annee_debut
            and annees.annee <= coalesce(regles.annee_fin, annees.annee)
    inner join marqueurs
        on
            annees.territoire = marqueurs.territoire
            and annees.echelle = marqueurs.echelle
            and regles.seuil_niveau = marqueurs.niveau
    group by annees.territoire, annees.annee

),

final as (

    select
        niveaux.territoire,
        niveaux.annee,
        niveaux.echelle,
        niveaux.niveau,
        niveaux.rang,
        niveaux.libelle,
        coalesce(mesures.nb_actions, 0) as nb_actions,
        coalesce(mesures.nb_actions_financees, 0) as nb_actions_financees,
        coalesce(mesures.montant_demande, 0) as montant_demande,
        coalesce(mesures.montant_accorde, 0) as montant_accorde,
        coalesce(mesures.montant_accorde_credits_specifiques, 0)
            as montant_accorde_credits_specifiques,
        round(
            coalesce(mesures.nb_actions, 0)
            / sum(coalesce(mesures.nb_actions, 0)) over (
                partition by niveaux.territoire, niveaux.annee
            ),
            4
        ) as part_actions,
        round(
            coalesce(mesures.montant_accorde, 0)
            / nullif(
                sum(coalesce(mesures.montant_accorde, 0)) over (
                    partition by niveaux.territoire, niveaux.annee
                ),
                0
            ),
            4
        ) as part_montant_accorde,
        minimum.niveau_minimum,
        case
            when minimum.rang_minimum is null then null
            when niveaux.rang is null then null
            else niveaux.rang >= minimum.rang_minimum
        end as niveau_eligible
    from niveaux
    left join mesures
        on
            niveaux.territoire = mesures.territoire
            and niveaux.annee = mesures.annee
            and niveaux.niveau = mesures.niveau
    left join minimum
        on
            niveaux.territoire = minimum.territoire
            and niveaux.annee = minimum.annee

)

select * from final
