"""Message templates in Liquid (shared/delivery/templates.py): strict variables with `default`, HTML
escaping of the html field only, `date` with a time zone, layouts and partials, and errors that name
the field, line and variable but no value."""

from __future__ import annotations

from typing import Any

import pytest

from shared.delivery.templates import (
    TemplateRenderError,
    partials_used,
    render_content,
    roots,
    variable_paths,
)

CONTEXT: dict[str, Any] = {
    "profile": {
        "profileId": "p-1",
        "traits": {
            "firstName": "Ada",
            "email": "ada@example.com",
            "cartSize": 3,
            "total": 19.5,
            "nickname": "",
        },
    },
    "trigger": {
        "event": "Product Added",
        "properties": {"name": "<Red & Blue> shoes", "items": [{"name": "hat"}, {"name": "scarf"}]},
        "timestamp": "2024-05-01T12:00:00.000Z",
    },
    "computed": {"orders_count": 4},
    "links": {"preferences": "https://example.com/preferences/t?a=1&b=2", "unsubscribe": None},
}

LAYOUT = {
    "text": '{{ content }}\n{% render "footer.txt", links: links %}',
    "html": '<body>{{ content }}{% render "footer.html", links: links %}</body>',
}
PARTIALS = {
    "footer.txt": "--\n{% if links.unsubscribe %}Unsubscribe: {{ links.unsubscribe }}\n{% endif %}"
    "Preferences: {{ links.preferences }}",
    "footer.html": '<a href="{{ links.preferences }}">Preferences</a>'
    '{% if links.unsubscribe %} <a href="{{ links.unsubscribe }}">Unsubscribe</a>{% endif %}',
}


def render(text: str, context: dict[str, Any] = CONTEXT, field: str = "text") -> str:
    return render_content({field: text}, context)[field]


# -- values, default, logic ------------------------------------------------------------------------


def test_a_variable_is_replaced_by_its_value() -> None:
    assert render("Hi {{ profile.traits.firstName }}! {{trigger.event}}") == "Hi Ada! Product Added"


def test_numbers_render_as_their_text() -> None:
    assert (
        render("{{ profile.traits.cartSize }} items, {{ profile.traits.total }} EUR") == "3 items, 19.5 EUR"
    )


def test_default_replaces_a_missing_trait() -> None:
    assert render('Hi {{ profile.traits.lastName | default: "there" }}!') == "Hi there!"


def test_default_replaces_an_empty_or_nil_value_but_not_a_present_one() -> None:
    assert render('{{ profile.traits.nickname | default: "nobody" }}') == "nobody"
    assert render('{{ links.unsubscribe | default: "none" }}') == "none"
    assert render('{{ profile.traits.firstName | default: "there" }}') == "Ada"


def test_a_missing_variable_is_false_in_a_condition() -> None:
    assert render("{% if profile.traits.plan %}plan{% else %}no plan{% endif %}") == "no plan"


def test_loops_and_filters_work() -> None:
    text = "{% for item in trigger.properties.items %}{{ item.name | upcase }};{% endfor %}"
    assert render(text) == "HAT;SCARF;"


# -- strictness and errors -------------------------------------------------------------------------


def test_a_typo_in_a_variable_is_an_error_naming_field_line_and_variable() -> None:
    with pytest.raises(TemplateRenderError) as raised:
        render_content({"subject": "Hello", "text": "Hi,\n\n{{ profile.traits.firstNmae }}"}, CONTEXT)

    error = raised.value
    assert (error.field, error.line, error.variable) == ("text", 3, "profile.traits.firstNmae")
    assert "profile.traits.firstNmae" in str(error) and "line 3" in str(error)


def test_an_unknown_filter_is_an_error() -> None:
    with pytest.raises(TemplateRenderError) as raised:
        render("Hi\n{{ profile.traits.firstName | upcasee }}")

    assert raised.value.line == 2
    assert "unknown filter 'upcasee'" in str(raised.value)


def test_a_missing_partial_is_an_error() -> None:
    with pytest.raises(TemplateRenderError) as raised:
        render_content({"html": '<p>x</p>\n{% render "header.html" %}'}, CONTEXT, partials=PARTIALS)

    assert raised.value.line == 2
    assert "header.html" in str(raised.value)


def test_an_unclosed_tag_is_an_error() -> None:
    with pytest.raises(TemplateRenderError) as raised:
        render("{% if profile.traits.firstName %}\nHi\n")

    assert raised.value.field == "text"
    assert raised.value.line == 2
    assert "endif" in str(raised.value)


