"""The local stand-in for the ad platforms: a `Transport` (shared/store/ad_platforms.py) that parses
each request as Meta's Graph API or Google Ads' REST API would, and records what the platform would
have received, in order, on the virtual clock (`GET /_local/audiences`).

Only operations are listed (an add or remove of identifiers): Google's `offlineUserDataJobs:create`
and `:run` are answered (a job must exist before operations are added to it) but not listed, and
neither is the OAuth token refresh. A request that is refused (an injected failure, a request the
platform would reject) is not listed: the platform did not apply it.

`fail(status, count)` makes the next `count` requests (optionally of one platform) fail with `status`
(and `Retry-After` when given): the way tests exercise retries and dead-lettering.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from shared import clock

LOCAL_GOOGLE_CUSTOMER = "1234567890"
_META_USERS = re.compile(r"^/v\d+\.\d+/(?P<audience>[^/]+)/users$")
_GOOGLE_CREATE = re.compile(r"^/v\d+/customers/(?P<customer>\d+)/offlineUserDataJobs:create$")
_GOOGLE_JOB = re.compile(
    r"^/v\d+/(?P<job>customers/\d+/offlineUserDataJobs/\d+):(?P<verb>addOperations|run)$"
)
_USER_LIST = re.compile(r"^customers/\d+/userLists/(?P<name>[^/]+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Answer = tuple[int, Mapping[str, str], bytes]


def local_credentials(audiences: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Placeholder secrets for the local runtime, one per platform, naming every audience of the
    catalogue (`(platform, audience)` pairs). Locally an audience's id is its name, so that the
    recorder lists the audience by the name the segment gives it."""
    pairs = list(audiences)
    return {
        "meta": {
            "access_token": "local-meta-token",
            "audiences": {name: name for platform, name in pairs if platform == "meta"},
        },
        "google": {
            "developer_token": "local-developer-token",
            "access_token": "local-google-token",
            "customer_id": LOCAL_GOOGLE_CUSTOMER,
            "user_lists": {name: name for platform, name in pairs if platform == "google"},
        },
    }


@dataclass
class _Failure:
    status: int
    remaining: int
    platform: str | None
    retry_after: float | None


