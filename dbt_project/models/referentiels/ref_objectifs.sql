-- The contracts' targets and evaluation indicators (objectifs.csv of the territory folders),
-- typed: target and baseline as numbers, years as integers, the warehouse measure they are
-- observed with (empty: not observable in the warehouse) and its French label.
select
    territoire,
    code,
    libelle,
    priorite,
    cast(cible as decimal(18, 2)) as cible,
    unite,
    sens,
    case sens when 'au_moins' then 'au moins' when 'au_plus' then 'au plus' end as sens_libelle,
    cast(valeur_reference as decimal(18, 2)) as valeur_reference,
    cast(annee_reference as integer) as annee_reference,
    cast(annee_debut as integer) as annee_debut,
    cast(annee_cible as integer) as annee_cible,
    mesure,
    case mesure
        when 'nb_actions' then 'nombre d''actions programmées'
        when 'nb_actions_financees' then 'nombre d''actions financées'
        when 'nb_porteurs' then 'nombre de porteurs'
        when 'nb_qpv_concernes' then 'nombre de QPV concernés par une action'
        when 'montant_accorde' then 'montant accordé (euros)'
        when 'montant_accorde_credits_specifiques'
            then 'montant accordé en crédits spécifiques (euros)'
        when 'montant_accorde_droit_commun' then 'montant accordé en droit commun (euros)'
        when 'part_actions_cpo' then 'part des actions sous convention pluriannuelle (CPO)'
        when 'beneficiaires' then 'nombre de bénéficiaires (bilans)'
        when 'beneficiaires_femmes' then 'nombre de bénéficiaires femmes (bilans)'
        when 'part_femmes_beneficiaires' then 'part des femmes parmi les bénéficiaires (bilans)'
    end as mesure_libelle,
    orientation_code,
    operateur,
    source_seed,
    source_libelle,
    citation,
    note,
    fichier_source,
    ligne
from {{ source('raw', 'territoires_objectifs') }}
