"""The bilans of the granted actions: one row per action and QPV of residence of the
beneficiaries, counts by sex, age band and public (a few small counts for the secret), and what
the bilan says of the action (seed 004): realised or not and why, planned beneficiaries, a
result expected and obtained, residents' participation, how the public was mobilised.

Three layouts, as the readers meet them: CAMVS XLSX wide (canonical bands), VM CSV wide with
finer declared bands (« 0-5 ans », « 60 ans et plus » straddling two canonical bands), CABBALR
CSV long (one line per sex, band or public). A few broken cells are planted (see
:data:`BROKEN`) for the reader to report. The action's answers are drawn from a generator
seeded by the dossier, so the counts (drawn from the shared sequence) do not move.
"""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path
from typing import Any

from .actions import Action
from .formats import FolderWriter, _readme_sheet, _save_workbook, _write_csv, fr_date
from .generator import TerritoryGenerator
from .plans import DEMO_TOKEN, MENTION

SEX_HEADERS = ["Femmes", "Hommes", "Sexe non renseigné"]
AGE_HEADERS = [
    "Moins de 16 ans",
    "16-25 ans",
    "26-64 ans",
    "65 ans et plus",
    "Âge non renseigné",
]
PUBLIC_HEADERS = [
    "Demandeurs d'emploi",
    "Bénéficiaires du RSA",
    "Familles monoparentales",
    "Personnes en situation de handicap",
]
#: VM declares finer bands: 0-5 and 6-15 (inside « moins de 16 ans »), 26-59, and « 60 ans et
#: plus », which straddles 26-64 and 65+ (kept as declared, reported by the reader).
VM_AGE_HEADERS = [
    "0-5 ans",
    "6-15 ans",
    "16-25 ans",
    "26-59 ans",
    "60 ans et plus",
    "Âge non renseigné",
]
MOTIFS = [
    "Public non mobilisé",
    "Départ de l'intervenant",
    "Locaux indisponibles",
    "Report à l'année suivante",
    "Financement incomplet",
]
INDICATEURS = [
    "Personnes accompagnées vers l'emploi",
    "Ateliers réalisés",
    "Familles rencontrées",
    "Jeunes inscrits",
]
PARTICIPATION = [
    "Co-construction du programme avec le conseil citoyen",
    "Comité de suivi avec des habitants",
    "Évaluation par questionnaire aux participants",
    "Habitants bénévoles lors de l'événement",
    "Co-construction et évaluation avec les habitants",
]
MOBILISATION = [
    "Prescription par France Travail",
    "Permanence au centre social",
    "Orientation par les partenaires",
    "Diffusion par affiches et réseaux sociaux",
]
#: The planted broken cells (territory: what), listed in the bilans README.
BROKEN = {
    "CAMVS": "« une trentaine » bénéficiaires prévus, participation « En cours », un total "
    "inférieur aux tranches",
    "VM": "un nombre de demandeurs d'emploi supérieur au total de la ligne",
    "CABBALR": "un effectif « trois » (ligne rejetée), une modalité « Jeunes NEET » inconnue",
}


def action_answers(a: Action, total: int) -> dict[str, Any]:
    """What the bilan says of the action, drawn from a generator seeded by its dossier."""
    rng = random.Random(f"bilan-{a.territoire}-{a.annee}-{a.dossier}")
    if not a.realisee:
        realisation, motif = "Non", rng.choice(MOTIFS)
    elif rng.random() < 0.15:
        realisation, motif = "Partiellement", rng.choice(MOTIFS)
    else:
        realisation, motif = "Oui", ""
    attendu = rng.randint(5, 30)
    obtenu = 0 if realisation == "Non" else max(0, round(attendu * rng.uniform(0.5, 1.3)))
    participe = realisation != "Non" and rng.random() < 0.55
    return {
        "realisation": realisation,
        "motif": motif,
        "prevus": max(5, round(max(total, 8) * rng.uniform(0.8, 1.4))),
        "indicateur": rng.choice(INDICATEURS),
        "attendu": attendu,
        "obtenu": obtenu,
        "participation": "Oui" if participe else "Non",
        "modalites": rng.choice(PARTICIPATION) if participe else "",
        "mobilisation": rng.choice(MOBILISATION),
    }