def test_an_error_never_carries_a_value_of_the_context() -> None:
    sources = [
        "{{ profile.traits.email | plus: 1 | slice: profile.traits.email }}",
        "{{ trigger.timestamp | date: '%H', profile.traits.email }}",
        "{{ profile.traits.firstName | truncate: profile.traits.email }}",
        "{{ profile.traits.firstName.x.y }}",
    ]
    for source in sources:
        with pytest.raises(TemplateRenderError) as raised:
            render(source)
        text = str(raised.value)
        assert "ada@example.com" not in text and "Ada" not in text.replace("date", ""), text


def test_an_error_in_a_partial_names_the_partial() -> None:
    partials = {"footer.txt": "ok\n{{ links.preferencs }}"}

    with pytest.raises(TemplateRenderError) as raised:
        render_content(
            {"text": "x"},
            CONTEXT,
            layout={"text": '{{ content }}{% render "footer.txt", links: links %}'},
            partials=partials,
        )

    assert raised.value.field == "text layout, partial footer.txt"
    assert raised.value.line == 2
    assert raised.value.variable == "links.preferencs"


# -- escaping --------------------------------------------------------------------------------------


def test_a_trait_holding_a_script_is_escaped_in_html_only() -> None:
    context = {**CONTEXT, "profile": {"traits": {"firstName": "<script>alert(1)</script>"}}}
    content = {
        "subject": "Hi {{ profile.traits.firstName }}",
        "text": "Hi {{ profile.traits.firstName }}",
        "html": "<p>Hi {{ profile.traits.firstName }}</p>",
    }

    rendered = render_content(content, context)

    assert rendered["html"] == "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert rendered["subject"] == rendered["text"] == "Hi <script>alert(1)</script>"


def test_the_layout_does_not_escape_the_rendered_html_again() -> None:
    rendered = render_content(
        {"html": "<p>{{ trigger.properties.name }}</p>"}, CONTEXT, layout=LAYOUT, partials=PARTIALS
    )

    assert rendered["html"] == (
        "<body><p>&lt;Red &amp; Blue&gt; shoes</p>"
        '<a href="https://example.com/preferences/t?a=1&amp;b=2">Preferences</a></body>'
    )


# -- date ------------------------------------------------------------------------------------------


def test_date_renders_an_instant_in_two_zones() -> None:
    text = '{{ trigger.timestamp | date: "%Y-%m-%d %H:%M %Z", "Europe/Paris" }} / '
    text += '{{ trigger.timestamp | date: "%Y-%m-%d %H:%M %Z", "America/New_York" }}'

    assert render(text) == "2024-05-01 14:00 CEST / 2024-05-01 08:00 EDT"


def test_date_follows_a_dst_change() -> None:
    # Europe/Paris springs forward at 01:00 UTC on 31 March 2024: the same UTC hour an hour apart.
    text = '{{ before | date: "%H:%M %Z", "Europe/Paris" }} {{ after | date: "%H:%M %Z", "Europe/Paris" }}'
    context = {"before": "2024-03-31T00:30:00Z", "after": "2024-03-31T01:30:00Z"}

    assert render(text, context) == "01:30 CET 03:30 CEST"


def test_date_without_a_zone_is_utc_and_takes_epoch_seconds() -> None:
    assert render('{{ at | date: "%H:%M %Z" }}', {"at": 1714564800}) == "12:00 UTC"
    assert render('{{ at | date: "%H:%M" }}', {"at": "2024-05-01T12:00:00"}) == "12:00"


def test_date_with_an_unknown_zone_is_an_error() -> None:
    with pytest.raises(TemplateRenderError, match="unknown time zone"):
        render('{{ trigger.timestamp | date: "%H", "Mars/Olympus" }}')


# -- layouts and partials ---------------------------------------------------------------------------


def test_a_layout_wraps_text_and_html_but_not_the_subject() -> None:
    marketing = {**CONTEXT, "links": {"preferences": "https://p", "unsubscribe": "https://u"}}
    content = {"subject": "Hi {{ profile.traits.firstName }}", "text": "Body", "html": "<p>Body</p>"}

    rendered = render_content(content, marketing, layout=LAYOUT, partials=PARTIALS)

    assert rendered["subject"] == "Hi Ada"
    assert rendered["text"] == "Body\n--\nUnsubscribe: https://u\nPreferences: https://p"
    assert rendered["html"] == (
        '<body><p>Body</p><a href="https://p">Preferences</a> <a href="https://u">Unsubscribe</a></body>'
    )


def test_the_footer_has_no_unsubscribe_link_when_it_is_nil() -> None:
    rendered = render_content({"text": "Body"}, CONTEXT, layout=LAYOUT, partials=PARTIALS)

    assert rendered["text"] == "Body\n--\nPreferences: https://example.com/preferences/t?a=1&b=2"


