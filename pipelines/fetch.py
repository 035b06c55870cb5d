"""``observatoire fetch``: download the official files into ``data/raw/`` (the only network use).

Each file of the catalogue is downloaded into its raw folder (``sig_ville/``, ``insee/``,
``referentiels/``) through a ``<name>.part`` file, resumed with an HTTP ``Range`` request when a
previous download was interrupted, checked against its expected SHA-256 (or the checksum
published by data.gouv.fr) and only then renamed to its final name. Every attempt is appended to
``<raw_dir>/fetch_log.csv`` (date, source, URL, file, size, SHA-256, status, message; a text
cell a spreadsheet would take for a formula is prefixed with ``'``). A file
already present is not downloaded again unless ``force=True``.

Addresses: a source has either a direct ``base_url`` (the file is ``base_url + fichier``), or a
data.gouv.fr dataset whose resources are listed by the public API (the file is the resource whose
title or URL matches ``titre``), or a publisher's HTML ``page`` whose links are read to find
the file by its name (``lien``: the INSEE bases, whose addresses change with each publication;
a ZIP found there is unpacked, only its matching member is kept). ``base_urls`` overrides the
address of a source (a mirror, a local server for the tests).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

from pipelines.lib.files import sha256_file as sha256_of
from pipelines.publication.cells import neutralise_formula

DATA_GOUV_API = "https://www.data.gouv.fr/api/1"
LOG_NAME = "fetch_log.csv"
LOG_COLUMNS = [
    "horodatage",
    "source",
    "url",
    "fichier",
    "octets",
    "sha256",
    "statut",
    "message",
]
CHUNK = 1 << 16
USER_AGENT = "observatoire-qpv (fetch)"


@dataclass(frozen=True)
class Resource:
    """One official file and where it goes in raw_dir."""

    source: str
    fichier: str
    dossier: str
    base_url: str | None = None
    dataset: str | None = None
    titre: str | None = None
    sha256: str | None = None
    page: str = ""
    # On a publisher's HTML page (``page``), the link whose file name or text matches ``lien``;
    # a ZIP found there is unpacked: its member matching ``membre`` (default: ``fichier``).
    lien: str | None = None
    membre: str | None = None


_ANCT_DATASET = "quartiers-prioritaires-de-la-politique-de-la-ville-qpv"
_ANCT_PAGE = f"https://www.data.gouv.fr/fr/datasets/{_ANCT_DATASET}/"
_INSEE_QPV2015_PAGE = "https://www.insee.fr/fr/statistiques/6041315?sommaire=2500477"

CATALOGUE: dict[str, list[Resource]] = {
    "anct_contours_2024": [
        Resource(
            "anct_contours_2024",
            "QP2024_France_Hexagonale_Outre_Mer_WGS84.geojson",
            "sig_ville",
            dataset=_ANCT_DATASET,
            titre=r"(?i)qp.?2024.*(wgs84|geojson|zip)",
            page=_ANCT_PAGE,
        )
    ],
    "anct_liste_2024": [
        Resource(
            "anct_liste_2024",
            "listeqp2024-cog2024.csv",
            "sig_ville",
            dataset=_ANCT_DATASET,
            titre=r"(?i)liste.?qp.?2024",
            page=_ANCT_PAGE,
        )
    ],
    # INSEE publishes each base as a CSV (often zipped) linked from the product page; the link
    # is found by its name (e.g. ``.../fichier/<id>/IPRO_2022_csv.zip``), the member unpacked.
    "insee_qpv2015": [
        Resource(
            "insee_qpv2015",
            f"{base}_{year}.csv",
            "insee",
            page=_INSEE_QPV2015_PAGE,
            lien=rf"(?i)(^|[^a-z]){base}[^/]{{0,30}}{year}",
            membre=rf"(?i)(^|[^a-z]){base}[^/]{{0,30}}{year}[^/]*\.csv$",
        )
        for base in ("DEMO", "IPRO", "REVN")
        for year in (2021, 2022)
    ],
}


@dataclass
class Resultat:
    source: str
    fichier: str
    url: str | None
    chemin: Path
    statut: str  # telecharge | repris | deja_present | sans_adresse | erreur
    octets: int = 0
    sha256: str | None = None
    message: str = ""


class FetchError(Exception):
    """A download failed (network, HTTP status, checksum)."""


def _open(url: str, headers: dict | None = None, timeout: float = 60):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) only


def resolve_data_gouv(resource: Resource, api_url: str, timeout: float) -> tuple[str, dict]:
    """(URL, checksum {type: value}) of the dataset resource whose title or URL matches."""
    url = f"{api_url.rstrip('/')}/datasets/{resource.dataset}/"
    try:
        with _open(url, {"Accept": "application/json"}, timeout) as response:
            data = json.load(response)
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError, OSError) as err:
        raise FetchError(f"API data.gouv.fr injoignable ({url}): {err}") from None
    pattern = re.compile(resource.titre or re.escape(resource.fichier))
    for res in data.get("resources", []):
        if pattern.search(res.get("title") or "") or pattern.search(res.get("url") or ""):
            checksum = res.get("checksum") or {}
            found = {checksum["type"]: checksum["value"]} if checksum.get("type") else {}
            return res["url"], found
    raise FetchError(
        f"aucune resource du jeu {resource.dataset} ne correspond à « {resource.titre} »"
    )


class _Links(HTMLParser):
    """(href, text) of every ``<a>`` of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href, self._text = dict(attrs).get("href"), []

    def handle_data(self, data):
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._href:
            self.links.append((self._href, " ".join("".join(self._text).split())))
            self._href = None


