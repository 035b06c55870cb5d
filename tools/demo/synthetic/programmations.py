"""The yearly programmation exports, one shape per territory: VM (Dauphin-like CSV), CABBALR
(CSV) and CAMVS (wide local XLSX), with export duplicates on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .actions import Action
from .formats import (
    FolderWriter,
    _plain,
    _readme_sheet,
    _save_workbook,
    _write_csv,
    code_label,
    fr_amount,
    fr_date,
    fr_percent,
)
from .generator import TerritoryGenerator
from .plans import DEMO_TOKEN, MENTION


class ProgrammationWriter(FolderWriter):
    """Writes the programmation file of a territory and year."""

    def qpv_cell(self, gen: TerritoryGenerator, a: Action) -> str:
        code = gen.plan.code
        if a.qic:
            return f"{a.qic} (quartier d'intérêt communautaire)"
        if a.qpv is None:
            return "Tous les QPV de l'agglomération" if code == "CAMVS" else "Tous les QPV"
        if code == "VM":
            return " ; ".join(f"{c} - {gen.qpv_names[c]}" for c in a.qpv)
        if code == "CAMVS":
            return ", ".join(a.qpv)
        return " / ".join(f"{c} {gen.qpv_names[c]}" for c in a.qpv)

    def echelle(self, a: Action) -> str:
        if a.qpv is None:
            return "Intercommunale"
        return "Communale" if len(a.qpv) <= 1 else "Regroupement de communes"

    def projet_quartier(self, a: Action) -> str:
        """VM (000): an action asking a commune's funds answers the commune's Projet de
        Quartier; CAMVS (004): the contract is declined in projets de quartier, an action aimed at
        named QPV belongs to theirs. Derived from the action, no random draw."""
        if a.territoire == "VM":
            return "Oui" if a.funding("COMMUNE") else "Non"
        return "Oui" if a.qpv is not None and not a.qic else "Non"

    def write_vm(self, gen: TerritoryGenerator, year: int) -> Path:
        rng = self.rng
        header = [
            "N° dossier",
            "Exercice",
            "Code SIRET",
            "Raison sociale du porteur",
            "Intitulé de l'action",
            "Orientation",
            "Objectif",
            "Quartier(s) concerné(s)",
            "Échelle d'intervention",
            "Statut de l'action",
            "Coût total de l'action",
            "Dont coûts indirects",
            "Dont achats",
            "Financeur",
            "Montant demandé",
            "Montant accordé",
            "CPO",
            "Durée CPO",
            "Marqueur égalité",
            "Part du public résidant en QPV",
            "Date de fin de l'action",
            "Date de dépôt du bilan intermédiaire",
            "Date de dépôt du bilan",
            "Nombre de réunions de suivi",
            "Orientation transversale",
            "Projets de Quartier",
            "Date de demande de report",
        ]
        rows: list[list[str]] = []
        for a in gen.actions[year]:
            for f in a.fundings:
                rows.append(
                    [
                        a.dossier,
                        str(year),
                        a.porteur.siret,
                        a.porteur.nom,
                        a.intitule,
                        code_label(a.levels.get(1)),
                        code_label(a.leaf),
                        self.qpv_cell(gen, a),
                        self.echelle(a),
                        (a.statut or {}).get("libelle", ""),
                        fr_amount(a.cout_total, rng),
                        fr_amount(a.couts_indirects, rng),
                        fr_amount(a.achats, rng),
                        self.refs.financeur_label("VM", f.code),
                        fr_amount(f.demande, rng),
                        fr_amount(f.accorde, rng),
                        "Oui" if a.cpo else "Non",
                        f"{a.cpo_duree} ans" if a.cpo_duree else "",
                        a.marqueur,
                        fr_percent(a.part_qpv),
                        fr_date(a.date_fin),
                        fr_date(a.date_bilan_intermediaire),
                        fr_date(a.date_bilan),
                        str(a.reunions),
                        code_label(a.transversal),
                        self.projet_quartier(a),
                        fr_date(a.date_report),
                    ]
                )
        rows = self._with_duplicates(rows, 2, near_duplicate_columns=(15,))
        path = self.folder("programmations") / f"VM_programmation_{year}_{DEMO_TOKEN}.csv"
        preamble = (
            f"{MENTION} — programmation {year} du contrat de ville de Valenciennes "
            "Métropole (export de type Dauphin) — aucune donnée réelle"
        )
        _write_csv(path, preamble, header, rows, ";", bom=True, newline="\r\n")
        return path

    def write_cabbalr(self, gen: TerritoryGenerator, year: int) -> Path:
        rng = self.rng
        header = [
            "Dossier",
            "N° SIRET",
            "Porteur de projet",
            "Type de porteur",
            "Action",
            "Pilier",
            "Priorité",
            "Sous-priorité",
            "Priorité transversale",
            "Quartiers",
            "Type d'opération",
            "Année de financement",
            "Coût total",
            "Charges indirectes",
            "Achats",
            "Financeur",
            "Nature de la subvention",
            "Volet régional",
            "Montant sollicité",
            "Montant attribué",
            "CPO",
            "Durée CPO",
            "Marqueur égalité",
            "Part du public QPV",
            "Date de demande de report",
            "Échelle",
        ]
        rows: list[list[str]] = []
        for a in gen.actions[year]:
            for f in a.fundings:
                rows.append(
                    [
                        a.dossier,
                        a.porteur.siret,
                        a.porteur.nom,
                        a.porteur.type,
                        a.intitule,
                        code_label(a.levels.get(1)),
                        code_label(a.levels.get(2)),
                        code_label(a.levels.get(3)),
                        code_label(a.transversal),
                        self.qpv_cell(gen, a),
                        (a.statut or {}).get("libelle", ""),
                        f"{a.rang}e année" if a.rang > 1 else "1re année",
                        fr_amount(a.cout_total, rng, euro=False).replace(",00", ""),
                        fr_amount(a.couts_indirects, rng, euro=False),
                        fr_amount(a.achats, rng, euro=False),
                        self.refs.financeur_label("CABBALR", f.code),
                        f.nature if f.code == "REGION" else "",
                        f.volet or "",
                        _plain(f.demande),
                        _plain(f.accorde),
                        "Oui" if a.cpo else "Non",
                        str(a.cpo_duree or ""),
                        a.marqueur,
                        f"{round(a.part_qpv * 100)}%",
                        fr_date(a.date_report),
                        self.echelle(a),
                    ]
                )
        rows = self._with_duplicates(rows, 2)
        path = self.folder("programmations") / f"CABBALR_programmation_{year}_{DEMO_TOKEN}.csv"
        preamble = (
            f"{MENTION} — appel à projets {year} du contrat de ville de la CA "
            "Béthune-Bruay Artois Lys Romane — aucune donnée réelle"
        )
        _write_csv(path, preamble, header, rows, ";", bom=False, newline="\n")
        return path

    def write_camvs(self, gen: TerritoryGenerator, year: int) -> Path:
        from openpyxl import Workbook
        from openpyxl.styles import Font

        workbook = Workbook()
        _readme_sheet(
            workbook,
            "Lisez-moi",
            [
                f"{MENTION.upper()}",
                f"Programmation {year} du contrat de ville de la CA Maubeuge-Val de Sambre "
                "(tableau de suivi local fictif).",
                # names the former single module: kept for byte-identical demo files
                "Porteurs, SIRET, montants et dates sont inventés par le générateur de "
                "l'observatoire (tools/demo/synthetic/) à partir des référentiels du projet.",
                "Une ligne par action ; une paire de colonnes « demandé / accordé » par financeur.",
                "Montant accordé vide = décision non encore prise ; 0 = refus.",
            ],
        )
        sheet = workbook.create_sheet(f"Programmation {year}")
        sheet["A1"] = f"Contrat de ville CAMVS — programmation {year} ({MENTION.lower()})"
        sheet["A1"].font = Font(bold=True, size=14)
        sheet["A2"] = "Tableau de suivi du service politique de la ville — version de travail"
        financeurs = gen.financeurs
        header = [
            "Code dossier",
            "Porteur",
            "SIRET",
            "Libellé de l'action",
            "Orientation",
            "Objectif",
            "Fil rouge",
            "QPV",
            "Échelle",
            "Projet de quartier",
            "Statut",
            "Coût total",
            "Coûts indirects",
            "Achats",
        ]
        for code in financeurs:
            label = self.refs.financeur_label("CAMVS", code)
            header += [f"{label} - demandé", f"{label} - accordé"]
        header += [
            "CPO",
            "Durée CPO (ans)",
            "Marqueur égalité",
            "Part du public QPV",
            "Suivi renforcé",
            "Nombre de réunions de suivi",
            "Commentaire",
        ]
        header_row = 4
        for col, name in enumerate(header, start=1):
            cell = sheet.cell(row=header_row, column=col, value=name)
            cell.font = Font(bold=True)
        rows: list[list[Any]] = []
        for a in gen.actions[year]:
            row: list[Any] = [
                a.dossier,
                a.porteur.nom,
                a.porteur.siret,
                a.intitule,
                code_label(a.levels.get(1)),
                a.leaf.code,
                a.transversal.libelle if a.transversal and self.rng.random() < 0.5 else None,
                self.qpv_cell(gen, a),
                self.echelle(a),
                self.projet_quartier(a),
                (a.statut or {}).get("libelle"),
                a.cout_total,
                a.couts_indirects,
                a.achats,
            ]
            for code in financeurs:
                f = a.funding(code)
                row += [f.demande, f.accorde] if f else [None, None]
            row += [
                "Oui" if a.cpo else "Non",
                a.cpo_duree,
                f"Niveau {a.marqueur}",
                a.part_qpv,
                "Oui" if a.suivi_renforce else "Non",
                a.reunions,
                "données fictives" if self.rng.random() < 0.1 else None,
            ]
            rows.append(row)
        rows = self._with_duplicates(rows, 1)
        for r_idx, row in enumerate(rows, start=header_row + 1):
            for c_idx, value in enumerate(row, start=1):
                cell = sheet.cell(row=r_idx, column=c_idx, value=value)
                name = header[c_idx - 1]
                if isinstance(value, float) and name.startswith("Part"):
                    cell.number_format = "0%"
                elif isinstance(value, float):
                    cell.number_format = '#,##0.00 "€"'
        path = self.folder("programmations") / f"CAMVS_programmation_{year}_{DEMO_TOKEN}.xlsx"
        _save_workbook(workbook, path)
        return path

    def _with_duplicates(
        self, rows: list[list[Any]], count: int, near_duplicate_columns: tuple[int, ...] = ()
    ) -> list[list[Any]]:
        """Repeat ``count`` lines exactly (export duplicates) and, optionally, one line with a
        different value in the given columns (same dossier × financeur, other amount)."""
        rows = list(rows)
        picks = self.rng.sample(range(len(rows)), count)
        for idx in sorted(picks, reverse=True):
            rows.insert(idx + 1 + self.rng.randint(0, 3), list(rows[idx]))
        for column in near_duplicate_columns:
            idx = self.rng.randrange(len(rows))
            copy = list(rows[idx])
            copy[column] = fr_amount(1000.0, self.rng)
            rows.append(copy)
        return rows