class AudienceRecorder:
    def __init__(self, now: Callable[[], datetime] = clock.now):
        self._now = now
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._failures: list[_Failure] = []
        self._jobs: dict[str, str] = {}  # Google job resource name -> audience
        self._job_ids = itertools.count(1)

    # ------------------------------------------------------------ driving and reading

    def fail(
        self, status: int, count: int = 1, platform: str | None = None, retry_after: float | None = None
    ) -> None:
        """The next `count` requests (to `platform`, or to any) fail with `status`."""
        if not 400 <= status <= 599 or count < 1 or platform not in (None, "meta", "google"):
            raise ValueError(
                "a failure is a 4xx or 5xx status, a count of at least 1, and meta, google or any"
            )
        with self._lock:
            self._failures.append(_Failure(status, count, platform, retry_after))

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._requests]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._jobs.clear()

    # ------------------------------------------------------------ the transport

    def __call__(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Answer:
        parts = urlsplit(url)
        platform = {
            "graph.facebook.com": "meta",
            "googleads.googleapis.com": "google",
            "oauth2.googleapis.com": "google",
        }.get(parts.netloc)
        if platform is None:
            return _error(404, "no such platform locally")
        with self._lock:
            injected = self._injected(platform)
            if injected is not None:
                return injected
            if platform == "meta":
                return self._meta(method, parts.path, body)
            return self._google(
                method, parts.netloc, parts.path, {k.lower(): v for k, v in headers.items()}, body
            )

    def _injected(self, platform: str) -> Answer | None:
        for failure in self._failures:
            if failure.platform in (None, platform):
                failure.remaining -= 1
                if failure.remaining == 0:
                    self._failures.remove(failure)
                extra = {} if failure.retry_after is None else {"Retry-After": f"{failure.retry_after:g}"}
                return _error(failure.status, "injected failure", extra)
        return None

    def _record(self, platform: str, audience: str, action: str, identifiers: list[dict[str, str]]) -> None:
        self._requests.append(
            {
                "platform": platform,
                "audience": audience,
                "action": action,
                "hashes": [i["sha256"] for i in identifiers],
                "identifiers": identifiers,
                "at": clock.iso(self._now()),
            }
        )

    def _meta(self, method: str, path: str, body: bytes) -> Answer:
        found = _META_USERS.match(path)
        if found is None or method not in ("POST", "DELETE"):
            return _error(400, "unsupported request", code=100)
        document = _json(body)
        if not isinstance(document, dict) or not document.get("access_token"):
            return _error(400, "an access token is required", code=190)
        payload = document.get("payload")
        session = document.get("session")
        if not isinstance(payload, dict) or not isinstance(session, dict):
            return _error(400, "payload and session are required", code=100)
        schema, data = payload.get("schema"), payload.get("data")
        if isinstance(schema, str):  # the single-key form: a flat list
            schema, data = [schema], [[value] for value in data] if isinstance(data, list) else None
        kinds = {"EMAIL": "email", "EMAIL_SHA256": "email", "PHONE": "phone", "PHONE_SHA256": "phone"}
        if not isinstance(schema, list) or not schema or any(key not in kinds for key in schema):
            return _error(400, "invalid schema", code=100)
        if not isinstance(data, list) or not data or len(data) > 10_000:
            return _error(400, "data must hold 1 to 10000 rows", code=100)
        identifiers = []
        for row in data:
            if not isinstance(row, list) or len(row) != len(schema):
                return _error(400, "a row does not match the schema", code=100)
            for key, value in zip(schema, row, strict=True):
                if value == "":
                    continue
                if not isinstance(value, str) or not _SHA256.match(value):
                    return _error(400, "values must be SHA-256 hashes", code=100)
                identifiers.append({"kind": kinds[key], "sha256": value})
        self._record("meta", found["audience"], "add" if method == "POST" else "remove", identifiers)
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps(
                {
                    "audience_id": found["audience"],
                    "session_id": session.get("session_id"),
                    "num_received": len(data),
                }
            ).encode(),
        )

    def _google(self, method: str, host: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if host == "oauth2.googleapis.com":
            return (
                200,
                {"Content-Type": "application/json"},
                b'{"access_token":"local-google-token","expires_in":3599}',
            )
        if method != "POST":
            return _error(404, "unsupported request")
        if not headers.get("developer-token") or not headers.get("authorization", "").startswith("Bearer "):
            return _error(401, "developer-token and Authorization: Bearer are required")
        document = _json(body)
        if not isinstance(document, dict):
            return _error(400, "a JSON body is required")
        if created := _GOOGLE_CREATE.match(path):
            job = document.get("job") or {}
            metadata = job.get("customerMatchUserListMetadata") or {}
            user_list = _USER_LIST.match(str(metadata.get("userList", "")))
            if job.get("type") != "CUSTOMER_MATCH_USER_LIST" or user_list is None:
                return _error(400, "a CUSTOMER_MATCH_USER_LIST job with a userList is required")
            resource = f"customers/{created['customer']}/offlineUserDataJobs/{next(self._job_ids)}"
            self._jobs[resource] = user_list["name"]
            return 200, {"Content-Type": "application/json"}, json.dumps({"resourceName": resource}).encode()
        found = _GOOGLE_JOB.match(path)
        if found is None or found["job"] not in self._jobs:
            return _error(404, "no such job")
        if found["verb"] == "run":
            return 200, {"Content-Type": "application/json"}, b"{}"
        operations = document.get("operations")
        if not isinstance(operations, list) or not operations:
            return _error(400, "operations are required")
        runs: list[tuple[str, list[dict[str, str]]]] = []
        for operation in operations:
            if not isinstance(operation, dict) or len(operation) != 1:
                return _error(400, "an operation is one of create, remove")
            ((kind, user_data),) = operation.items()
            if kind not in ("create", "remove") or not isinstance(user_data, dict):
                return _error(400, "an operation is one of create, remove")
            identifiers = []
            for identifier in user_data.get("userIdentifiers") or []:
                ((field, value),) = identifier.items()
                if field not in ("hashedEmail", "hashedPhoneNumber") or not _SHA256.match(str(value)):
                    return _error(400, "userIdentifiers are hashedEmail / hashedPhoneNumber SHA-256 hashes")
                identifiers.append({"kind": "email" if field == "hashedEmail" else "phone", "sha256": value})
            action = "add" if kind == "create" else "remove"
            if runs and runs[-1][0] == action:
                runs[-1][1].extend(identifiers)
            else:
                runs.append((action, identifiers))
        for action, identifiers in runs:
            self._record("google", self._jobs[found["job"]], action, identifiers)
        return 200, {"Content-Type": "application/json"}, b"{}"


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


def _error(
    status: int, message: str, headers: Mapping[str, str] | None = None, code: int | None = None
) -> Answer:
    error: dict[str, Any] = {"message": message}
    if code is not None:
        error["code"] = code
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps({"error": error}).encode(),
    )
