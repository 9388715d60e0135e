"""Sources and their write keys. A key is shown once, when its source is created; only its SHA-256
is stored, and it is never logged."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable

from cachetools import TTLCache
from pydantic import Field

from shared import clock
from shared.ingest.calls import UnauthorizedError
from shared.models.base import Model


class Source(Model):
    sourceId: str
    name: str = Field(min_length=1, max_length=100)
    keyHash: str
    createdAt: str
    revokedAt: str | None = None


def hash_key(write_key: str) -> str:
    return hashlib.sha256(write_key.encode("utf-8")).hexdigest()


def new_source(name: str, write_key: str | None = None) -> tuple[Source, str]:
    """A new source and its write key (generated unless given)."""
    key = write_key or secrets.token_urlsafe(24)
    source = Source(
        sourceId=f"src_{uuid.uuid4().hex[:16]}",
        name=name,
        keyHash=hash_key(key),
        createdAt=clock.iso(clock.now()),
    )
    return source, key


def presented_key(authorization: str | None, body_key: str | None) -> str:
    """The write key a request presents: the HTTP Basic username (Segment's scheme), else `writeKey`
    in the body (analytics.js and some server SDKs)."""
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            raise UnauthorizedError("use HTTP Basic auth with the write key as the username")
        try:
            username = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError) as error:
            raise UnauthorizedError("malformed HTTP Basic credentials") from error
        if username:
            return username
    if body_key:
        return body_key
    raise UnauthorizedError("missing write key: send it as the HTTP Basic username or as writeKey")


# How many answers the write-key cache keeps, each way. Known keys and unknown keys are kept apart, so
# that a client trying random keys only ever evicts other unknown keys: it cannot grow the memory (each
# cache is bounded) nor push a real source out (which would cost a table read per request).
KNOWN_KEYS_CACHED = 1024
UNKNOWN_KEYS_CACHED = 4096


class SourceResolver:
    """Write key → source, with a short cache so that ingest reads the table once per key per
    `ttl_seconds`, not once per request. A revoked key stops working within that time."""

    def __init__(
        self,
        find: Callable[[str], Source | None],
        ttl_seconds: float,
        known_max: int = KNOWN_KEYS_CACHED,
        unknown_max: int = UNKNOWN_KEYS_CACHED,
    ):
        self._find = find
        self._ttl = ttl_seconds
        # The timer is looked up at each call (not bound once), so that tests can move the clock.
        ttl = max(ttl_seconds, 0)
        self._known: TTLCache[str, Source] = TTLCache(known_max, ttl, timer=lambda: time.monotonic())
        self._unknown: TTLCache[str, None] = TTLCache(unknown_max, ttl, timer=lambda: time.monotonic())
        # cachetools' caches are not thread-safe; the local runtime runs a function's calls concurrently.
        self._lock = threading.Lock()

    def source_for(self, write_key: str) -> Source:
        digest = hash_key(write_key)
        with self._lock:
            source = self._known.get(digest)
            cached = source is not None or digest in self._unknown
        if not cached:
            source = self._find(digest)
            if self._ttl > 0:
                with self._lock:
                    if source is None:
                        self._unknown[digest] = None
                    else:
                        self._known[digest] = source
        if source is None:
            raise UnauthorizedError("unknown write key")
        if source.revokedAt:
            raise UnauthorizedError("this write key was revoked")
        return source

    def cached(self) -> int:
        """How many answers are held (known and unknown keys)."""
        with self._lock:
            return len(self._known) + len(self._unknown)
