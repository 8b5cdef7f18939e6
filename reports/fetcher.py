"""URL fetcher for WeasyPrint that serves only files bundled in ``reports/assets/``.

Why: WeasyPrint will otherwise fetch http(s), file:// and data: URLs and can embed what
it reads (security.md §3.2, SEC-PDF-FETCH; attack tests 18 and §1 row 26). Assets are
read once into memory and looked up by exact name, so no path is ever resolved from a
URL: ``lotsen-asset:../x`` is simply not a known name. Every other URL raises a
``FatalURLFetchingError`` subclass, which stops the rendering instead of being logged
and skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

ASSET_SCHEME = "lotsen-asset"
ASSET_PREFIX = f"{ASSET_SCHEME}:"

_MAX_ASSET_BYTES = 2 * 1024 * 1024
_ASSET_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*\.[a-z0-9]+\Z")
_MIME_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "css": "text/css",
        "png": "image/png",
    }
)


class AssetRefusedError(FatalURLFetchingError):  # type: ignore[misc]  # untyped base
    """A URL that is not a bundled asset was requested while rendering."""


def asset_url(name: str) -> str:
    """Return the URL a template uses for bundled asset ``name``."""
    return f"{ASSET_PREFIX}{name}"


@cache
def bundled_assets() -> Mapping[str, tuple[bytes, str]]:
    """Read the allow-listed files of reports/assets/ into memory: name -> (bytes, mime)."""
    found: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("reports").joinpath("assets").iterdir():
        name = entry.name
        if not entry.is_file() or not _ASSET_NAME_RE.match(name):
            continue
        mime = _MIME_TYPES.get(name.rsplit(".", 1)[1])
        if mime is None:
            continue
        data = entry.read_bytes()
        if len(data) > _MAX_ASSET_BYTES:
            raise ValueError(f"bundled asset too large: {name}")
        found[name] = (data, mime)
    return MappingProxyType(found)


class AssetOnlyFetcher(URLFetcher):  # type: ignore[misc]  # weasyprint ships no types
    """WeasyPrint 70 fetcher: ``lotsen-asset:<name>`` from memory, everything else refused.

    WeasyPrint 70 requires a ``URLFetcher`` instance (it reads ``_fail_on_errors`` from
    it), so this subclasses it and replaces ``fetch``; the network and file handlers set
    up by the base class are never reached.
    """

    def __init__(self) -> None:
        #: URLs refused during this rendering. WeasyPrint swallows some errors (e.g. while
        #: drawing SVG), so the renderer checks this list to fail closed regardless.
        self.refused: list[str] = []
        super().__init__(
            timeout=1,
            allowed_protocols=(ASSET_SCHEME,),
            allow_redirects=False,
            fail_on_errors=True,
        )

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        """Serve a bundled asset by exact name or raise ``AssetRefusedError``."""
        asset = None
        if isinstance(url, str) and url.startswith(ASSET_PREFIX):
            asset = bundled_assets().get(url[len(ASSET_PREFIX) :])
        if asset is None:
            self.refused.append(_short(url))
            raise AssetRefusedError(f"refused non-asset URL while rendering: {_short(url)}")
        data, mime = asset
        content_type = f"{mime}; charset=utf-8" if mime.startswith("text/") else mime
        return URLFetcherResponse(url, body=data, headers={"Content-Type": content_type})

    def open(self, url: Any, data: Any = None, timeout: Any = None) -> URLFetcherResponse:
        """Block the inherited urllib opener path too; only string URLs are accepted."""
        return self.fetch(url if isinstance(url, str) else getattr(url, "full_url", ""))


def _short(url: object) -> str:
    """Shorten a refused URL for the error message (a data: URL can be huge)."""
    text = str(url)
    return text if len(text) <= 80 else text[:77] + "..."
