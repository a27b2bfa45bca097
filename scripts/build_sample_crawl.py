"""Build the bundled sample crawl: a CommonCrawl-style WARC of Debian's multilingual manuals.

The Debian Reference ships as HTML in English, German, Spanish, French, Indonesian, Italian,
Japanese, Portuguese and Simplified and Traditional Chinese (debian-reference-LANG), the Debian
FAQ in English, German, French, Italian, Japanese, Korean, Dutch, Portuguese, Russian and
Simplified Chinese (debian-faq, debian-faq-LANG). Each page becomes a request/response/metadata
triple under its www.debian.org URL, wrapped in site boilerplate (navigation, footer) as a
crawler would see it, in a seeded random order. Translations of one page share the URL stem
(`ch01.de.html` / `ch01.en.html`), which is the document alignment used to judge mined pairs.

    python scripts/build_sample_crawl.py --output data/sample/sample-crawl.warc.gz

Needs apt-get (download only, nothing is installed) and dpkg-deb.
"""

from __future__ import annotations

import argparse
import io
import random
import re
import subprocess
import tempfile
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

REFERENCE_LANGS = ("en", "de", "es", "fr", "id", "it", "ja", "pt", "zh-cn", "zh-tw")
FAQ_LANGS = ("de", "fr", "it", "ja", "ko", "nl", "pt", "ru", "zh-cn")
PACKAGES = [
    *(f"debian-reference-{lang}" for lang in REFERENCE_LANGS),
    "debian-faq",  # English
    *(f"debian-faq-{lang}" for lang in FAQ_LANGS),
]
SITE = "https://www.debian.org/doc/manuals"
LANG_SUFFIX = re.compile(r"\.([a-z]{2}(?:-[a-z]{2})?)\.html$")
NAV = {
    "en": ["About Debian", "Getting Debian", "Support", "Developers' Corner"],
    "de": ["Über Debian", "Debian bekommen", "Unterstützung", "Entwickler-Ecke"],
    "es": ["Acerca de Debian", "Obtener Debian", "Soporte", "Rincón de los desarrolladores"],
    "fr": ["À propos de Debian", "Obtenir Debian", "Assistance", "Coin des développeurs"],
    "id": ["Tentang Debian", "Mendapatkan Debian", "Dukungan", "Pojok Pengembang"],
    "it": ["Informazioni su Debian", "Ottenere Debian", "Supporto", "Angolo degli sviluppatori"],
    "ja": ["Debian について", "Debian の入手", "サポート", "開発者の部屋"],
    "ko": ["데비안 소개", "데비안 구하기", "지원", "개발자 코너"],
    "nl": ["Over Debian", "Debian verkrijgen", "Ondersteuning", "Hoekje voor ontwikkelaars"],
    "pt": ["Sobre o Debian", "Obtendo o Debian", "Suporte", "Canto dos desenvolvedores"],
    "ru": ["О Debian", "Получение Debian", "Поддержка", "Уголок разработчика"],
    "zh-cn": ["关于 Debian", "获取 Debian", "支持", "开发者天地"],
    "zh-tw": ["關於 Debian", "取得 Debian", "支援", "開發者天地"],
}
FOOTER = (
    "Copyright © 1997-2024 SPI and others; See license terms. "
    "Debian is a registered trademark of Software in the Public Interest, Inc."
)
HTTP_LANG = {lang: lang.split("-")[0] + lang[2:].upper() for lang in NAV}  # zh-cn -> zh-CN


def fetch_packages(workdir: Path) -> Path:
    debs, root = workdir / "debs", workdir / "root"
    debs.mkdir()
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, check=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def pages(root: Path) -> list[tuple[str, str, Path]]:
    """(url, lang, file) for every real (non-symlink) translated HTML page."""
    found = []
    for manual, folder in (
        ("debian-reference", root / "usr/share/debian-reference"),
        ("debian-faq", root / "usr/share/doc/debian/FAQ"),
    ):
        for path in sorted(folder.rglob("*.html")):
            match = LANG_SUFFIX.search(path.name)
            if path.is_symlink() or not match or match.group(1) not in NAV:
                continue
            found.append((f"{SITE}/{manual}/{path.name}", match.group(1), path))
    return found


def with_boilerplate(html: str, lang: str) -> str:
    nav = " | ".join(f'<a href="/{i}">{item}</a>' for i, item in enumerate(NAV[lang]))
    header = f'<div id="header"><a href="/">Debian</a><div id="navbar">{nav}</div></div>'
    footer = f'<div id="footer"><hr/><p>{FOOTER}</p><p>Last Modified: 2024-05-18</p></div>'
    html = re.sub(r"(<body[^>]*>)", r"\1" + header, html, count=1)
    return re.sub(r"(</body>)", footer + r"\1", html, count=1)


def write_warc(entries: list[tuple[str, str, Path]], output: Path, seed: int) -> None:
    rng = random.Random(seed)
    entries = entries[:]
    rng.shuffle(entries)
    with open(output, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        writer.write_record(
            writer.create_warcinfo_record(
                output.name,
                {
                    "software": "ccmine scripts/build_sample_crawl.py",
                    "isPartOf": "ccmine-sample",
                    "description": "Debian Reference and Debian FAQ in " + ", ".join(NAV),
                },
            )
        )
        for url, lang, path in entries:
            body = with_boilerplate(path.read_text("utf-8"), lang).encode("utf-8")
            host_path = url.split("://", 1)[1].split("/", 1)[1]
            request = StatusAndHeaders(
                f"GET /{host_path} HTTP/1.1",
                [
                    ("Host", "www.debian.org"),
                    ("User-Agent", "CCBot/2.0 (https://commoncrawl.org/faq/)"),
                    ("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
                    ("Accept-Language", "en-US,en;q=0.5"),
                ],
                protocol="HTTP/1.1",
                is_http_request=True,
            )
            response = StatusAndHeaders(
                "200 OK",
                [
                    ("Date", "Sat, 18 May 2024 01:58:10 GMT"),
                    ("Server", "Apache"),
                    ("Content-Language", HTTP_LANG[lang]),
                    ("Vary", "negotiate,accept-language,Accept-Encoding"),
                    ("Content-Type", "text/html; charset=UTF-8"),
                    ("Content-Length", str(len(body))),
                ],
                protocol="HTTP/1.1",
            )
            req = writer.create_warc_record(
                url, "request", payload=io.BytesIO(b""), http_headers=request
            )
            resp = writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), http_headers=response
            )
            meta = writer.create_warc_record(
                url,
                "metadata",
                payload=io.BytesIO(b"fetchTimeMs: 120\r\n"),
                warc_content_type="application/warc-fields",
            )
            for record in (req, resp, meta):
                writer.write_record(record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("data/sample/sample-crawl.warc.gz"))
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        entries = pages(fetch_packages(Path(tmp)))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_warc(entries, args.output, args.seed)
    counts = {lang: sum(1 for _, entry_lang, _ in entries if entry_lang == lang) for lang in NAV}
    size = args.output.stat().st_size
    print(f"wrote {args.output}: {len(entries)} pages {counts}, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