def test_a_layout_without_the_field_leaves_it_as_written() -> None:
    rendered = render_content({"html": "<p>x</p>"}, CONTEXT, layout={"text": "[{{ content }}]"})

    assert rendered == {"html": "<p>x</p>"}


def test_partials_of_the_same_name_from_different_payloads_do_not_mix() -> None:
    layout = {"text": '{% render "footer.txt" %}'}

    first = render_content({"text": "x"}, CONTEXT, layout=layout, partials={"footer.txt": "one"})
    second = render_content({"text": "x"}, CONTEXT, layout=layout, partials={"footer.txt": "two"})

    assert (first["text"], second["text"]) == ("one", "two")


def test_partials_used_follows_partials_rendering_partials() -> None:
    partials = {"a": '{% render "b" %}', "b": "{% include 'c' %}", "c": "c", "unused": "u"}

    assert partials_used(['{% render "a" %}'], partials) == {"a": partials["a"], "b": partials["b"], "c": "c"}


# -- static analysis ---------------------------------------------------------------------------------


def test_roots_name_what_the_content_layout_and_partials_read() -> None:
    content = {"subject": "{{ computed.orders_count | default: 0 }}", "text": "{{ trigger.event }}"}

    assert roots(content) == {"computed", "trigger"}
    assert roots(content, layout=LAYOUT, partials=PARTIALS) == {"computed", "trigger", "links"}
    assert roots({"text": "Hi"}) == set()


def test_variable_paths_are_the_full_paths_read() -> None:
    content = {"text": "{% if profile.traits.plan %}{{ computed.orders_count }}{% endif %}"}

    assert variable_paths(content) == {"profile.traits.plan", "computed.orders_count"}


def test_a_template_is_parsed_once_then_served_from_the_cache() -> None:
    from shared.delivery import _liquid

    source = "Cached {{ profile.traits.firstName }} " + "x" * 17  # a source no other test renders
    render(source)
    misses = _liquid._parse.cache_info().misses

    assert render(source) == "Cached Ada " + "x" * 17
    assert _liquid._parse.cache_info().misses == misses


def test_a_loop_over_a_huge_range_fails_instead_of_exhausting_the_lambda() -> None:
    # A range bound can come from a trait any client may set through identify: without limits this
    # rendered 30 MB in 11 s for n = 3e6 (and n = 1e12 runs until the deliver Lambda times out, each
    # retry again). A render error is dropped as render_failed.
    with pytest.raises(TemplateRenderError) as raised:
        render_content({"text": "{% for i in (1..n) %}xxxxxxxxxx{% endfor %}"}, {"n": 10**12})
    assert "1000000000000" not in str(raised.value)


def test_output_is_limited_even_without_a_loop_limit_being_hit() -> None:
    with pytest.raises(TemplateRenderError):
        render_content({"html": "{{ big }}{{ big }}{{ big }}"}, {"big": "x" * 2_000_000})


@pytest.mark.parametrize(
    ("value", "zone"),
    [("9999-12-31T23:59:59Z", "Pacific/Kiritimati"), ("0001-01-01T00:00:00Z", "America/New_York")],
)
def test_a_far_date_shifted_past_the_calendar_by_its_zone_is_no_crash(value: str, zone: str) -> None:
    # "9999-12-31" / "0001-01-01" are common "never" / "unset" sentinels in traits. Shifting them into
    # a zone overflowed datetime: an OverflowError escaped the renderer (not a TemplateRenderError),
    # so the deliver step failed and was retried until the journey execution failed.
    text = render_content({"text": '{{ x | date: "%Y-%m-%d", z }}'}, {"x": value, "z": zone})["text"]
    assert text == value  # like any value that is not a time it can show: unchanged


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ('{{ x | date: "%Y", z }}', "2026-01-01"),  # z: a 5000-character "zone" (OSError)
        ("{{ x | ceil }}", "inf"),  # OverflowError
        ("{{ x | floor }}", "nan"),  # ValueError
        ("{{ x | base64_decode }}", "//79"),  # UnicodeDecodeError
        ("{{ x | sum }}", ["a", {}]),  # decimal.InvalidOperation
    ],
)
def test_a_trait_a_filter_cannot_take_is_a_render_error_naming_no_value(source: str, value: object) -> None:
    # These escaped the renderer as Python errors (not TemplateRenderError): the deliver step failed
    # and was retried until the execution failed, instead of a `render_failed` drop; the zone's
    # OSError message also carried the trait's value.
    with pytest.raises(TemplateRenderError) as raised:
        render_content({"text": source}, {"x": value, "z": "a" * 5000})
    assert "aaaa" not in str(raised.value) and raised.value.field == "text"
