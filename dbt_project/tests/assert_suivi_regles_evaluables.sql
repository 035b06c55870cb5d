-- Every funding rule the controls evaluate has a threshold they can read (a number, a date, a
-- month-day of year N+1 or a marqueur level) and a unit that fits what it controls: a typo in
-- ref_regles_financement.csv fails the build instead of silently disabling a rule.
select
    regle_cle,
    controle,
    unite,
    valeur
from {{ ref('int_suivi__regles') }}
where
    controle <> 'aucun'
    and (
        sens is null
        or (unite in ('EUR', 'part', 'annees', 'nombre') and seuil_nombre is null)
        or (unite = 'date' and seuil_date is null)
        or (
            unite in ('date_n', 'date_n_plus_1')
            and (seuil_mois is null or seuil_jour is null or seuil_mois not between 1 and 12)
        )
        or (unite = 'niveau' and seuil_niveau is null)
        or (controle in ('montant_demande', 'montant_accorde', 'cout_total') and unite <> 'EUR')
        or (controle like 'part%' and unite <> 'part')
        or (controle = 'part_public_qpv' and unite <> 'part')
        or (controle = 'cpo_duree' and unite <> 'annees')
        or (controle like 'nombre%' and unite <> 'nombre')
        or (controle in ('niveau_marqueur', 'marqueur_annee_precedente') and unite <> 'niveau')
        or (controle like 'date%' and unite not in ('date', 'date_n', 'date_n_plus_1'))
        or (
            controle = 'bilan_annee_precedente'
            and (unite <> 'bilan' or valeur not in ('final', 'provisoire_ou_final'))
        )
        or (
            controle = 'montant_droit_commun_meme_financeur'
            and (unite <> 'EUR' or financeur is null)
        )
        or (controle = 'part_montant_volet' and condition_volet is null)
    )
