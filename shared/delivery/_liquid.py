"""python-liquid behind shared/delivery/templates.py, imported at the first render or analysis: a
function that never renders (the channels import the delivery service) does not pay python-liquid's
import at cold start."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from liquid import BoundTemplate, CachingDictLoader, Environment
from liquid.exceptions import (
    FilterArgumentError,
    LiquidError,
    LiquidSyntaxError,
    TemplateNotFoundError,
    UndefinedError,
    UnknownFilterError,
)
from liquid.filter import with_environment
from liquid.undefined import FalsyStrictUndefined, is_undefined
from markupsafe import Markup

from shared.delivery.templates import HTML_FIELD, LAYOUT_FIELDS, TemplateRenderError


class _Undefined(FalsyStrictUndefined):
    """Strict (printing or indexing a missing variable raises), false in `{% if %}`, and replaced by
    `default` — what python-liquid's StrictDefaultUndefined and FalsyStrictUndefined each do half of."""

    force_liquid_default = True


def _moment(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int | float):
        try:
            moment = dt.datetime.fromtimestamp(value, dt.UTC)
        except (OverflowError, OSError, ValueError):  # beyond the years datetime holds
            return None
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@with_environment
def date(value: object, fmt: object, zone: object = None, *, environment: Environment) -> object:
    """`date: "<strftime format>"[, "<IANA zone>"]`. Replaces python-liquid's own `date` (no zone;
    naive times in the machine's zone): here a time without an offset is UTC and the zone is explicit.
    A value that is not a time comes out unchanged, as Shopify's `date` does."""
    if is_undefined(value) or value is None:
        return ""
    moment = _moment(value)
    if moment is None:
        return value
    target: dt.tzinfo
    if zone is not None and not is_undefined(zone):
        try:
            target = ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError, OSError) as error:
            # Not the zone itself in the message: it may be a trait's value.
            raise FilterArgumentError("date: unknown time zone", token=None) from error
    else:
        target = dt.UTC
    try:
        moment = moment.astimezone(target)
    except OverflowError:  # 9999-12-31 shifted east (or 0001-01-01 west) leaves datetime's years
        return value
    try:
        text = moment.strftime(str(fmt))
    except ValueError as error:
        raise FilterArgumentError("date: invalid format", token=None) from error
    return Markup(text) if environment.autoescape else text


class _LimitedEnvironment(Environment):
    """Bounded work per render: a loop's range can come from a trait any client may set (identify),
    and python-liquid sets no limit by default. An email is a few kB; these limits are far above
    any real message and far below what would stall the deliver Lambda until its timeout."""

    loop_iteration_limit = 10_000
    output_stream_limit = 1_000_000  # characters
    local_namespace_limit = 100_000  # bytes of `assign` / `capture`


@lru_cache(maxsize=64)
def _environment(partials: frozenset[tuple[str, str]], autoescape: bool) -> Environment:
    # One environment per set of partials: partials are loaded by name, and python-liquid caches what
    # a loader gives by name, so two journeys' different `footer.html` must not share a cache.
    # Caching: a partial is parsed once per environment, not at every `{% render %}`.
    loader = CachingDictLoader(dict(partials), auto_reload=False)
    environment = _LimitedEnvironment(loader=loader, undefined=_Undefined, autoescape=autoescape)
    environment.filters["date"] = date
    return environment


@lru_cache(maxsize=1024)
def _parse(source: str, partials: frozenset[tuple[str, str]], autoescape: bool, field: str) -> BoundTemplate:
    try:
        return _environment(partials, autoescape).from_string(source)
    except LiquidError as error:
        raise _render_error(error, field, source, partials) from None


def _render_error(
    error: LiquidError, field: str, source: str, partials: frozenset[tuple[str, str]] = frozenset()
) -> TemplateRenderError:
    """The error without a value of the context: python-liquid's messages for undefined variables,
    unknown filters, missing partials and syntax name only the template's own text; any other
    (a filter given a value it cannot take) is named by its kind alone."""
    where = field
    token_source = error.token.source if error.token is not None else source
    if token_source and token_source != source:
        # Raised inside a partial: its line is the partial's.
        name = error.template_name or next((n for n, text in partials if text == token_source), None)
        if name:
            where = f"{field}, partial {name}"
    context = error.context()
    line = context[0] if context is not None else None
    if line is None and isinstance(error, LiquidSyntaxError):
        line = max(1, source.count("\n") + (0 if source.endswith("\n") else 1))  # at the end: unclosed
    variable = None
    if isinstance(error, UndefinedError):
        variable = str(error.message).removesuffix(" is undefined").strip("'")
        problem = f"undefined variable {variable} (add `| default: ...` if it may be missing)"
    elif isinstance(error, UnknownFilterError):
        problem = str(error.message)
    elif isinstance(error, TemplateNotFoundError):
        problem = f"no partial named {error.message}"
    elif isinstance(error, LiquidSyntaxError):
        problem = f"syntax: {error.message}"
    elif isinstance(error, FilterArgumentError) and str(error.message) == "date: unknown time zone":
        problem = str(error.message)
    else:
        problem = f"{type(error).__name__} (a filter or tag given a value it cannot take)"
    return TemplateRenderError(where, line, variable, problem)


def _partials_key(partials: Mapping[str, str] | None) -> frozenset[tuple[str, str]]:
    return frozenset(partials.items()) if partials else frozenset()


def _render(source: str, context: Mapping[str, Any], field: str, partials: frozenset[tuple[str, str]]) -> str:
    autoescape = field.startswith(HTML_FIELD)
    template = _parse(source, partials, autoescape, field)
    try:
        return template.render(**context)
    except LiquidError as error:
        raise _render_error(error, field, source, partials) from None
    except (ArithmeticError, ValueError, TypeError, LookupError, OSError) as error:
        # python-liquid's filters let Python's own errors through for some values a trait may hold
        # ("inf" | ceil, "//79" | base64_decode, a 5000-character zone): a render error like any
        # other (render_failed), not a crash the step retries; named by kind, the message may hold
        # the value.
        raise TemplateRenderError(
            field, None, None, f"{type(error).__name__} (a filter given a value it cannot take)"
        ) from None


def render_content(
    content: Mapping[str, str],
    context: Mapping[str, Any],
    *,
    layout: Mapping[str, str] | None = None,
    partials: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """shared.delivery.templates.render_content."""
    key = _partials_key(partials)
    rendered = {}
    for field, source in content.items():
        text = _render(source, context, field, key)
        wrapper = (layout or {}).get(field) if field in LAYOUT_FIELDS else None
        if wrapper is not None:
            # The rendered html is already escaped: Markup keeps the layout from escaping it again.
            body = Markup(text) if field == HTML_FIELD else text
            text = _render(wrapper, {**context, "content": body}, f"{field} layout", key)
        rendered[field] = text
    return rendered


def variable_paths(
    content: Mapping[str, str],
    *,
    layout: Mapping[str, str] | None = None,
    partials: Mapping[str, str] | None = None,
) -> set[str]:
    """shared.delivery.templates.variable_paths."""
    key = _partials_key(partials)
    sources = [(field, source) for field, source in content.items()]
    sources += [(f"{field} layout", source) for field, source in (layout or {}).items()]
    paths: set[str] = set()
    for field, source in sources:
        try:
            template = _parse(source, key, field.startswith(HTML_FIELD), field)
            found = template.global_variable_paths(include_partials=True)
        except (TemplateRenderError, LiquidError):
            continue
        paths.update(path for path in found if not (field.endswith("layout") and path == "content"))
    return paths
