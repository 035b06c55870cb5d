-- A rule on the marqueur égalité (controle niveau_marqueur) names a level of the scale its
-- territory has in force the rule's first year (ref_marqueur_egalite): a rule of a territory
-- without a marqueur scale, or a level its scale does not have, fails the build instead of
-- judging nothing.
select
    regles.regle_cle,
    regles.territoire,
    regles.annee_debut,
    regles.seuil_niveau
from {{ ref('int_suivi__regles') }} as regles
where
    regles.controle = 'niveau_marqueur'
    and not exists (
        select 1 from {{ ref('ref_marqueur_egalite') }} as marqueurs
        where
            marqueurs.territoire = regles.territoire
            and regles.annee_debut >= marqueurs.annee_debut
            and regles.annee_debut <= coalesce(marqueurs.annee_fin, regles.annee_debut)
            and marqueurs.niveau = regles.seuil_niveau
    )
