"""The ``/docs`` page: Swagger UI 5 from the service itself, nothing from a CDN.

The page and its files come from ``create_app(settings)`` in this process behind starlette's ``TestClient``
(``InProcessApi`` in conftest.py): the app's routes and static mount, as a served app answers them.
"""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from conftest import InProcessApi

JS_TYPES = ("text/javascript", "application/javascript")


class AssetLinks(HTMLParser):
    """The scripts, stylesheets and every other ``src``/``href`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        for name in ("src", "href"):
            if name in values:
                self.links.append(values[name])
        if tag == "script" and values.get("src"):
            self.scripts.append(values["src"])
        if tag == "link" and "stylesheet" in values.get("rel", "").split():
            self.stylesheets.append(values["href"])


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """An anonymous client: the docs page and its files need no token."""
    with InProcessApi(tmp_path_factory.mktemp("docs") / "home", with_token=False) as api:
        yield api.client


@pytest.fixture
def page(client) -> tuple[str, AssetLinks]:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    links = AssetLinks()
    links.feed(response.text)
    return response.text, links


def test_docs_page_names_no_external_host(page):
    html, links = page
    assert links.scripts and links.stylesheets, "the page loads no script or stylesheet"
    assert not re.search(r"https?://", html, re.IGNORECASE), "the page names an http(s) URL"
    for link in links.links:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc, f"{link!r} is on another host"  # also //cdn.example/...


def test_every_script_and_stylesheet_is_served_by_the_service(client, page):
    _, links = page
    for kind, urls, types in (("script", links.scripts, JS_TYPES), ("stylesheet", links.stylesheets, ("text/css",))):
        for url in urls:
            response = client.get(client.base_url.join("/docs").join(url))
            assert response.status_code == 200, f"{kind} {url}: {response.status_code}"
            content_type = response.headers["content-type"].split(";")[0].strip()
            assert content_type in types, f"{kind} {url}: {content_type}"
            assert len(response.content) > 10_000, f"{kind} {url}: {len(response.content)} bytes"


def test_the_script_is_swagger_ui_5_or_later(client, page):
    """FastAPI's document is OpenAPI 3.1, which Swagger UI renders only from version 5."""
    _, links = page
    bundle = next(url for url in links.scripts if url.endswith("swagger-ui-bundle.js"))
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"', client.get(bundle).text)
    assert version is not None, "no Swagger UI version in the bundle"
    assert int(version.group(1)) >= 5, version.group(0)
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")


def test_the_stylesheets_load_nothing_from_elsewhere(client, page):
    _, links = page
    for url in links.stylesheets:
        css = client.get(url).text
        assert "@import" not in css
        targets = [css[match.end() :].lstrip(" '\"")[:5] for match in re.finditer(r"url\(", css)]
        assert all(target == "data:" for target in targets), url


def test_favicon_and_oauth2_redirect_are_local(client, page):
    _, links = page
    icons = [link for link in links.links if link.endswith(".png")]
    assert icons
    for icon in icons:
        response = client.get(icon)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
    redirect = client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert "swaggerUIRedirectOauth2" in redirect.text


def test_openapi_is_served_and_does_not_list_the_docs_routes(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/health" in paths
    assert not [path for path in paths if path.startswith("/docs")]
    assert client.get("/redoc").status_code == 404  # FastAPI's own pages are off (ReDoc would load a CDN script)
