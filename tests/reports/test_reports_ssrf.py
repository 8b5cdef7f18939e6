"""SSRF and local-file reads through WeasyPrint are impossible (security §3.2, §6 case 18)."""

from __future__ import annotations

import base64
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
from reports_testkit import CountingServer, pdf_text, sample_document

import reports
from reports import ReportRenderError, render_decision_html, render_decision_pdf
from reports.fetcher import AssetOnlyFetcher, AssetRefusedError, asset_url, bundled_assets
from reports.render import html_to_pdf

PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
    )
).decode()


@pytest.fixture
def canary_file(tmp_path: Path) -> Path:
    path = tmp_path / "canary.txt"
    path.write_text("LOCAL-FILE-CANARY-5d1e8a")
    return path


@pytest.fixture
def fetch_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every URL WeasyPrint asks our fetcher for."""
    seen: list[str] = []
    original = AssetOnlyFetcher.fetch

    def spy(self: AssetOnlyFetcher, url: str, headers: Any = None) -> Any:
        seen.append(url)
        return original(self, url, headers)

    monkeypatch.setattr(AssetOnlyFetcher, "fetch", spy)
    return seen


def test_user_text_with_urls_fetches_nothing(
    counting_server: CountingServer, canary_file: Path, fetch_spy: list[str]
) -> None:
    payload = (
        f'<img src="{counting_server.url("/img")}"> '
        f'<link rel="stylesheet" href="{counting_server.url("/css")}"> '
        f'<link rel="attachment" href="file://{canary_file}"> '
        "file:///etc/hostname "
        f"file://{canary_file} "
        f'<style>@import url("{counting_server.url("/imp")}");</style>'
    )
    doc = sample_document()
    changes: dict[str, Any] = {
        f.name: payload
        for f in fields(doc)
        if isinstance(getattr(doc, f.name), str) and f.name != "lang"
    }
    hostile = replace(doc, **changes)

    html = render_decision_html(hostile)
    pdf = render_decision_pdf(hostile)
    text = pdf_text(pdf)

    assert counting_server.connections == []
    assert fetch_spy == [asset_url("decision.css")]  # only the bundled stylesheet
    assert "file:///etc/hostname" in text  # shown literally as text
    assert counting_server.url("/img") in text
    assert "LOCAL-FILE-CANARY" not in text and b"LOCAL-FILE-CANARY" not in pdf
    assert b"SSRF-CANARY" not in pdf
    hostname = Path("/etc/hostname").read_text().strip()
    if len(hostname) >= 6:  # a very short hostname could occur by chance
        assert hostname not in text
    assert "<img" not in html


HOSTILE_MARKUP = [
    '<img src="{http}/img">',
    '<link rel="stylesheet" href="{http}/css">',
    '<style>@import url("{http}/import");</style>',
    '<style>body {{ background: url("{http}/bg") }}</style>',
    '<style>@font-face {{ font-family: evil; src: url("{http}/font") }}'
    " p {{ font-family: evil }}</style><p>x</p>",
    '<base href="{http}/"><img src="relative.png">',
    '<svg width="10" height="10"><image href="{http}/svg" width="10" height="10"/></svg>',
    '<object data="{http}/object" type="image/png"></object>',
    '<embed src="{http}/embed" type="image/png">',
    '<link rel="attachment" href="file://{canary}">',
    '<img src="file://{canary}">',
    '<img src="file:///etc/hostname">',
    '<link rel="stylesheet" href="file:///etc/hostname">',
    '<img src="data:image/png;base64,{png}">',
    '<link rel="stylesheet" href="data:text/css,body{{color:red}}">',
    '<img src="lotsen-asset:../assets/decision.css">',
    '<link rel="stylesheet" href="lotsen-asset:../../render.py">',
]


@pytest.mark.parametrize("markup", HOSTILE_MARKUP)
def test_renderer_refuses_any_non_asset_resource(
    markup: str, counting_server: CountingServer, canary_file: Path
) -> None:
    """Even markup a template bug let through cannot reach the network or the disk."""
    http = f"http://127.0.0.1:{counting_server.port}"
    html = (
        "<!DOCTYPE html><html><head><title>t</title></head><body><p>x</p>"
        + markup.format(http=http, canary=canary_file, png=PNG_1PX)
        + "</body></html>"
    )
    with pytest.raises(ReportRenderError):
        html_to_pdf(html)
    assert counting_server.connections == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/x",
        "https://127.0.0.1:{port}/x",
        "http://169.254.169.254/latest/meta-data/",
        "ftp://127.0.0.1:{port}/x",
        "file:///etc/hostname",
        "file://{canary}",
        "data:text/css,body{{color:red}}",
        "data:image/png;base64,{png}",
        "decision.css",
        "../assets/decision.css",
        "lotsen-asset:",
        "lotsen-asset:../assets/decision.css",
        "lotsen-asset:/etc/hostname",
        "lotsen-asset:///etc/hostname",
        "lotsen-asset://127.0.0.1:{port}/decision.css",
        "lotsen-asset:decision.css/../../render.py",
        "lotsen-asset:%2e%2e/render.py",
        "lotsen-asset:..%2Frender.py",
        "lotsen-asset:decision.css?x=1",
        "lotsen-asset:decision.css#x",
        "lotsen-asset:DECISION.CSS",
        "LOTSEN-ASSET:decision.css",
        "lotsen-asset:nonexistent.css",
        "lotsen-asset:__init__.py",
    ],
)
def test_fetcher_refuses_everything_but_bundled_assets(
    url: str, counting_server: CountingServer, canary_file: Path
) -> None:
    fetcher = AssetOnlyFetcher()
    resolved = url.format(port=counting_server.port, canary=canary_file, png=PNG_1PX)
    with pytest.raises(AssetRefusedError):
        fetcher.fetch(resolved)
    with pytest.raises(AssetRefusedError):
        fetcher(resolved)  # WeasyPrint calls the fetcher object
    with pytest.raises(AssetRefusedError):
        fetcher.open(resolved)  # the inherited urllib opener path
    assert counting_server.connections == []


def test_fetcher_serves_bundled_css() -> None:
    response = AssetOnlyFetcher().fetch(asset_url("decision.css"))
    try:
        body = response.read()
    finally:
        response.close()
    css_path = Path(reports.__file__).parent / "assets" / "decision.css"
    assert body == css_path.read_bytes()
    assert response.content_type == "text/css"
    assert response.charset == "utf-8"


def test_bundled_assets_are_only_allowlisted_names() -> None:
    assets = bundled_assets()
    assert "decision.css" in assets
    assert all("/" not in name and ".." not in name for name in assets)


def test_template_referencing_an_asset_renders_with_it(fetch_spy: list[str]) -> None:
    """The stylesheet arrives through the fetcher and visibly shapes the PDF."""
    html = (
        "<!DOCTYPE html><html><head><title>t</title>"
        f'<link rel="stylesheet" href="{asset_url("decision.css")}"></head>'
        '<body><span class="doc-id">ASSET-WORKS-42</span></body></html>'
    )
    text = pdf_text(html_to_pdf(html))
    assert fetch_spy == [asset_url("decision.css")]
    assert "1 / 1" in text  # @page counter from decision.css
    assert text.count("ASSET-WORKS-42") == 2  # body + running footer via string-set


def test_harness_detects_a_real_fetch(counting_server: CountingServer) -> None:
    """Positive control: WeasyPrint's own fetcher does reach the server, so 0 means 0."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    html = f'<img src="{counting_server.url("/control")}"><p>x</p>'
    HTML(string=html, url_fetcher=URLFetcher(timeout=2)).write_pdf()
    assert "GET /control" in counting_server.connections
