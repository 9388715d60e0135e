"""Templates: render cost per message of the send gate's renderer, python-liquid (parsed templates
cached by source, as a warm deliver function has them) against the hand-written `{{ path | fallback }}`
regex renderer it replaced, on the cart reminder email (subject, text, html), measured side by side in
one run and reported as ratios. Also: the first render of a template (parse + render, what a cold
function pays once per template) and the import of the renderer in a fresh interpreter (cold start).

`BENCH_ONLY=templates python -m benchmarks` runs just this one."""

from __future__ import annotations

import html
import re
import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 7
NUMBER = 2000

# -- the renderer Liquid replaced (shared/delivery/templates.py before issue 10), kept here as the
# baseline: a regex substitution of `{{ dotted.path }}` / `{{ dotted.path | fallback }}`.
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*(?:\|\s*([^}]*?)\s*)?\}\}")


def _lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _regex_render(template: str, context: dict[str, Any], escape_html: bool = False) -> str:
    def substitute(match: re.Match[str]) -> str:
        value = _lookup(context, match.group(1))
        if value is None or value == "":
            return match.group(2) or ""
        text = str(value)
        return html.escape(text) if escape_html else text

    return _PLACEHOLDER.sub(substitute, template)


def regex_render_content(content: dict[str, str], context: dict[str, Any]) -> dict[str, str]:
    return {
        name: _regex_render(text, context, escape_html=(name == "html")) for name, text in content.items()
    }


# The cart reminder as shipped before issue 10 (journeys/cart_abandonment/templates/cart-reminder.yaml).
REGEX_CONTENT = {
    "subject": "{{ trigger.properties.name | Your cart }} is waiting for you",
    "text": "Hi {{ profile.traits.firstName | there }},\n\nYou left {{ trigger.properties.name | something }}"
    " in your cart. It is still there when you are ready.\n",
    "html": "<p>Hi {{ profile.traits.firstName | there }},</p>\n<p>You left <strong>"
    "{{ trigger.properties.name | something }}</strong> in your cart.\nIt is still there when you are"
    " ready.</p>\n",
}

CONTEXT: dict[str, Any] = {
    "profile": {"profileId": "p-1", "traits": {"firstName": "Ada", "email": "ada@example.com"}},
    "trigger": {
        "event": "Product Added",
        "properties": {"name": "Red & Blue shoes", "cart_id": "c-1"},
        "timestamp": "2024-05-01T12:00:00.000Z",
    },
    "computed": {},
    "links": {
        "preferences": "https://example.com/preferences/eyJwIjoicHJlZmVyZW5jZXMifQ.sig",
        "unsubscribe": "https://example.com/unsubscribe/eyJwIjoidW5zdWJzY3JpYmUifQ.sig",
    },
}


def _median_us(function: Any) -> float:
    samples = timeit.repeat(function, number=NUMBER, repeat=ROUNDS)
    return statistics.median(samples) / NUMBER * 1e6


def _import_ms(statement: str) -> float:
    """Median wall time of `statement` in a fresh interpreter (compiled bytecode already cached)."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    samples = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        )
        samples.append(float(out.stdout) * 1000)
    return statistics.median(samples)


def run() -> None:
    from shared.delivery import _liquid, templates
    from shared.journeys.loader import load_journey

    journey = load_journey(ROOT / "journeys" / "cart_abandonment")
    sent = journey.send_content("cart-reminder", "email")
    content, layout, partials = sent["content"], sent["layout"], sent["partials"]

    def liquid_bare() -> dict[str, str]:
        return templates.render_content(content, CONTEXT)

    def liquid_layout() -> dict[str, str]:
        return templates.render_content(content, CONTEXT, layout=layout, partials=partials)

    def regex() -> dict[str, str]:
        return regex_render_content(REGEX_CONTENT, CONTEXT)

    liquid_layout()  # parsed and cached, as in a warm function
    regex_us = _median_us(regex)
    bare_us = _median_us(liquid_bare)
    layout_us = _median_us(liquid_layout)

    # First render: the parse caches emptied each time (the environments stay: one per partial set).
    firsts = []
    for _ in range(50):
        _liquid._parse.cache_clear()
        started = time.perf_counter()
        liquid_layout()
        firsts.append((time.perf_counter() - started) * 1e6)
    first_us = statistics.median(firsts)

    baseline_import = _import_ms("import re, html")
    liquid_import = _import_ms("import shared.delivery._liquid")

    print(f"\nTemplates: render cost per message (cart reminder email), median of {ROUNDS} × {NUMBER}")
    print(f"  regex renderer (before), subject + text + html      {regex_us:8.1f} µs   ratio 1")
    print(
        f"  Liquid cached, same fields, no layout               {bare_us:8.1f} µs"
        f"   ratio {bare_us / regex_us:.1f}"
    )
    print(
        f"  Liquid cached, with layout + footer (as shipped)    {layout_us:8.1f} µs"
        f"   ratio {layout_us / regex_us:.1f}"
    )
    print(
        f"  Liquid first render (parse + render, cold cache)    {first_us:8.1f} µs"
        f"   ratio {first_us / regex_us:.1f}"
    )
    print(
        f"  import in a fresh interpreter: renderer {liquid_import:.0f} ms"
        f" (re + html: {baseline_import:.0f} ms), once per cold start"
    )


if __name__ == "__main__":
    run()