def _vm_ages(ages: list[int], rng: random.Random) -> list[int]:
    """The five canonical counts split into VM's six declared bands (same total)."""
    moins_16, a16_25, a26_64, a65, nr = ages
    a0_5 = sum(rng.random() < 0.4 for _ in range(moins_16))
    a60_64 = sum(rng.random() < 0.1 for _ in range(a26_64))
    return [a0_5, moins_16 - a0_5, a16_25, a26_64 - a60_64, a60_64 + a65, nr]


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

    def _records(
        self, gen: TerritoryGenerator, year: int
    ) -> list[tuple[Action, dict[str, Any], dict[str, Any]]]:
        records: list[tuple[Action, dict[str, Any], dict[str, Any]]] = []
        for a in gen.actions[year]:
            if a.granted and a.date_bilan is not None:
                rows = self.bilan_rows(gen, a)
                answers = action_answers(a, sum(sum(r["counts"][:3]) for r in rows))
                records += [(a, row, answers) for row in rows]
        return records

    def write_bilans(self, gen: TerritoryGenerator, year: int) -> Path:
        code = gen.plan.code
        records = self._records(gen, year)
        folder = self.folder("bilans")
        if code == "CAMVS":
            return self._write_camvs(folder, year, records)
        if code == "VM":
            return self._write_vm(folder, year, records)
        return self._write_cabbalr(gen, folder, year, records)

    def _write_camvs(self, folder: Path, year: int, records: list) -> Path:
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
                f"Cellules volontairement fautives : {BROKEN['CAMVS']}.",
            ],
        )
        sheet = workbook.create_sheet(f"Bilans {year}")
        sheet["A1"] = f"Bilans {year} — {MENTION.lower()}"
        sheet["A1"].font = Font(bold=True)
        sheet["A2"] = "Source : fiches de suivi-bilan (fictives)"
        header = [
            "Code dossier",
            "Action réalisée",
            "Explications sur la non-réalisation",
            "QPV de résidence",
            *SEX_HEADERS,
            "Nombre total de bénéficiaires",
            *AGE_HEADERS,
            *PUBLIC_HEADERS,
            "Nombre de bénéficiaires prévus",
            "Indicateur de résultat",
            "Résultats attendus",
            "Résultats obtenus",
            "Participation des habitants",
            "Modalités de participation des habitants",
            "Modalités de mobilisation des publics",
            "Date de dépôt du bilan",
        ]
        for col, name in enumerate(header, start=1):
            sheet.cell(row=3, column=col, value=name).font = Font(bold=True)
        first_rows = {}
        for k, (a, _row, _answers) in enumerate(records):
            first_rows.setdefault(a.dossier, k)
        broken = _broken_positions(records, 3)
        for k, (a, row, ans) in enumerate(records):
            counts = row["counts"]
            total = sum(counts[:3])
            prevus: Any = ans["prevus"]
            participation: Any = ans["participation"]
            if k == broken[0]:
                prevus = "une trentaine"
            if k == broken[1]:
                participation = "En cours"
            if k == broken[2]:
                total = max(1, total - 2)
            values = [
                a.dossier,
                ans["realisation"],
                ans["motif"] or None,
                row["residence"],
                *counts[:3],
                total,
                *counts[3:],
                prevus,
                ans["indicateur"],
                ans["attendu"],
                ans["obtenu"],
                participation,
                ans["modalites"] or None,
                ans["mobilisation"],
                a.date_bilan,
            ]
            for c_idx, value in enumerate(values, start=1):
                cell = sheet.cell(row=k + 4, column=c_idx, value=value)
                if isinstance(value, date):
                    cell.number_format = "DD/MM/YYYY"
        path = folder / f"CAMVS_bilans_{year}_{DEMO_TOKEN}.xlsx"
        _save_workbook(workbook, path)
        return path

    def _write_vm(self, folder: Path, year: int, records: list) -> Path:
        header = [
            "N° dossier",
            "Intitulé de l'action",
            "Réalisation de l'action",
            "Motif de non réalisation",
            "QPV de résidence",
            *SEX_HEADERS,
            *VM_AGE_HEADERS,
            *PUBLIC_HEADERS,
            "Bénéficiaires prévus",
            "Indicateur d'évaluation",
            "Objectif chiffré",
            "Valeur atteinte",
            "Les habitants ont-ils participé",
            "Forme de la participation",
            "Mobilisation du public",
            "Date de dépôt du bilan",
        ]
        broken = _broken_positions(records, 1)
        rows = []
        for k, (a, row, ans) in enumerate(records):
            counts = list(row["counts"])
            split = random.Random(f"ages-{a.dossier}-{row['residence']}")
            ages = _vm_ages(counts[3:8], split)
            publics = counts[8:]
            if k == broken[0]:
                publics[0] = sum(counts[:3]) + 3
            rows.append(
                [
                    a.dossier,
                    a.intitule,
                    ans["realisation"],
                    ans["motif"],
                    row["residence"],
                    *map(str, counts[:3]),
                    *map(str, ages),
                    *map(str, publics),
                    str(ans["prevus"]),
                    ans["indicateur"],
                    str(ans["attendu"]),
                    str(ans["obtenu"]),
                    ans["participation"],
                    ans["modalites"],
                    ans["mobilisation"],
                    fr_date(a.date_bilan),
                ]
            )
        path = folder / f"VM_bilans_{year}_{DEMO_TOKEN}.csv"
        _write_csv(
            path,
            f"{MENTION} — bilans {year} Valenciennes Métropole (cellule volontairement "
            f"fautive : {BROKEN['VM']})",
            header,
            rows,
            ";",
            bom=True,
            newline="\r\n",
        )
        return path

    def _write_cabbalr(
        self, gen: TerritoryGenerator, folder: Path, year: int, records: list
    ) -> Path:
        """Long layout: one line per action × residence × sex / band / public (zero bands and
        publics left out, the three sexes always written so that no bilan is empty)."""
        header = [
            "Dossier",
            "Action",
            "Action réalisée",
            "Motif de la non-réalisation",
            "Quartier de résidence",
            "Tranche d'âge ou public",
            "Effectif",
            "Nombre de bénéficiaires attendus",
            "Indicateur de résultat",
            "Résultat attendu",
            "Résultat obtenu",
            "Participation des habitants",
            "Modalités de participation",
            "Mobilisation des publics",
            "Date de dépôt du bilan",
        ]
        broken = _broken_positions(records, 2)
        rows = []
        for k, (a, row, ans) in enumerate(records):
            place = row["residence"]
            if place.startswith("QP"):
                place = f"{place} - {gen.qpv_names[place]}"
            labels = [*SEX_HEADERS, *AGE_HEADERS, *PUBLIC_HEADERS]
            items = [
                (label, str(n))
                for j, (label, n) in enumerate(zip(labels, row["counts"], strict=True))
                if j < 3 or n
            ]
            if k == broken[0]:
                items.append(("Bénéficiaires du RSA", "trois"))
            if k == broken[1]:
                items.append(("Jeunes NEET", "2"))
            for label, n in items:
                rows.append(
                    [
                        a.dossier,
                        a.intitule,
                        ans["realisation"],
                        ans["motif"],
                        place,
                        label,
                        n,
                        str(ans["prevus"]),
                        ans["indicateur"],
                        str(ans["attendu"]),
                        str(ans["obtenu"]),
                        ans["participation"],
                        ans["modalites"],
                        ans["mobilisation"],
                        fr_date(a.date_bilan),
                    ]
                )
        path = folder / f"{gen.plan.code}_bilans_{year}_{DEMO_TOKEN}.csv"
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


def _broken_positions(records: list, count: int) -> list[int]:
    """``count`` distinct rows of realised actions with beneficiaries (the first of every
    fifth such row), where the planted broken cells go; -1 when the file is too short."""
    found = [
        k
        for k, (_a, row, ans) in enumerate(records)
        if ans["realisation"] != "Non" and sum(row["counts"][:3]) >= 2
    ]
    picks = found[::5][:count]
    return picks + [-1] * (count - len(picks))
