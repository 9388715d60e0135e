"""Message templates: `{{ path }}` and `{{ path | fallback }}` (shared/delivery/templates.py)."""

from __future__ import annotations

from shared.delivery.templates import render, render_content

CONTEXT = {
    "profile": {"traits": {"firstName": "Ada", "empty": "", "cartSize": 3, "total": 19.5}},
    "trigger": {"event": "Product Added", "properties": {"name": "<Red & Blue> shoes"}},
}


def test_a_placeholder_is_replaced_by_the_value_at_its_path() -> None:
    assert render("Hi {{ profile.traits.firstName }}!", CONTEXT) == "Hi Ada!"


def test_placeholders_tolerate_missing_or_extra_spaces() -> None:
    assert render("{{profile.traits.firstName}}/{{   trigger.event   }}", CONTEXT) == "Ada/Product Added"


def test_a_missing_value_uses_the_fallback() -> None:
    assert render("Hi {{ profile.traits.lastName | there }}!", CONTEXT) == "Hi there!"


def test_an_empty_value_uses_the_fallback() -> None:
    assert render("{{ profile.traits.empty | nobody }}", CONTEXT) == "nobody"


def test_a_present_value_wins_over_the_fallback() -> None:
    assert render("{{ profile.traits.firstName | there }}", CONTEXT) == "Ada"


def test_a_fallback_may_hold_several_words() -> None:
    assert (
        render("{{ trigger.properties.colour | your favourite colour }}.", CONTEXT)
        == "your favourite colour."
    )


def test_a_missing_value_without_fallback_renders_empty() -> None:
    assert render("Hi {{ profile.traits.lastName }}!", CONTEXT) == "Hi !"


def test_a_path_through_a_non_mapping_is_missing() -> None:
    assert render("{{ profile.traits.firstName.initial | A }}", CONTEXT) == "A"


def test_numbers_render_as_their_text() -> None:
    assert (
        render("{{ profile.traits.cartSize }} items, {{ profile.traits.total }} EUR", CONTEXT)
        == "3 items, 19.5 EUR"
    )


def test_zero_is_a_value_not_a_missing_one() -> None:
    assert render("{{ n | none }}", {"n": 0}) == "0"


def test_text_outside_placeholders_is_left_alone() -> None:
    assert render("<p>{ not a placeholder } {{}}</p>", CONTEXT) == "<p>{ not a placeholder } {{}}</p>"


def test_values_are_not_escaped_by_default() -> None:
    assert render("{{ trigger.properties.name }}", CONTEXT) == "<Red & Blue> shoes"


def test_render_content_escapes_values_in_the_html_field_only() -> None:
    content = {
        "subject": "{{ trigger.properties.name }}",
        "text": "{{ trigger.properties.name }}",
        "html": "<p>{{ trigger.properties.name }}</p>",
    }

    rendered = render_content(content, CONTEXT)

    assert rendered["html"] == "<p>&lt;Red &amp; Blue&gt; shoes</p>"
    assert rendered["subject"] == rendered["text"] == "<Red & Blue> shoes"


def test_render_content_keeps_every_field() -> None:
    rendered = render_content({"title": "Hey {{ profile.traits.firstName }}", "body": "Back soon"}, CONTEXT)

    assert rendered == {"title": "Hey Ada", "body": "Back soon"}
