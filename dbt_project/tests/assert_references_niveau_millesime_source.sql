-- Every reference value has a level, a millésime (or says its source gives none) and a source;
-- a quoted value (« valeur citée ») names its document, the document's year and its EPCI.
select *
from {{ ref('int_references__valeurs') }}
where
    territoire_type is null
    or millesime_libelle is null
    or source is null
    or (
        nature = 'citee'
        and (document is null or annee_document is null or siren_document is null)
    )
    or (nature = 'publiee' and document is not null)