def resolve_page_link(resource: Resource, timeout: float) -> str:
    """URL of the link of ``resource.page`` whose file name (else text) matches ``lien``.

    Several matches: a CSV (or zipped CSV) is preferred to a spreadsheet, then the first one.
    """
    try:
        with _open(resource.page, {"Accept": "text/html"}, timeout) as response:
            charset = response.headers.get_content_charset() or "utf-8"
            html = response.read().decode(charset, errors="replace")
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise FetchError(f"page {resource.page} injoignable: {err}") from None
    parser = _Links()
    parser.feed(html)
    pattern = re.compile(resource.lien or re.escape(resource.fichier))
    found = []
    for href, text in parser.links:
        name = urllib.parse.unquote(urllib.parse.urlsplit(href).path.rsplit("/", 1)[-1])
        if pattern.search(name) or (not name and pattern.search(text)):
            found.append(urllib.parse.urljoin(resource.page, href))
    if not found:
        raise FetchError(
            f"aucun lien de {resource.page} ne correspond à « {resource.lien} » "
            f"({resource.fichier}) : la page a changé ? télécharger à la main dans le dossier, "
            f"ou donner base_urls[{resource.source!r}]"
        )
    found.sort(key=lambda u: 0 if "csv" in u.lower() else 1)
    return found[0]


def _address(
    resource: Resource, base_urls: dict[str, str], api_url: str, timeout: float
) -> tuple[str | None, dict]:
    base = base_urls.get(resource.source) or resource.base_url
    if base:
        return f"{base.rstrip('/')}/{resource.fichier}", {}
    if resource.dataset:
        return resolve_data_gouv(resource, api_url, timeout)
    if resource.lien and resource.page:
        return resolve_page_link(resource, timeout), {}
    return None, {}


def _is_zip(url: str, resource: Resource) -> bool:
    path = urllib.parse.urlsplit(url).path.lower()
    return path.endswith(".zip") and not resource.fichier.lower().endswith(".zip")


