"""The approval pack drawn: one Jinja2 template makes the HTML, and WeasyPrint makes the PDF from
that same HTML, so the two never differ.

The renderer draws only the `PackData` it is given (the compliance service assembles it); it
imports no store or service. The PDF renderer fetches nothing: its URL fetcher serves `data:`
URIs (the charts the server drew) and refuses `file:`, `http(s):` and every other scheme.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.packdata import PackData

TEMPLATES = Path(__file__).parent / "templates"
PACK_TEMPLATE = "pack.html.j2"
ALLOWED_SCHEMES = ("data",)

# refused URLs are expected (the fetcher keeps them) and are not the reader's news
logging.getLogger("weasyprint").setLevel(logging.CRITICAL)
logging.getLogger("fontTools").setLevel(logging.ERROR)


@lru_cache(maxsize=1)
def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(pack: PackData) -> str:
    """The pack as one self-contained HTML page (images inline as data: URIs)."""
    return str(
        _environment().get_template(PACK_TEMPLATE).render(p=pack, fingerprint=pack.fingerprint)
    )


def render_pdf(pack: PackData) -> bytes:
    """The pack as PDF, from the very HTML `render_html` makes."""
    return pdf_from_html(render_html(pack))


def data_only_fetcher() -> Any:
    """A WeasyPrint URL fetcher that serves data: URIs and refuses everything else; the refused
    URLs are kept in its `refused` list."""
    from weasyprint import URLFetcher

    class DataOnlyFetcher(URLFetcher):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(allowed_protocols=ALLOWED_SCHEMES, allow_redirects=False)
            self.refused: list[str] = []

        def fetch(self, url: str, headers: Any = None) -> Any:
            scheme = url.split(":", 1)[0].lower() if ":" in url else ""
            if scheme not in ALLOWED_SCHEMES:
                self.refused.append(url)
                raise ValueError(f"The pack renderer fetches nothing; refused {url[:80]!r}.")
            return super().fetch(url, headers)

    return DataOnlyFetcher()


def pdf_from_html(document: str, fetcher: Any = None) -> bytes:
    """HTML to PDF with WeasyPrint, no base URL and a fetcher that only serves data: URIs."""
    from weasyprint import HTML

    chosen = fetcher if fetcher is not None else data_only_fetcher()
    return bytes(HTML(string=document, url_fetcher=chosen).write_pdf())
