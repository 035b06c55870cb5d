"""Personal data never enters the warehouse: such columns are dropped with a reported reason."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipelines.lib.privacy import drop_personal_columns, personal_reason


@pytest.mark.parametrize(
    "header",
    [
        "Nom",
        "Prénom",
        "Nom du bénéficiaire",
        "Date de naissance",
        "Adresse",
        "Téléphone",
        "Courriel",
        "E-mail",
        "N° allocataire CAF",
        "Âge",
    ],
)
def test_personal_headers_recognised(header):
    assert personal_reason(header)


@pytest.mark.parametrize(
    "header",
    [
        "Raison sociale du porteur",
        "Nom de la structure",
        "Adresse du siège",
        "16-25 ans",
        "Âge non renseigné",
        "Moins de 16 ans",
        "Priorité transversale",
        "Commentaire",
        "Nom du quartier",
    ],
)
def test_other_headers_kept(header):
    assert personal_reason(header) is None


def test_personal_columns_dropped_and_reported():
    frame = pd.DataFrame(
        {
            "dossier": ["A", "B"],
            "autres_colonnes": [
                json.dumps({"Nom": "Dupont", "Date de naissance": "01/02/1980", "Note": "x"}),
                json.dumps({"Prénom": "Léa"}),
            ],
            "source_fichier": ["bilans.csv", "bilans.csv"],
        }
    )
    out, anomalies = drop_personal_columns(frame, "bilans")
    assert json.loads(out.autres_colonnes[0]) == {"Note": "x"}
    assert out.autres_colonnes[1] is None
    assert "Dupont" not in out.to_csv() and "Léa" not in out.to_csv()
    assert sorted(anomalies.message.str.extract(r"« (.*) »")[0]) == [
        "Date de naissance",
        "Nom",
        "Prénom",
    ]
    assert set(anomalies.fichier) == {"bilans.csv"}
    assert "Dupont" not in anomalies.to_csv()
