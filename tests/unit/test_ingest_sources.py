"""Sources, their write keys, and which source a request comes from (shared/ingest/sources.py)."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from shared import clock
from shared.ingest import sources
from shared.ingest.calls import UnauthorizedError
from shared.ingest.sources import Source, SourceResolver, hash_key, new_source, presented_key

WRITE_KEY = "wk_live_2f9c1d"


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


# -- sources and keys ------------------------------------------------------------------------------


def test_a_key_hash_is_its_sha256_in_hex() -> None:
    assert hash_key(WRITE_KEY) == hashlib.sha256(WRITE_KEY.encode()).hexdigest()


def test_a_new_source_stores_only_the_hash_of_its_key() -> None:
    source, key = new_source("Website", WRITE_KEY)

    assert key == WRITE_KEY
    assert source.keyHash == hash_key(WRITE_KEY)
    assert WRITE_KEY not in source.model_dump_json()


def test_a_new_source_without_a_key_gets_a_generated_one() -> None:
    (first, first_key), (second, second_key) = new_source("Website"), new_source("Website")

    assert len(first_key) >= 32
    assert first_key != second_key
    assert first.keyHash == hash_key(first_key)
    assert second.keyHash == hash_key(second_key)


def test_a_new_source_is_active_stamped_and_named(fixed_clock: datetime) -> None:
    source, _ = new_source("Website")

    assert source.name == "Website"
    assert source.sourceId.startswith("src_")
    assert source.createdAt == clock.iso(fixed_clock)
    assert source.revokedAt is None


def test_new_sources_get_different_ids() -> None:
    assert new_source("A")[0].sourceId != new_source("A")[0].sourceId


@pytest.mark.parametrize("name", ["", "x" * 101])
def test_a_source_needs_a_name_of_at_most_100_characters(name: str) -> None:
    with pytest.raises(ValidationError):
        new_source(name)


# -- the key a request presents --------------------------------------------------------------------


@pytest.mark.parametrize("credentials", [f"{WRITE_KEY}:", WRITE_KEY, f"{WRITE_KEY}:any-password"])
def test_the_basic_username_is_the_write_key_with_or_without_a_password(credentials: str) -> None:
    assert presented_key(_basic(credentials), None) == WRITE_KEY


@pytest.mark.parametrize("scheme", ["basic", "BASIC", "bAsIc"])
def test_the_basic_scheme_name_is_case_insensitive(scheme: str) -> None:
    assert presented_key(_basic(WRITE_KEY).replace("Basic", scheme), None) == WRITE_KEY


def test_the_write_key_in_the_body_is_used_without_an_authorization_header() -> None:
    assert presented_key(None, WRITE_KEY) == WRITE_KEY


def test_the_basic_username_wins_over_the_body_key() -> None:
    assert presented_key(_basic("wk_header:"), "wk_body") == "wk_header"


@pytest.mark.parametrize("header", ["Basic", "Basic ", _basic(":"), _basic(":password")])
def test_basic_credentials_without_a_username_fall_back_to_the_body_key(header: str) -> None:
    assert presented_key(header, WRITE_KEY) == WRITE_KEY


@pytest.mark.parametrize(
    ("header", "body_key"),
    [(None, None), ("", None), (None, ""), ("Basic", None), (_basic(f":{WRITE_KEY}"), None)],
)
def test_no_write_key_anywhere_is_unauthorized(header: str | None, body_key: str | None) -> None:
    with pytest.raises(UnauthorizedError, match="missing write key") as caught:
        presented_key(header, body_key)

    assert caught.value.status == 401


@pytest.mark.parametrize("header", ["Bearer abc", "Digest username=wk", "Token " + WRITE_KEY])
def test_another_auth_scheme_is_unauthorized_even_with_a_body_key(header: str) -> None:
    with pytest.raises(UnauthorizedError, match="use HTTP Basic auth"):
        presented_key(header, WRITE_KEY)


@pytest.mark.parametrize("header", ["Basic not base64!", "Basic " + base64.b64encode(b"\xff\xfe:").decode()])
def test_malformed_basic_credentials_are_unauthorized(header: str) -> None:
    with pytest.raises(UnauthorizedError, match="malformed HTTP Basic credentials"):
        presented_key(header, WRITE_KEY)


# -- from key to source ----------------------------------------------------------------------------


class CountingFinder:
    """The sources table's lookup by key hash, counting its reads."""

    def __init__(self, *known: Source) -> None:
        self.by_hash = {source.keyHash: source for source in known}
        self.asked: list[str] = []

    def __call__(self, key_hash: str) -> Source | None:
        self.asked.append(key_hash)
        return self.by_hash.get(key_hash)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    """The resolver's clock, moved by hand (only the sources module sees it)."""
    fake = FakeMonotonic()
    monkeypatch.setattr(sources, "time", SimpleNamespace(monotonic=fake))
    return fake


@pytest.fixture
def website() -> Source:
    return new_source("Website", WRITE_KEY)[0]


def test_a_known_key_resolves_to_its_source(website: Source) -> None:
    resolver = SourceResolver(CountingFinder(website), ttl_seconds=60)

    assert resolver.source_for(WRITE_KEY) == website


def test_the_table_is_asked_by_the_keys_hash_never_the_key(website: Source) -> None:
    finder = CountingFinder(website)

    SourceResolver(finder, ttl_seconds=60).source_for(WRITE_KEY)

    assert finder.asked == [hash_key(WRITE_KEY)]


