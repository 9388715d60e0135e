"""GET /docs: Swagger UI over /openapi.json, with its script and style served by the ingest function
itself (GET /docs/<asset>) rather than from a CDN, so the page works offline and loads nothing from a
third party.

The assets come from the swagger-ui-py package (Swagger UI 5, which renders OpenAPI 3.1). Only its
`static/` files are used, found without importing the package (its `__init__` pulls in jinja2 and
web-framework handlers); the Lambda layer ships just the files named in ASSETS. Imported only when
/docs is asked for: nothing of it at cold start.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

ASSETS_PACKAGE = "swagger_ui"
ASSETS_FOLDER = "static"
# The files the page loads, with their content types: everything served under /docs/.
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
}
HTML = "text/html; charset=utf-8"

# Relative URLs: the page is /docs, so these resolve to /docs/<asset> and /openapi.json wherever the
# API is mounted.
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Continuum API</title>
<link rel="stylesheet" href="docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""


class AssetsMissingError(Exception):
    """The Swagger UI assets are not installed (the swagger-ui-py package, or the layer's copy)."""


def assets_dir() -> Path:
    # find_spec locates the package without running its __init__ (a namespace package in the layer).
    spec = importlib.util.find_spec(ASSETS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise AssetsMissingError(f"the {ASSETS_PACKAGE} package (swagger-ui-py) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / ASSETS_FOLDER


@cache
def asset(name: str) -> tuple[str, str] | None:
    """(body, content type) of a file the page loads; None for any other name."""
    content_type = ASSETS.get(name)
    if content_type is None:
        return None
    return (assets_dir() / name).read_text(encoding="utf-8"), content_type


def page(path: str) -> tuple[str, str] | None:
    """What GET `path` answers under /docs: the page itself, or one of its assets."""
    if path == "/docs":
        return PAGE, HTML
    return asset(path.removeprefix("/docs/")) if path.startswith("/docs/") else None
