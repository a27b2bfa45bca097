"""Payload bytes to text: charset handling and main-content extraction with Resiliparse."""

from __future__ import annotations

import codecs

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import HTMLTree

REPLACEMENT = "\ufffd"


def _known_codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_payload(payload: bytes, charset: str | None, is_html: bool) -> str:
    """Decode with the declared charset, else the HTML meta tag, else uchardet detection.

    Undecodable bytes become U+FFFD; the sentence filter drops sentences that contain it.
    """
    encoding = _known_codec(charset) or detect_encoding(payload, from_html_meta=is_html)
    return bytes_to_str(payload, encoding, errors="replace")


def html_to_text(html: str, main_content: bool = True) -> str:
    """Visible text of an HTML page, one block (paragraph, heading, list item) per line.

    main_content=True applies Resiliparse's boilerplate heuristics (drops navigation, footers,
    and also some lists and tables); False keeps all visible text.
    """
    tree = HTMLTree.parse(html)
    return extract_plain_text(
        tree,
        preserve_formatting=True,
        main_content=main_content,
        list_bullets=False,
        alt_texts=False,
    )
