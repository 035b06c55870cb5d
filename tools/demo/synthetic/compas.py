"""A Compas-style indicator workbook (« Notes » sheet, header row that moves between
deliveries, masked values) for the QPV 2024 and the EPCI of the demo territories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .formats import FolderWriter, _readme_sheet, _save_workbook
from .plans import DEMO_TOKEN, MENTION, PLANS


class CompasWriter(FolderWriter):
    """Writes the Compas-style indicator table."""

    def write_compas(self, millesime: int = 2022) -> Path:
        from openpyxl import Workbook
        from openpyxl.styles import Font

        rng = self.rng
        indicators = [
            ("Part des familles monoparentales (%)", "%", (25, 50)),
            ("Part des allocataires C2S (%)", "%", (25, 50)),
            ("Indice de fragilité", "indice base 100 = France", (110, 260)),
            ("Part des 0-17 ans (%)", "%", (22, 36)),
            ("Nombre d'allocataires CAF", "nombre", (300, 3500)),
            ("Part des ménages à bas revenus (%)", "%", (30, 60)),
            ("Part des allocataires dépendant à 50 % ou plus des prestations (%)", "%", (20, 45)),
            ("Part des 75 ans et plus (%)", "%", (4, 12)),
        ]
        workbook = Workbook()
        notes = [
            MENTION.upper(),
            f"Indicateurs d'observation sociale de type Compas — millésime {millesime} "
            "(valeurs inventées).",
            "Géographie : QPV 2024 (décret 2023-1314) des trois territoires de démonstration, "
            "et leurs EPCI (code SIREN).",
            "Secret statistique : « s » = valeur masquée (effectif trop faible).",
            "",
            "Indicateur ; unité",
            *[f"{name} ; {unit}" for name, unit, _ in indicators],
        ]
        _readme_sheet(workbook, "Notes", notes)
        sheet = workbook.create_sheet(f"Indicateurs {millesime}")
        sheet["A1"] = f"Tableau de bord social — millésime {millesime}"
        sheet["A1"].font = Font(bold=True, size=13)
        sheet["A2"] = MENTION
        sheet["A3"] = "Source : Compas (fictif), CAF (fictif)"
        header_row = 5 + rng.randint(0, 2)  # the header row moves between deliveries
        header = [
            "Code territoire",
            "Libellé territoire",
            "Type",
            "Territoire de contrat",
            *[name for name, _, _ in indicators],
        ]
        for col, name in enumerate(header, start=1):
            sheet.cell(row=header_row, column=col, value=name).font = Font(bold=True)
        r_idx = header_row + 1
        for plan in PLANS:
            units = [(c, n, "QPV", 1.0) for c, n in self.refs.qpv_list(plan.code, "2024")]
            for territory in self.refs.extra["territoires"]:
                if territory.get("territoire") == plan.code and territory.get("siren"):
                    units.append((territory["siren"], territory.get("nom", ""), "EPCI", 0.6))
            for code, name, kind, factor in units:
                values: list[Any] = [code, name, kind, plan.code]
                for _label, unit, (low, high) in indicators:
                    if kind == "QPV" and rng.random() < 0.04:
                        values.append("s")
                        continue
                    value = rng.uniform(low, high) * (factor if unit != "nombre" else 1)
                    if unit == "nombre":
                        value = round(value * (8 if kind == "EPCI" else 1))
                    else:
                        value = round(value, 1)
                    values.append(value)
                for c_idx, value in enumerate(values, start=1):
                    sheet.cell(row=r_idx, column=c_idx, value=value)
                r_idx += 1
        path = self.folder("compas") / f"COMPAS_indicateurs_{DEMO_TOKEN}.xlsx"
        _save_workbook(workbook, path)
        return path
