"""Message templates: `{{ dotted.path }}` placeholders, with `{{ dotted.path | fallback }}`.

Deliberately tiny (no logic, no loops): it renders in microseconds, has nothing to import at cold
start, and a template can never run code.
"""

from __future__ import annotations

import html
import re
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*(?:\|\s*([^}]*?)\s*)?\}\}")


def _lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def render(template: str, context: dict[str, Any], escape_html: bool = False) -> str:
    def substitute(match: re.Match[str]) -> str:
        value = _lookup(context, match.group(1))
        if value is None or value == "":
            return match.group(2) or ""
        text = str(value)
        return html.escape(text) if escape_html else text

    return _PLACEHOLDER.sub(substitute, template)


def placeholder_paths(text: str) -> list[str]:
    """The dotted path of every placeholder in `text`, in order."""
    return [match.group(1) for match in _PLACEHOLDER.finditer(text)]


def roots(content: dict[str, str]) -> set[str]:
    """The first name of every placeholder's path (`profile`, `trigger`, `computed`): what the
    content reads, so that nothing else need be fetched to render it."""
    return {path.split(".", 1)[0] for text in content.values() for path in placeholder_paths(text)}


def render_content(content: dict[str, str], context: dict[str, Any]) -> dict[str, str]:
    return {name: render(text, context, escape_html=(name == "html")) for name, text in content.items()}
