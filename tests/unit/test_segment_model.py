"""Segment definitions, computed traits and the catalogue loader (shared/models/segments.py,
shared/segments/catalogue.py): what an author writes is validated with errors that say what is wrong."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.models.segments import (
    AllNode,
    ComputedTrait,
    EventAggregate,
    EventNode,
    NoEventSinceNode,
    NotNode,
    SegmentDefinition,
    SegmentState,
    TraitAggregate,
)
from shared.segments.catalogue import (
    SegmentCatalogue,
    SegmentLoadError,
    load_segment_catalogue,
    load_segments,
    write_segment_catalogue,
)

REPO_SEGMENTS = Path(__file__).resolve().parents[2] / "segments"


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def _load_error(tmp_path: Path, files: dict[str, str]) -> str:
    with pytest.raises(SegmentLoadError) as caught:
        load_segments(_folder(tmp_path, files))
    return str(caught.value)


def test_the_shipped_segments_load_with_their_computed_traits() -> None:
    catalogue = load_segments(REPO_SEGMENTS)

    assert [s.id for s in catalogue.segments] == ["cart_abandoners", "vip"]
    assert [t.id for t in catalogue.computed] == ["orders_count", "lifetime_revenue"]
    cart = catalogue.get("cart_abandoners")
    assert cart is not None and isinstance(cart.when, AllNode)
    window, since = cart.when.all
    assert isinstance(window, EventNode) and window.within == 7 * 86400 and window.at_least == 1
    assert isinstance(since, NoEventSinceNode) and since.no_event_since.since == "Product Added"
    assert [(a.platform, a.audience) for a in cart.audiences] == [
        ("meta", "cart-abandoners"),
        ("google", "cart-abandoners"),
    ]
    assert catalogue.computed_trait("lifetime_revenue") == ComputedTrait(
        id="lifetime_revenue", event="Order Completed", aggregate="sum", property=["revenue", "total"]
    )


def test_the_catalogue_file_gives_back_the_same_catalogue(tmp_path: Path) -> None:
    catalogue = load_segments(REPO_SEGMENTS)

    path = write_segment_catalogue(catalogue, tmp_path / "segments.json")

    assert load_segment_catalogue(path) == catalogue
    assert json.loads(path.read_text())["segments"][0]["id"] == "cart_abandoners"


def test_an_empty_or_missing_folder_is_an_empty_catalogue(tmp_path: Path) -> None:
    assert load_segments(tmp_path).empty
    assert load_segments(tmp_path / "absent").empty
    assert SegmentCatalogue().get("vip") is None


def test_every_node_type_is_written_as_a_mapping_and_dumps_back() -> None:
    written = {
        "id": "mixed",
        "name": "Mixed",
        "when": {
            "any": [
                {"traits": {"plan": "pro"}},
                {"not": {"computed": {"orders_count": {"gte": 2}}}},
                {"event": "Viewed", "where": {"sku": {"exists": True}}, "within": "1d", "at_most": 0},
                {"all": [{"no_event_since": {"event": "Order Completed", "since": "Product Added"}}]},
            ]
        },
    }

    segment = SegmentDefinition.model_validate(written)

    assert isinstance(segment.when.any[1], NotNode)  # type: ignore[union-attr]
    assert SegmentDefinition.model_validate(segment.model_dump(mode="json")) == segment


def test_an_unknown_computed_trait_is_named(tmp_path: Path) -> None:
    message = _load_error(
        tmp_path,
        {
            "big.yaml": """
                id: big
                name: Big
                when: {computed: {lifetime_spend: {gte: 5}}}
            """,
            "computed_traits.yaml": "- {id: orders_count, event: Order Completed, aggregate: count}\n",
        },
    )

    assert "big" in message and "lifetime_spend" in message and "orders_count" in message


def test_same_as_trigger_is_refused_in_a_segment(tmp_path: Path) -> None:
    message = _load_error(
        tmp_path,
        {
            "pro.yaml": """
                id: pro
                name: Pro
                when: {traits: {plan: {same_as_trigger: true}}}
            """
        },
    )

    assert "pro.yaml" in message and "same_as_trigger" in message and "plan" in message


def test_at_least_and_at_most_together_are_refused(tmp_path: Path) -> None:
    message = _load_error(
        tmp_path,
        {
            "browsers.yaml": """
                id: browsers
                name: Browsers
                when: {event: Viewed, at_least: 1, at_most: 3}
            """
        },
    )

    assert "browsers.yaml" in message and "at_least or at_most, not both" in message


@pytest.mark.parametrize(
    ("stem", "written_id", "expected"),
    [
        ("Big", "Big", "should match pattern"),  # upper case
        ("1st", "1st", "should match pattern"),  # starts with a digit
        ("vip", "vips", "must equal its file name"),
    ],
)
def test_a_bad_segment_id_is_refused(tmp_path: Path, stem: str, written_id: str, expected: str) -> None:
    message = _load_error(
        tmp_path, {f"{stem}.yaml": f"id: {written_id}\nname: X\nwhen: {{traits: {{plan: pro}}}}\n"}
    )

    assert f"{stem}.yaml" in message and expected in message


def test_a_bad_audience_name_or_platform_is_refused() -> None:
    base = {"id": "a", "name": "A", "when": {"traits": {"plan": "pro"}}}
    with pytest.raises(ValidationError, match="audiences.0.audience"):
        SegmentDefinition.model_validate(
            {**base, "audiences": [{"platform": "meta", "audience": "Cart Abandoners"}]}
        )
    with pytest.raises(ValidationError, match="audiences.0.platform"):
        SegmentDefinition.model_validate({**base, "audiences": [{"platform": "tiktok", "audience": "cart"}]})


def test_one_audience_follows_one_segment(tmp_path: Path) -> None:
    files = {
        f"{name}.yaml": f"""
            id: {name}
            name: {name}
            when: {{traits: {{plan: {name}}}}}
            audiences: [{{platform: meta, audience: shared}}]
        """
        for name in ("one", "two")
    }

    message = _load_error(tmp_path, files)

    assert "meta:shared" in message and "'one'" in message and "'two'" in message


def test_a_catalogue_whose_state_could_outgrow_one_dynamodb_item_is_refused_with_its_cause(
    tmp_path: Path,
) -> None:
    traits = "".join(
        f"- {{id: last_sku_{i}, event: Order Completed, aggregate: last, property: sku{i}, within: 365d}}\n"
        for i in range(4)
    )

    message = _load_error(tmp_path, {"computed_traits.yaml": traits})

    assert str(tmp_path) in message
    assert "bytes" in message and "350,000" in message and "DynamoDB" in message
    assert "'last_sku_0'" in message  # the largest contributors are named
    assert "within" in message  # and what to change


def test_a_catalogue_within_the_item_ceiling_loads(tmp_path: Path) -> None:
    # Two of the same traits (a year of daily buckets each): about 260 KB at most, under the ceiling.
    traits = "".join(
        f"- {{id: last_sku_{i}, event: Order Completed, aggregate: last, property: sku{i}, within: 365d}}\n"
        for i in range(2)
    )

    catalogue = load_segments(_folder(tmp_path, {"computed_traits.yaml": traits}))

    assert [t.id for t in catalogue.computed] == ["last_sku_0", "last_sku_1"]


def test_a_condition_with_two_kinds_is_refused() -> None:
    with pytest.raises(ValidationError, match="exactly one of"):
        SegmentDefinition.model_validate(
            {"id": "a", "name": "A", "when": {"traits": {"plan": "pro"}, "computed": {"x": 1}}}
        )


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ({"aggregate": "sum"}, "sum needs a property"),
        ({"aggregate": "count", "property": "total"}, "a count takes no property"),
        ({"aggregate": "count", "within": "36h"}, "whole days"),
        ({"aggregate": "median", "property": "total"}, "aggregate"),
    ],
)
def test_a_computed_trait_that_cannot_be_computed_is_refused(
    tmp_path: Path, written: dict[str, object], expected: str
) -> None:
    trait = {"id": "t", "event": "Order Completed", **written}

    message = _load_error(tmp_path, {"computed_traits.yaml": json.dumps([trait])})

    assert "computed_traits.yaml" in message and expected in message


def test_a_windowed_count_is_bounded() -> None:
    with pytest.raises(ValidationError, match="at_least at most 100"):
        EventNode.model_validate({"event": "Viewed", "within": "7d", "at_least": 101})
    assert EventNode.model_validate({"event": "Viewed", "at_least": 5000}).keep == 0  # all time: a count


def test_the_state_dumps_without_empty_fields_and_reads_back() -> None:
    state = SegmentState(
        profileId="p",
        events={"Viewed": EventAggregate(count=2, first="a", last="b")},
        traits={"spend": TraitAggregate(sum="7/2", min=0)},
    )

    dumped = json.loads(state.model_dump_json())

    assert dumped["events"] == {"Viewed": {"count": 2, "first": "a", "last": "b"}}
    assert dumped["traits"] == {"spend": {"sum": "7/2", "min": 0}}  # a zero min is a value, kept
    assert SegmentState.model_validate(dumped) == state
