"""Message templates in Liquid (python-liquid 2): `{{ profile.traits.firstName | default: "there" }}`,
`{% if %}`, `{% for %}`, filters, a layout wrapping an email's `text` / `html`, and partials
(`{% render "footer.html" %}`).

- Strict: a variable that does not exist is an error (`TemplateRenderError`), so a typo fails
  `python -m infra.journeys validate` instead of sending "Hi ,". `| default: "x"` still works on a
  missing variable, and `{% if missing %}` is false.
- The `html` field (and its layout) is HTML-escaped: `{{ trigger.properties.name }}` holding
  `<script>` comes out as `&lt;script&gt;`. `subject`, `text` and push fields are not.
- `date` takes a time zone: `{{ trigger.timestamp | date: "%b %-d, %H:%M", "Europe/Paris" }}` (an
  ISO-8601 string, epoch seconds or a datetime; no zone: UTC, never the machine's).
- Layout: `{"text": source, "html": source}`, each rendered with the same context plus `content`, the
  rendered field it wraps. Partials: name → source, for `{% render %}` / `{% include %}`. The journey
  compiler inlines both into the send payload (an execution keeps what it started with), so a function
  never reads template files.
- Parsed templates are cached by source (and the partials they can load), so a warm function parses
  a template once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# The fields a layout may wrap, and the field that is HTML.
LAYOUT_FIELDS = ("text", "html")
HTML_FIELD = "html"


class TemplateRenderError(Exception):
    """A template that cannot be rendered: the field (`subject`, `html`, or `partial footer.html`
    within it), the line, the variable (when one is to blame) and what is wrong. Its text names no
    value of the context (no trait, no address): it may be logged and stored in the message log."""

    def __init__(self, field: str, line: int | None, variable: str | None, problem: str) -> None:
        self.field = field
        self.line = line
        self.variable = variable
        self.problem = problem
        where = field + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {problem}")


def render_content(
    content: Mapping[str, str],
    context: Mapping[str, Any],
    *,
    layout: Mapping[str, str] | None = None,
    partials: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every field of `content` rendered with `context` (`profile`, `trigger`, `computed`, `links`);
    `text` and `html` then wrapped in the layout's field of the same name, if it has one. Raises
    TemplateRenderError."""
    from shared.delivery import _liquid

    return _liquid.render_content(content, context, layout=layout, partials=partials)


_PARTIAL_TAG = re.compile(r"""\{%-?\s*(?:render|include)\s+(['"])(?P<name>[^'"]+)\1""")


def partials_used(sources: Iterable[str], partials: Mapping[str, str]) -> dict[str, str]:
    """The partials (name → source) that `sources` render or include, and those they do in turn: what
    a send payload must carry. A name that is not among `partials` is left for rendering to report.
    (A regex over the tags rather than python-liquid's analysis: the analysis loads partials through
    a loader, and here the point is to find which to load.)"""
    found: dict[str, str] = {}
    pending = list(sources)
    while pending:
        for match in _PARTIAL_TAG.finditer(pending.pop()):
            name = match.group("name")
            if name in partials and name not in found:
                found[name] = partials[name]
                pending.append(partials[name])
    return dict(sorted(found.items()))


def roots(
    content: Mapping[str, str],
    *,
    layout: Mapping[str, str] | None = None,
    partials: Mapping[str, str] | None = None,
) -> set[str]:
    """The root variables (`profile`, `trigger`, `computed`, `links`) that the content, its layout and
    the partials they render read: what must be fetched to render it. A template that does not parse
    reads nothing (rendering it reports why)."""
    return {path.split(".", 1)[0] for path in variable_paths(content, layout=layout, partials=partials)}


def variable_paths(
    content: Mapping[str, str],
    *,
    layout: Mapping[str, str] | None = None,
    partials: Mapping[str, str] | None = None,
) -> set[str]:
    """Every global variable path (`computed.orders_count`, `profile.traits.firstName`) read by the
    content, its layout (less `content`) and their partials, by python-liquid's static analysis."""
    from shared.delivery import _liquid

    return _liquid.variable_paths(content, layout=layout, partials=partials)
