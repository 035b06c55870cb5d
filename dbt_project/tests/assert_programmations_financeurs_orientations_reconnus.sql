-- Programmation lines whose financeur or orientation is not in the référentiels: a data
-- quality warning for the user (add the alias to ref_financeurs_alias or fix the file).
{{ config(severity='warn') }}

select
    territoire,
    annee,
    source_fichier,
    source_ligne,
    dossier,
    financeur_libelle,
    orientation_code,
    referentiel
from {{ ref('int_suivi__programmations') }}
where financeur = 'NON_RECONNU' or not orientation_reconnue
