"""``observatoire fetch`` logic against a local HTTP server on 127.0.0.1 (no internet)."""

from __future__ import annotations

import csv
import hashlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipelines.fetch import CATALOGUE, LOG_NAME, Resource, fetch, sha256_of
from tests.conftest import shared_data


class _Handler(BaseHTTPRequestHandler):
    """Static files with Range support, a data.gouv-like API, and connections cut on demand."""

    root: Path
    api: dict[str, dict] = {}
    cut_after: dict[str, int] = {}
    requests: Counter

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.requests[self.path] += 1
        if self.path.startswith("/api/1/datasets/"):
            slug = self.path.split("/")[4]
            body = json.dumps(self.api.get(slug, {"resources": []})).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.cut_after.pop(self.path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def serve():
    servers = []

    def start(root: Path, api: dict | None = None, cut_after: dict | None = None):
        handler = type(
            "H",
            (_Handler,),
            {
                "root": root,
                "api": api or {},
                "cut_after": dict(cut_after or {}),
                "requests": Counter(),
            },
        )
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", handler

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _log_rows(raw: Path) -> list[dict]:
    with (raw / LOG_NAME).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=";"))


def test_fetch_real_insee_files_with_checksums(tmp_path, serve):
    shared = shared_data("insee_qpv2015").parent
    url, handler = serve(shared)
    raw = tmp_path / "raw"
    results = fetch(raw, ["insee_qpv2015"], {"insee_qpv2015": f"{url}/insee_qpv2015/"}, log=None)
    assert [r.statut for r in results] == ["telecharge"] * 6
    for result in results:
        source = shared / "insee_qpv2015" / result.fichier
        assert result.chemin == raw / "insee" / result.fichier
        assert result.sha256 == sha256_of(source) == sha256_of(result.chemin)
        assert result.octets == source.stat().st_size
    assert not list(raw.rglob("*.part"))
    rows = _log_rows(raw)
    assert len(rows) == 6 and {r["statut"] for r in rows} == {"telecharge"}
    assert {r["sha256"] for r in rows} == {r.sha256 for r in results}

    # already there: nothing downloaded again, the check is logged
    before = sum(handler.requests.values())
    again = fetch(raw, ["insee_qpv2015"], {"insee_qpv2015": f"{url}/insee_qpv2015/"}, log=None)
    assert {r.statut for r in again} == {"deja_present"}
    assert sum(handler.requests.values()) == before
    assert len(_log_rows(raw)) == 12


def test_fetch_resumes_an_interrupted_download(tmp_path, serve):
    root = tmp_path / "site"
    (root / "f").mkdir(parents=True)
    payload = bytes(range(256)) * 4000  # ~1 MB
    (root / "f" / "IPRO_2099.csv").write_bytes(payload)
    catalogue = {"x": [Resource("x", "IPRO_2099.csv", "insee")]}
    url, handler = serve(root, cut_after={"/f/IPRO_2099.csv": 300_000})
    raw = tmp_path / "raw"
    [result] = fetch(raw, ["x"], {"x": f"{url}/f"}, catalogue=catalogue, log=None)
    assert result.statut == "repris"
    assert (raw / "insee" / "IPRO_2099.csv").read_bytes() == payload
    assert result.sha256 == hashlib.sha256(payload).hexdigest()
    assert handler.requests["/f/IPRO_2099.csv"] == 2  # the second request asked for a Range

    # a .part left by an earlier run is resumed, not restarted
    target = raw / "insee" / "IPRO_2099.csv"
    target.unlink()
    target.with_name(target.name + ".part").write_bytes(payload[:1000])
    [result] = fetch(raw, ["x"], {"x": f"{url}/f"}, catalogue=catalogue, log=None)
    assert result.statut == "repris" and target.read_bytes() == payload


def test_fetch_resolves_data_gouv_resources_and_checks_published_checksum(tmp_path, serve):
    root = tmp_path / "site"
    (root / "anct").mkdir(parents=True)
    body = b'{"type": "FeatureCollection", "features": []}'
    (root / "anct" / "QP2024_France_Hexagonale_Outre_Mer_WGS84.geojson").write_bytes(body)
    (root / "anct" / "listeqp2024-cog2024.csv").write_bytes(b"code_qp;lib_qp\n")
    slug = CATALOGUE["anct_contours_2024"][0].dataset
    url, _ = serve(root)
    api = {
        slug: {
            "resources": [
                {
                    "title": "listeqp2024-cog2024.csv",
                    "url": f"{url}/anct/listeqp2024-cog2024.csv",
                    "checksum": {"type": "sha1", "value": "0" * 40},  # wrong on purpose
                },
                {
                    "title": "QP2024 France hexagonale et outre-mer WGS84",
                    "url": f"{url}/anct/QP2024_France_Hexagonale_Outre_Mer_WGS84.geojson",
                    "checksum": {"type": "sha1", "value": hashlib.sha1(body).hexdigest()},
                },
            ]
        }
    }
    url, _ = serve(root, api=api)
    raw = tmp_path / "raw"
    results = fetch(
        raw, ["anct_contours_2024", "anct_liste_2024"], api_url=f"{url}/api/1", log=None
    )
    by_source = {r.source: r for r in results}
    contours = by_source["anct_contours_2024"]
    assert contours.statut == "telecharge"
    assert (
        raw / "sig_ville" / "QP2024_France_Hexagonale_Outre_Mer_WGS84.geojson"
    ).read_bytes() == body
    liste = by_source["anct_liste_2024"]
    assert liste.statut == "erreur" and "sha1" in liste.message
    assert not (raw / "sig_ville" / "listeqp2024-cog2024.csv").exists()
    assert not list(raw.rglob("*.part"))


