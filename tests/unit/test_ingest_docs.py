"""GET /docs: Swagger UI with its assets served by Continuum itself, never from a CDN."""

from __future__ import annotations

import re
import sys
from urllib.parse import urljoin

from shared.ingest import docs


def test_the_page_loads_nothing_from_another_host() -> None:
    html, content_type = docs.page("/docs") or ("", "")
    assert content_type.startswith("text/html")
    assert re.findall(r"(?:https?:)?//", html) == []


def test_every_file_the_page_loads_is_served_under_docs_with_its_content_type() -> None:
    html, _ = docs.page("/docs") or ("", "")
    loaded = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert loaded
    for url in loaded:
        found = docs.page(urljoin("/docs", url))
        assert found is not None, url
        body, content_type = found
        assert content_type.split(";")[0] == ("text/css" if url.endswith(".css") else "text/javascript")
        assert len(body) > 10_000


def test_the_script_is_swagger_ui_5_which_renders_openapi_3_1() -> None:
    body, _ = docs.asset("swagger-ui-bundle.js") or ("", "")
    assert "SwaggerUIBundle" in body
    # Swagger UI 4 shows "Unable to render this definition" for the `openapi: 3.1.0` document.
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.', body)
    assert version is not None and int(version.group(1)) >= 5


def test_only_the_pages_assets_are_served() -> None:
    assert docs.page("/docs/../pyproject.toml") is None
    assert docs.page("/docs/swagger-ui-bundle.js.map") is None
    assert docs.page("/docs/index.html") is None
    assert docs.page("/docs-other") is None


def test_the_assets_package_is_found_without_running_its_code() -> None:
    sys.modules.pop("swagger_ui", None)
    docs.assets_dir()
    assert "swagger_ui" not in sys.modules