def test_an_unknown_key_is_unauthorized(website: Source) -> None:
    resolver = SourceResolver(CountingFinder(website), ttl_seconds=60)

    with pytest.raises(UnauthorizedError, match="unknown write key") as caught:
        resolver.source_for("wk_live_wrong")

    assert caught.value.status == 401


def test_a_revoked_key_is_unauthorized(website: Source) -> None:
    revoked = website.model_copy(update={"revokedAt": "2024-05-01T12:00:00.000Z"})

    with pytest.raises(UnauthorizedError, match="revoked"):
        SourceResolver(CountingFinder(revoked), ttl_seconds=60).source_for(WRITE_KEY)


@pytest.mark.usefixtures("monotonic")
def test_within_the_ttl_a_key_is_looked_up_once(website: Source) -> None:
    finder = CountingFinder(website)
    resolver = SourceResolver(finder, ttl_seconds=60)

    answers = [resolver.source_for(WRITE_KEY) for _ in range(5)]

    assert answers == [website] * 5
    assert len(finder.asked) == 1


@pytest.mark.usefixtures("monotonic")
def test_each_key_is_cached_on_its_own(website: Source) -> None:
    app, app_key = new_source("App")
    finder = CountingFinder(website, app)
    resolver = SourceResolver(finder, ttl_seconds=60)

    for key in (WRITE_KEY, app_key, WRITE_KEY, app_key):
        resolver.source_for(key)

    assert finder.asked == [hash_key(WRITE_KEY), hash_key(app_key)]


@pytest.mark.usefixtures("monotonic")
def test_an_unknown_key_is_looked_up_once_within_the_ttl() -> None:
    # A client retrying with a wrong key does not read the table on every request
    finder = CountingFinder()
    resolver = SourceResolver(finder, ttl_seconds=60)

    for _ in range(3):
        with pytest.raises(UnauthorizedError, match="unknown write key"):
            resolver.source_for("wk_live_wrong")

    assert len(finder.asked) == 1


def test_with_a_ttl_of_zero_every_request_reads_the_table(website: Source) -> None:
    finder = CountingFinder(website)
    resolver = SourceResolver(finder, ttl_seconds=0)

    for _ in range(3):
        resolver.source_for(WRITE_KEY)

    assert len(finder.asked) == 3


def test_after_the_ttl_the_key_is_looked_up_again(website: Source, monotonic: FakeMonotonic) -> None:
    finder = CountingFinder(website)
    resolver = SourceResolver(finder, ttl_seconds=60)
    resolver.source_for(WRITE_KEY)

    monotonic.now += 59.9
    resolver.source_for(WRITE_KEY)
    asked_within_ttl = len(finder.asked)
    monotonic.now += 0.1
    resolver.source_for(WRITE_KEY)

    assert asked_within_ttl == 1
    assert len(finder.asked) == 2


def test_a_key_revoked_meanwhile_stops_working_when_the_ttl_expires(
    website: Source, monotonic: FakeMonotonic
) -> None:
    # Given a resolver that has the active source cached
    finder = CountingFinder(website)
    resolver = SourceResolver(finder, ttl_seconds=60)
    resolver.source_for(WRITE_KEY)

    # When the source is revoked in the table
    finder.by_hash[website.keyHash] = website.model_copy(update={"revokedAt": "2024-05-01T12:00:00.000Z"})

    # Then the key works until the cached answer expires, and not after
    monotonic.now += 30
    assert resolver.source_for(WRITE_KEY) == website
    monotonic.now += 30
    with pytest.raises(UnauthorizedError, match="revoked"):
        resolver.source_for(WRITE_KEY)


@pytest.mark.usefixtures("monotonic")
def test_random_keys_tried_do_not_grow_the_cache_past_its_bound(website: Source) -> None:
    # Given a resolver that keeps at most 8 unknown keys
    resolver = SourceResolver(CountingFinder(website), ttl_seconds=60, known_max=4, unknown_max=8)

    # When a client tries 1,000 random keys within the TTL
    for n in range(1000):
        with pytest.raises(UnauthorizedError):
            resolver.source_for(f"wk_random_{n}")

    # Then the cache holds no more than its bound
    assert resolver.cached() == 8


@pytest.mark.usefixtures("monotonic")
def test_random_keys_tried_never_evict_a_real_sources_answer(website: Source) -> None:
    finder = CountingFinder(website)
    resolver = SourceResolver(finder, ttl_seconds=60, known_max=4, unknown_max=8)
    resolver.source_for(WRITE_KEY)

    for n in range(100):
        with pytest.raises(UnauthorizedError):
            resolver.source_for(f"wk_random_{n}")
    resolver.source_for(WRITE_KEY)

    # The real key was read from the table once: its answer stayed cached throughout
    assert finder.asked.count(hash_key(WRITE_KEY)) == 1


def test_expired_answers_are_let_go(website: Source, monotonic: FakeMonotonic) -> None:
    resolver = SourceResolver(CountingFinder(website), ttl_seconds=60)
    for n in range(10):
        with pytest.raises(UnauthorizedError):
            resolver.source_for(f"wk_random_{n}")

    monotonic.now += 61

    assert resolver.cached() == 0