def test_fetch_reports_what_it_cannot_download(tmp_path, serve):
    raw = tmp_path / "raw"
    # a source known only by its landing page (no link pattern): reported, never guessed
    page_only = {"p": [Resource("p", "X_2020.csv", "insee", page="https://www.insee.fr/x")]}
    results = fetch(raw, ["p"], catalogue=page_only, log=None)
    assert {r.statut for r in results} == {"sans_adresse"}
    assert "insee.fr" in results[0].message
    with pytest.raises(ValueError, match="inconnue"):
        fetch(raw, ["pas_une_source"], log=None)

    root = tmp_path / "site"
    root.mkdir()
    (root / "A_2020.csv").write_bytes(b"abc")
    url, _ = serve(root)
    catalogue = {
        "y": [
            Resource("y", "A_2020.csv", "insee", sha256="f" * 64),
            Resource("y", "absent_2020.csv", "insee"),
        ]
    }
    bad, missing = fetch(raw, ["y"], {"y": url}, catalogue=catalogue, retries=1, log=None)
    assert bad.statut == "erreur" and "SHA-256" in bad.message
    assert not (raw / "insee" / "A_2020.csv").exists()
    assert missing.statut == "erreur" and "404" in missing.message
    assert [r["statut"] for r in _log_rows(raw)][-2:] == ["erreur", "erreur"]


def test_cli_helper_parses_base_urls_and_returns_the_exit_code(tmp_path, serve):
    from pipelines.fetch import run_cli

    root = tmp_path / "site"
    (root / "insee_qpv2015").mkdir(parents=True)
    for base in ("DEMO", "IPRO", "REVN"):
        for year in (2021, 2022):
            (root / "insee_qpv2015" / f"{base}_{year}.csv").write_text("CODGEO\n", "utf-8")
    url, _ = serve(root)
    lines: list[str] = []
    raw = tmp_path / "raw"
    code = run_cli(
        raw, ["insee_qpv2015"], [f"insee_qpv2015={url}/insee_qpv2015"], echo=lines.append
    )
    assert code == 0 and "6 telecharge" in lines[-1]
    assert run_cli(raw, [], ["sans_egal"], echo=lines.append) == 1
    assert run_cli(raw, ["inconnue"], [], echo=lines.append) == 1
    (root / "insee_qpv2015" / "IPRO_2022.csv").unlink()
    code = run_cli(
        raw,
        ["insee_qpv2015"],
        [f"insee_qpv2015={url}/insee_qpv2015"],
        force=True,
        echo=lines.append,
    )
    assert code == 1 and "1 erreur" in lines[-1]


def test_fetch_finds_insee_files_on_their_page_and_unzips_them(tmp_path, serve):
    """The INSEE catalogue entries: link found on the publisher's page, ZIP unpacked."""
    import dataclasses
    import zipfile

    root = tmp_path / "site"
    (root / "fichier" / "6041315").mkdir(parents=True)
    contents, links = {}, []
    for base in ("DEMO", "IPRO", "REVN"):
        for year in (2021, 2022):
            name = f"{base}_{year}.csv"
            contents[name] = f"CODGEO;{base}_VAR\nQP059020;{year}\n".encode()
            archive = root / "fichier" / "6041315" / f"{base.lower()}_{year}_csv.zip"
            with zipfile.ZipFile(archive, "w") as zf:
                zf.writestr(f"{base}_{year}/{name}", contents[name])
                zf.writestr(f"{base}_{year}/documentation_{base}_{year}.pdf", b"%PDF-1.4")
            # the spreadsheet version is listed first: the CSV must still be chosen
            links.append(f'<a href="/fichier/6041315/{base}_{year}.xlsx">{base} {year} (xlsx)</a>')
            links.append(
                f'<a href="/fichier/6041315/{archive.name}">Base {base} {year} (csv, 3 Mo)</a>'
            )
    (root / "page.html").write_text(
        "<html><body><h1>Données QPV</h1>" + "\n".join(links) + "</body></html>", "utf-8"
    )
    url, handler = serve(root)
    catalogue = {
        "insee_qpv2015": [
            dataclasses.replace(r, page=f"{url}/page.html") for r in CATALOGUE["insee_qpv2015"]
        ]
    }
    raw = tmp_path / "raw"
    results = fetch(raw, ["insee_qpv2015"], catalogue=catalogue, log=None)
    assert [r.statut for r in results] == ["telecharge"] * 6, [r.message for r in results]
    for result in results:
        assert result.url.endswith("_csv.zip")
        assert (raw / "insee" / result.fichier).read_bytes() == contents[result.fichier]
        assert result.sha256 == hashlib.sha256(contents[result.fichier]).hexdigest()
        assert "extrait de" in result.message and result.fichier in result.message
    assert not list(raw.rglob("*.part")) and not list(raw.rglob("*.zip*"))
    assert {r["statut"] for r in _log_rows(raw)} == {"telecharge"}

    # the page no longer lists the file, or cannot be reached: a clear error per file
    (root / "page.html").write_text("<html><a href='/autre.csv'>autre</a></html>", "utf-8")
    results = fetch(raw, ["insee_qpv2015"], catalogue=catalogue, force=True, log=None)
    assert {r.statut for r in results} == {"erreur"}
    assert "aucun lien" in results[0].message and "page.html" in results[0].message
    gone = {"x": [dataclasses.replace(catalogue["insee_qpv2015"][0], page=f"{url}/absente")]}
    [result] = fetch(raw, ["x"], catalogue=gone, force=True, log=None)
    assert result.statut == "erreur" and "injoignable" in result.message