def _unzip(archive: Path, resource: Resource, target: Path) -> str:
    """Unpack the member of ``archive`` matching ``resource.membre`` into ``target``."""
    pattern = re.compile(resource.membre or f"(?i)(^|/){re.escape(resource.fichier)}$")
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if not m.endswith("/") and pattern.search(m)]
            if len(members) != 1:
                raise FetchError(
                    f"{archive.name}: {len(members)} fichier(s) correspondent à "
                    f"« {pattern.pattern} » dans l'archive ({', '.join(zf.namelist()[:8])})"
                )
            tmp = target.with_name(target.name + ".unzip")
            with zf.open(members[0]) as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
    except zipfile.BadZipFile as err:
        raise FetchError(f"{archive.name}: archive ZIP illisible ({err})") from None
    os.replace(tmp, target)
    return members[0]


def _download(url: str, part: Path, timeout: float) -> tuple[bool, int]:
    """Download url into part, resuming from its size. Returns (resumed, total bytes)."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = _open(url, headers, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the .part is already complete
            return True, offset
        raise FetchError(f"HTTP {err.code} pour {url}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise FetchError(f"{url} injoignable: {err}") from None
    with response:
        resumed = offset > 0 and response.status == 206
        mode = "ab" if resumed else "wb"
        expected = response.headers.get("Content-Length")
        written = 0
        with part.open(mode) as fh:
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    fh.write(block)
                    written += len(block)
            except (OSError, TimeoutError, urllib.error.URLError) as err:
                raise FetchError(f"téléchargement interrompu ({url}): {err}") from None
        if expected is not None and written < int(expected):
            raise FetchError(f"téléchargement interrompu ({url}): {written}/{expected} octets")
    return resumed, part.stat().st_size


def _verify(path: Path, expected_sha256: str | None, published: dict) -> str:
    digest = sha256_of(path)
    if expected_sha256 and digest != expected_sha256.lower():
        raise FetchError(f"empreinte SHA-256 inattendue pour {path.name} ({digest})")
    for kind, value in published.items():
        kind = kind.lower().replace("-", "")
        if kind in hashlib.algorithms_available:
            h = hashlib.new(kind)
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            if h.hexdigest() != str(value).lower():
                raise FetchError(f"somme {kind} publiée différente pour {path.name}")
    return digest


def _append_log(raw_dir: Path, result: Resultat) -> None:
    """One line of ``fetch_log.csv``. Its text cells come from the network (URL, server
    messages, file names found on a page): one a spreadsheet would evaluate as a formula is
    written with a leading ``'`` (:func:`pipelines.publication.cells.neutralise_formula`)."""
    log = raw_dir / LOG_NAME
    new = not log.exists()
    with log.open("a", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        if new:
            writer.writerow(LOG_COLUMNS)
        cells = [
            datetime.now(UTC).isoformat(timespec="seconds"),
            result.source,
            result.url or "",
            str(result.chemin),
            result.octets,
            result.sha256 or "",
            result.statut,
            result.message,
        ]
        writer.writerow([neutralise_formula(c) if isinstance(c, str) else c for c in cells])


def fetch(
    raw_dir: Path,
    sources: Iterable[str] | None = None,
    base_urls: dict[str, str] | None = None,
    *,
    force: bool = False,
    catalogue: dict[str, list[Resource]] | None = None,
    api_url: str = DATA_GOUV_API,
    retries: int = 3,
    timeout: float = 60,
    log: Callable[[str], None] | None = print,
) -> list[Resultat]:
    """Download the files of the chosen sources (all by default) into raw_dir.

    Never raises for one file: each file gives a :class:`Resultat` (statut ``erreur`` with the
    reason when it failed) and a line of ``fetch_log.csv``. Raises ValueError for an unknown
    source name.
    """
    raw_dir = Path(raw_dir)
    catalogue = catalogue or CATALOGUE
    base_urls = dict(base_urls or {})
    names = list(sources) if sources else list(catalogue)
    unknown = [n for n in [*names, *base_urls] if n not in catalogue]
    if unknown:
        raise ValueError(f"source(s) inconnue(s) {unknown} ; sources : {', '.join(catalogue)}")
    say = log or (lambda _msg: None)
    results = []
    for name in names:
        for resource in catalogue[name]:
            target = raw_dir / resource.dossier / resource.fichier
            result = _fetch_one(resource, target, base_urls, api_url, force, retries, timeout)
            say(
                f"{result.statut:<13} {resource.source}: {target}"
                + (f" ({result.message})" if result.message else "")
            )
            raw_dir.mkdir(parents=True, exist_ok=True)
            _append_log(raw_dir, result)
            results.append(result)
    return results


def _fetch_one(
    resource: Resource,
    target: Path,
    base_urls: dict[str, str],
    api_url: str,
    force: bool,
    retries: int,
    timeout: float,
) -> Resultat:
    result = Resultat(resource.source, resource.fichier, None, target, "erreur")
    if target.exists() and not force:
        digest = sha256_of(target)
        if not resource.sha256 or digest == resource.sha256.lower():
            result.statut, result.sha256 = "deja_present", digest
            result.octets = target.stat().st_size
            return result
    try:
        url, published = _address(resource, base_urls, api_url, timeout)
    except FetchError as err:
        result.message = str(err)
        return result
    result.url = url
    if url is None:
        result.statut = "sans_adresse"
        result.message = (
            f"pas d'adresse directe connue : télécharger depuis {resource.page} dans "
            f"{target.parent}, ou donner base_urls[{resource.source!r}]"
        )
        return result
    target.parent.mkdir(parents=True, exist_ok=True)
    archive = _is_zip(url, resource)
    part = target.with_name(target.name + (".zip.part" if archive else ".part"))
    if force and part.exists():
        part.unlink()
    resumed_any = part.exists() and part.stat().st_size > 0
    last_error = None
    for attempt in range(retries):
        try:
            resumed, size = _download(url, part, timeout)
            resumed_any = resumed_any or resumed
            digest = _verify(part, None if archive else resource.sha256, published)
            if archive:
                member = _unzip(part, resource, target)
                zip_digest, digest = digest, _verify(target, resource.sha256, {})
                result.message = (
                    f"extrait de {url.rsplit('/', 1)[-1]}:{member} (SHA-256 {zip_digest})"
                )
                size = target.stat().st_size
                part.unlink()
        except FetchError as err:
            last_error = err
            if "empreinte" in str(err) or "somme" in str(err):
                part.unlink(missing_ok=True)  # corrupt: restart from zero next time
            time.sleep(min(0.2 * (attempt + 1), 1.0))
            continue
        if not archive:
            os.replace(part, target)
        result.statut = "repris" if resumed_any else "telecharge"
        result.octets, result.sha256 = size, digest
        return result
    result.message = str(last_error)
    return result


def run_cli(
    raw_dir: Path,
    sources: Iterable[str] = (),
    base_url_items: Iterable[str] = (),
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> int:
    """What ``observatoire fetch`` does: parse ``SOURCE=URL`` items, fetch, summarise.

    Returns the exit code: 1 when a file failed (statut ``erreur``) or an argument is wrong, else
    0 (a source without a known address is reported, not an error).
    """
    base_urls = {}
    for item in base_url_items:
        name, sep, url = item.partition("=")
        if not sep or not url:
            echo(f"--base-url attend SOURCE=URL (reçu « {item} »)")
            return 1
        base_urls[name.strip()] = url.strip()
    try:
        results = fetch(raw_dir, list(sources) or None, base_urls, force=force, log=echo)
    except ValueError as err:
        echo(str(err))
        return 1
    counts: dict[str, int] = {}
    for result in results:
        counts[result.statut] = counts.get(result.statut, 0) + 1
    echo(
        "Résumé : "
        + ", ".join(f"{n} {statut}" for statut, n in sorted(counts.items()))
        + f" ; journal : {Path(raw_dir) / LOG_NAME}"
    )
    return 1 if counts.get("erreur") else 0
