"""The bilans of the granted actions: one row per action and QPV of residence of the
beneficiaries, counts by sex, age band and public (a few small counts for the secret).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from .actions import Action
from .formats import FolderWriter, _readme_sheet, _save_workbook, _write_csv, fr_date
from .generator import TerritoryGenerator
from .plans import DEMO_TOKEN, MENTION


class BilanWriter(FolderWriter):
    """Writes the bilans file of a territory and year."""

    def bilan_rows(self, gen: TerritoryGenerator, a: Action) -> list[dict[str, Any]]:
        rng = self.rng
        if not a.realisee:
            return [{"residence": "Non renseigné", "counts": [0] * 12}]
        if a.qic:
            places: list[str] = []
        elif a.qpv is None:
            places = rng.sample([c for c, _ in gen.qpv], min(3, len(gen.qpv)))
        else:
            places = list(a.qpv)
        total = rng.randint(8, 120)
        in_qpv = round(total * a.part_qpv)
        rows = []
        shares = [rng.random() + 0.2 for _ in places]
        for place, share in zip(places, shares, strict=True):
            rows.append((place, max(1, round(in_qpv * share / sum(shares)))))
        rows.append(("Hors QPV", max(1, total - in_qpv)))
        if rng.random() < 0.3:
            rows.append(("Non renseigné", rng.randint(1, 4)))
        if rng.random() < 0.3 and rows:
            place, _ = rows[0]
            rows[0] = (place, rng.randint(1, 4))  # small count for statistical secrecy tests
        out = []
        for place, n in rows:
            sexe_nr = rng.randint(0, 1) if n > 5 else 0
            femmes = sum(rng.random() < 0.58 for _ in range(n - sexe_nr))
            hommes = n - sexe_nr - femmes
            ages = [0] * 5
            for _ in range(n):
                ages[rng.choices(range(5), weights=(3, 3, 5, 1, 0.3))[0]] += 1
            publics = [
                rng.randint(0, n // 2),
                rng.randint(0, n // 3),
                rng.randint(0, n // 3),
                rng.randint(0, max(1, n // 8)),
            ]
            out.append({"residence": place, "counts": [femmes, hommes, sexe_nr, *ages, *publics]})
        return out

    def write_bilans(self, gen: TerritoryGenerator, year: int) -> Path:
        count_headers = [
            "Femmes",
            "Hommes",
            "Sexe non renseigné",
            "Moins de 16 ans",
            "16-25 ans",
            "26-64 ans",
            "65 ans et plus",
            "Âge non renseigné",
            "Demandeurs d'emploi",
            "Bénéficiaires du RSA",
            "Familles monoparentales",
            "Personnes en situation de handicap",
        ]
        code = gen.plan.code
        records: list[tuple[Action, dict[str, Any]]] = []
        for a in gen.actions[year]:
            if a.granted and a.date_bilan is not None:
                records += [(a, row) for row in self.bilan_rows(gen, a)]
        folder = self.folder("bilans")
        if code == "CAMVS":
            from openpyxl import Workbook
            from openpyxl.styles import Font

            workbook = Workbook()
            _readme_sheet(
                workbook,
                "Lisez-moi",
                [
                    MENTION.upper(),
                    f"Bilans {year} des actions financées (CA Maubeuge-Val de Sambre, fictif).",
                    "Une ligne par action et par QPV de résidence des bénéficiaires.",
                    "Fiches de suivi-bilan à transmettre avant le 31 mars de l'année N+1.",
                ],
            )
            sheet = workbook.create_sheet(f"Bilans {year}")
            sheet["A1"] = f"Bilans {year} — {MENTION.lower()}"
            sheet["A1"].font = Font(bold=True)
            sheet["A2"] = "Source : fiches de suivi-bilan (fictives)"
            header = [
                "Code dossier",
                "Action réalisée",
                "QPV de résidence",
                *count_headers,
                "Date de dépôt du bilan",
            ]
            for col, name in enumerate(header, start=1):
                sheet.cell(row=3, column=col, value=name).font = Font(bold=True)
            for r_idx, (a, row) in enumerate(records, start=4):
                values = [
                    a.dossier,
                    "Oui" if a.realisee else "Non",
                    row["residence"],
                    *row["counts"],
                    a.date_bilan,
                ]
                for c_idx, value in enumerate(values, start=1):
                    cell = sheet.cell(row=r_idx, column=c_idx, value=value)
                    if isinstance(value, date):
                        cell.number_format = "DD/MM/YYYY"
            path = folder / f"CAMVS_bilans_{year}_{DEMO_TOKEN}.xlsx"
            _save_workbook(workbook, path)
            return path
        if code == "VM":
            header = [
                "N° dossier",
                "Intitulé de l'action",
                "Action réalisée",
                "QPV de résidence",
                *count_headers,
                "Date de dépôt du bilan",
            ]
            rows = [
                [
                    a.dossier,
                    a.intitule,
                    "Oui" if a.realisee else "Non",
                    row["residence"],
                    *map(str, row["counts"]),
                    fr_date(a.date_bilan),
                ]
                for a, row in records
            ]
            path = folder / f"VM_bilans_{year}_{DEMO_TOKEN}.csv"
            _write_csv(
                path,
                f"{MENTION} — bilans {year} Valenciennes Métropole",
                header,
                rows,
                ";",
                bom=True,
                newline="\r\n",
            )
            return path
        header = [
            "Dossier",
            "Action",
            "Action réalisée",
            "Quartier de résidence",
            *count_headers,
            "Date de dépôt du bilan",
        ]
        rows = []
        for a, row in records:
            place = row["residence"]
            if place.startswith("QP"):
                place = f"{place} - {gen.qpv_names[place]}"
            rows.append(
                [
                    a.dossier,
                    a.intitule,
                    "Oui" if a.realisee else "Non",
                    place,
                    *map(str, row["counts"]),
                    fr_date(a.date_bilan),
                ]
            )
        path = folder / f"{code}_bilans_{year}_{DEMO_TOKEN}.csv"
        _write_csv(
            path,
            f"{MENTION} — bilans {year} CA Béthune-Bruay Artois Lys Romane",
            header,
            rows,
            ",",
            bom=False,
            newline="\n",
        )
        return path
