"""The ad platforms' audience APIs: Meta Custom Audiences and Google Ads Customer Match.

The only module that talks HTTP to them, through a `Transport` (`(method, url, headers, body) ->
(status, headers, body)`): urllib3 in the cloud (installed with botocore, so no new dependency), the
local runtime's recorder locally (`install`). Requests are built by pure functions (`meta_requests`,
`google_operations`), so their exact shape is unit-tested.

What each platform documents, and how it is followed here:
- Meta, Custom Audience users (https://developers.facebook.com/docs/marketing-api/reference/custom-audience/users,
  and the guide https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences):
  `POST /{custom_audience_id}/users` adds, `DELETE /{custom_audience_id}/users` removes; parameters
  `payload` (`schema` + `data`), `session` (`session_id`, `batch_seq`, `last_batch_flag`,
  `estimated_num_total`: "If you have an upload with more than 10,000 users, you need to split it into
  separate batches; each request can take up to 10,000 users") and `access_token`. The multi-key form
  names its columns `EMAIL` / `PHONE` and carries SHA-256 hashes in them (the `EMAIL_SHA256` names
  belong to the older single-key form, a flat `data` list); one row per person, so Meta matches a
  person's email and phone together, an empty cell where a person has fewer of one kind.
  Marketing API versions expire about a year after release (v24.0 on 2026-11-10, v25.0 on 2027-02-23,
  https://developers.facebook.com/docs/marketing-api/marketing-api-changelog/versions): v26.0 is used.
- Google Ads Customer Match (https://developers.google.com/google-ads/api/docs/remarketing/audience-segments/customer-match/get-started
  and the REST reference of `customers.offlineUserDataJobs`): `offlineUserDataJobs:create` (type
  `CUSTOMER_MATCH_USER_LIST`, `customerMatchUserListMetadata.userList`, and `consent` on add jobs —
  "For remove requests, consent is not needed"), then `:addOperations` (`create` / `remove`
  operations, each a `UserData` of `userIdentifiers`: `hashedEmail` / `hashedPhoneNumber`; at most 20
  identifiers per UserData, which "should represent a single user"; up to 100,000 operations per
  request, 10,000 identifiers per call recommended and used here), then `:run`. Headers
  `developer-token`, `Authorization: Bearer`, `login-customer-id` for a manager account.
  v18 (the design's) was sunset on 2025-08-20 and v22 on 2026-10-07
  (https://developers.google.com/ads/blog/posts/2026/09/google-ads-api-v22-sunset-reminder): v26,
  the latest, is used. NOTE: since 2026-04-01 only developer tokens that uploaded to Customer Match
  between October 2025 and March 2026 may use OfflineUserDataJobService for it; others get
  CUSTOMER_NOT_ALLOWLISTED_FOR_THIS_FEATURE and are pointed at the Data Manager API
  (https://developers.google.com/ads/blog/posts/2026/03/changes-to-customer-match-support-in).
- Rate limits and errors: HTTP 429 and 5xx are retried with exponential backoff and full jitter,
  honouring `Retry-After`. Meta also answers throttling with HTTP 400 and an error code (4, 17, 32,
  613; 80003 for custom audiences) or `is_transient: true`
  (https://developers.facebook.com/docs/marketing-api/error-reference,
  https://developers.facebook.com/docs/marketing-api/overview/rate-limiting): those are retried too.
  Any other 4xx fails at once.

Credentials live in Secrets Manager, one secret per platform (JSON, see `MetaCredentials` /
`GoogleCredentials`), read through Powertools' cached provider and held as `SecretStr`: neither a
token nor a hash is ever logged, and no error message carries one.
"""

from __future__ import annotations

import email.utils
import hashlib
import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from shared.backoff import backoff_delay
from shared.store.aws import client

Platform = Literal["meta", "google"]
Action = Literal["add", "remove"]
IdentifierKind = Literal["email", "phone"]

META_GRAPH = "https://graph.facebook.com/v26.0"
GOOGLE_ADS = "https://googleads.googleapis.com/v26"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
# Both platforms: at most 10,000 identifiers per call (Meta's documented limit per request; Google's
# recommendation per AddOfflineUserDataJobOperations call).
MAX_IDENTIFIERS_PER_REQUEST = 10_000
GOOGLE_MAX_IDENTIFIERS_PER_USER = 20  # UserData.user_identifiers
# Meta error codes that mean "too many calls, wait" (or a temporary outage), whatever the HTTP status.
META_RETRYABLE_CODES = frozenset({1, 2, 4, 17, 32, 613, 80003, 80004})
CREDENTIALS_CACHE_SECONDS = 300
HTTP_TIMEOUT_SECONDS = 10.0

Transport = Callable[[str, str, Mapping[str, str], bytes], tuple[int, Mapping[str, str], bytes]]


# ---------------------------------------------------------------- errors


class AdPlatformError(Exception):
    """A platform request that did not succeed. Messages name the platform, the call and the status,
    never a token or an identifier."""

    retryable = False


class AudienceNotConfiguredError(AdPlatformError):
    """No credentials for the platform, or no id for the audience in them: a deployment error, not
    something a retry mends (it still fails the message: it goes to the dead-letter queue, not lost)."""


class AdPlatformRequestError(AdPlatformError):
    def __init__(self, platform: str, call: str, status: int, retryable: bool, retry_after: float | None):
        detail = f"{platform} answered {status} to {call}" if status else f"{platform} unreachable for {call}"
        super().__init__(detail)
        self.platform = platform
        self.call = call
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


# ---------------------------------------------------------------- credentials


class _Secret(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class MetaCredentials(_Secret):
    """`META_CREDENTIALS_SECRET_ARN`: `{"access_token": "...", "audiences": {"<name>": "<custom
    audience id>"}}`."""

    access_token: SecretStr = Field(min_length=1)
    audiences: dict[str, str] = Field(default_factory=dict)

    def audience_id(self, name: str) -> str:
        found = self.audiences.get(name)
        if not found:
            raise AudienceNotConfiguredError(f"meta: no custom audience id for audience {name!r}")
        return found


class GoogleConsent(_Secret):
    adUserData: Literal["GRANTED", "DENIED"]
    adPersonalization: Literal["GRANTED", "DENIED"]


class GoogleCredentials(_Secret):
    """`GOOGLE_CREDENTIALS_SECRET_ARN`: `{"developer_token", "customer_id", "login_customer_id"?,
    "user_lists": {"<name>": "<user list id or resource name>"}, "consent"?: {"adUserData",
    "adPersonalization"}}` and either `"access_token"` or the OAuth refresh flow's `"client_id"`,
    `"client_secret"`, `"refresh_token"` (an access token lasts an hour: the refresh flow is what a
    deployment wants). `consent` is the advertiser's statement for the users it uploads; Google asks
    for it on add jobs, and it is sent only when stated (no default is invented)."""

    developer_token: SecretStr = Field(min_length=1)
    customer_id: str = Field(pattern=r"^\d{3}-?\d{3}-?\d{4}$")
    login_customer_id: str | None = Field(default=None, pattern=r"^\d{3}-?\d{3}-?\d{4}$")
    user_lists: dict[str, str] = Field(default_factory=dict)
    consent: GoogleConsent | None = None
    access_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    refresh_token: SecretStr | None = None

    @property
    def customer(self) -> str:
        return self.customer_id.replace("-", "")

    def user_list(self, name: str) -> str:
        found = self.user_lists.get(name)
        if not found:
            raise AudienceNotConfiguredError(f"google: no user list for audience {name!r}")
        return found if found.startswith("customers/") else f"customers/{self.customer}/userLists/{found}"

    @property
    def refreshes(self) -> bool:
        return bool(self.client_id and self.client_secret and self.refresh_token)


def parse_credentials(platform: Platform, raw: str | None) -> MetaCredentials | GoogleCredentials:
    """The secret's JSON as the platform's credentials; errors name fields, never values."""
    model: type[MetaCredentials] | type[GoogleCredentials] = (
        MetaCredentials if platform == "meta" else GoogleCredentials
    )
    try:
        credentials = model.model_validate_json(raw or "")
    except ValidationError as error:
        # pydantic's message quotes the input (the secret): only the failing fields are named.
        fields = sorted({".".join(str(p) for p in e["loc"]) or "(document)" for e in error.errors()})
        raise AudienceNotConfiguredError(
            f"{platform} credentials secret is invalid at: {', '.join(fields)}"
        ) from None
    if isinstance(credentials, GoogleCredentials) and not (credentials.access_token or credentials.refreshes):
        raise AudienceNotConfiguredError(
            "google credentials secret needs access_token, or client_id, client_secret and refresh_token"
        )
    return credentials


@cache
def _secrets() -> Any:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=client("secretsmanager"))


def load_credentials(platform: Platform, secret_arn: str | None) -> MetaCredentials | GoogleCredentials:
    """The platform's credentials from Secrets Manager, cached CREDENTIALS_CACHE_SECONDS per warm
    function (a rotated secret is honoured within that time)."""
    if not secret_arn:
        raise AudienceNotConfiguredError(f"no credentials secret configured for {platform}")
    try:
        raw = _secrets().get(secret_arn, max_age=CREDENTIALS_CACHE_SECONDS)
    except Exception as error:  # Powertools wraps every SDK failure in GetParameterError
        raise AudienceNotConfiguredError(f"the {platform} credentials secret could not be read") from error
    return parse_credentials(platform, raw if isinstance(raw, str) else None)


# ---------------------------------------------------------------- transport and retries


def _urllib3_transport() -> Transport:
    import urllib3

    pool = urllib3.PoolManager(timeout=urllib3.Timeout(total=HTTP_TIMEOUT_SECONDS), retries=False)

    def send(
        method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            response = pool.request(method, url, body=body, headers=dict(headers), redirect=False)
        except urllib3.exceptions.HTTPError as error:  # unreachable, timed out: retried like a 5xx
            raise ConnectionError(type(error).__name__) from None
        return response.status, dict(response.headers), response.data

    return send


_installed: dict[str, Any] = {}
_lock = threading.Lock()


def install(transport: Transport, sleep: Callable[[float], None] | None = None) -> None:
    """Route every platform request through `transport` (the local runtime's recorder); `sleep`
    replaces the waits between attempts (locally no real time passes)."""
    with _lock:
        _installed.update(transport=transport, sleep=sleep)


def reset() -> None:
    """Forget an installed transport, cached credentials and tokens (tests swap the backend)."""
    with _lock:
        _installed.clear()
    _default_transport.cache_clear()
    forget_credentials()


def forget_credentials() -> None:
    """Read the secrets again on next use (the local runtime rewrote them)."""
    _secrets.cache_clear()
    _tokens.clear()


@cache
def _default_transport() -> Transport:
    return _urllib3_transport()


def transport(local: bool) -> Transport:
    """The installed transport; locally one must be installed (the engine's recorder), so a local run
    can never reach a real platform."""
    installed: Transport | None = _installed.get("transport")
    if installed is not None:
        return installed
    if local:
        raise AudienceNotConfiguredError("AD_PLATFORMS=local but no local transport is installed")
    return _default_transport()


@dataclass(frozen=True)
class RetryPolicy:
    """A few attempts inside one invocation; what still fails goes back to the queue, whose own
    retries (and then the dead-letter queue) take over. A Retry-After longer than
    `max_retry_after_seconds` is not waited for here: the queue's redelivery waits instead."""

    attempts: int = 4
    base_seconds: float = 0.2
    cap_seconds: float = 5.0
    max_retry_after_seconds: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    draw: Callable[[], float] = random.random  # in [0, 1): the jitter


def default_policy() -> RetryPolicy:
    sleep = _installed.get("sleep")
    return RetryPolicy(sleep=sleep) if sleep is not None else RetryPolicy()


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    call: str  # what the request is, for errors and logs (no personal data)

    def json(self) -> Any:
        return json.loads(self.body)


Classify = Callable[[int, Mapping[str, str], bytes], tuple[bool, float | None]]


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def send(
    platform: str, request: HttpRequest, transport: Transport, policy: RetryPolicy, classify: Classify
) -> Any:
    """Send `request`, retrying what the platform says may succeed later; the decoded JSON answer."""
    for attempt in range(policy.attempts):
        try:
            status, headers, raw = transport(request.method, request.url, request.headers, request.body)
        except OSError:  # unreachable or timed out: may succeed later, as a 5xx may
            status, headers, raw = 0, {}, b""
        if 200 <= status < 300:
            try:
                return json.loads(raw or b"{}")
            except ValueError:
                return {}
        retryable, retry_after = (True, None) if status == 0 else classify(status, headers, raw)
        error = AdPlatformRequestError(platform, request.call, status, retryable, retry_after)
        if not retryable or attempt + 1 == policy.attempts:
            raise error
        wait = backoff_delay(attempt, policy.base_seconds, policy.cap_seconds, policy.draw)
        if retry_after is not None:
            if retry_after > policy.max_retry_after_seconds:
                raise error
            wait = max(wait, retry_after)
        policy.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def classify_meta(status: int, headers: Mapping[str, str], raw: bytes) -> tuple[bool, float | None]:
    retry_after = retry_after_seconds(headers)
    if status == 429 or status >= 500:
        return True, retry_after
    error = _json_body(raw).get("error")
    if isinstance(error, dict) and (
        error.get("is_transient") is True or error.get("code") in META_RETRYABLE_CODES
    ):
        return True, retry_after
    return False, None


def classify_google(status: int, headers: Mapping[str, str], raw: bytes) -> tuple[bool, float | None]:
    if status == 429 or status >= 500:  # RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED
        return True, retry_after_seconds(headers)
    return False, None


# ---------------------------------------------------------------- what is sent


@dataclass(frozen=True)
class Member:
    """One person's hashed identifiers (SHA-256 hex) within one request."""

    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.emails) + len(self.phones)

    def split(self, limit: int) -> list[Member]:
        """This person in parts of at most `limit` identifiers (only ever needed past a platform's
        per-request or per-user limit)."""
        if self.size <= limit:
            return [self]
        pairs = [("email", h) for h in self.emails] + [("phone", h) for h in self.phones]
        return [
            Member(tuple(h for k, h in part if k == "email"), tuple(h for k, h in part if k == "phone"))
            for part in (pairs[i : i + limit] for i in range(0, len(pairs), limit))
        ]


def chunks(members: Iterable[Member], limit: int = MAX_IDENTIFIERS_PER_REQUEST) -> list[list[Member]]:
    """Members in order, in requests of at most `limit` identifiers; a person is never split across
    requests unless they alone exceed the limit."""
    out: list[list[Member]] = []
    current: list[Member] = []
    size = 0
    for whole in members:
        for member in whole.split(limit):
            if current and size + member.size > limit:
                out.append(current)
                current, size = [], 0
            current.append(member)
            size += member.size
    if current:
        out.append(current)
    return out


def _session_id(audience_id: str, action: str, members: Sequence[Member]) -> int:
    # The same upload (a retry of the same batch) gets the same session: derived from what it holds.
    digest = hashlib.sha256(f"{audience_id}#{action}".encode())
    for member in members:
        digest.update(("|".join(member.emails) + "/" + "|".join(member.phones) + ";").encode())
    return int(digest.hexdigest()[:15], 16)


def meta_requests(
    credentials: MetaCredentials, audience: str, action: Action, members: Sequence[Member]
) -> list[HttpRequest]:
    """The Custom Audience `users` requests for `members`: one per ≤ 10,000 identifiers, one session."""
    audience_id = credentials.audience_id(audience)
    parts = chunks(members)
    session_id = _session_id(audience_id, action, members)
    total = sum(len(part) for part in parts)
    requests = []
    for seq, part in enumerate(parts, start=1):
        kinds = [
            k
            for k, present in (("EMAIL", any(m.emails for m in part)), ("PHONE", any(m.phones for m in part)))
            if present
        ]
        rows = []
        for member in part:
            columns = {"EMAIL": member.emails, "PHONE": member.phones}
            rows += [list(row) for row in itertools.zip_longest(*(columns[k] for k in kinds), fillvalue="")]
        body = {
            "payload": {"schema": kinds, "data": rows},
            "session": {
                "session_id": session_id,
                "batch_seq": seq,
                "last_batch_flag": seq == len(parts),
                "estimated_num_total": total,
            },
            "access_token": credentials.access_token.get_secret_value(),
        }
        requests.append(
            HttpRequest(
                "POST" if action == "add" else "DELETE",
                f"{META_GRAPH}/{audience_id}/users",
                {"Content-Type": "application/json"},
                json.dumps(body, separators=(",", ":")).encode(),
                f"custom audience users {'POST' if action == 'add' else 'DELETE'} (batch {seq}/{len(parts)})",
            )
        )
    return requests


def google_operations(action: Action, members: Sequence[Member]) -> list[list[dict[str, Any]]]:
    """`addOperations` bodies' operations for `members`: ≤ 10,000 identifiers per call, ≤ 20 per UserData."""
    kind = "create" if action == "add" else "remove"
    calls = []
    for part in chunks(members):
        operations = []
        for whole in part:
            for member in whole.split(GOOGLE_MAX_IDENTIFIERS_PER_USER):
                identifiers = [{"hashedEmail": h} for h in member.emails] + [
                    {"hashedPhoneNumber": h} for h in member.phones
                ]
                operations.append({kind: {"userIdentifiers": identifiers}})
        calls.append(operations)
    return calls


# ---------------------------------------------------------------- the clients


class MetaAudiences:
    platform: Platform = "meta"

    def __init__(self, credentials: MetaCredentials, transport: Transport, policy: RetryPolicy | None = None):
        self._credentials = credentials
        self._transport = transport
        self._policy = policy or default_policy()

    def apply(self, audience: str, action: Action, members: Sequence[Member]) -> int:
        """Add or remove `members`; the number of requests it took."""
        requests = meta_requests(self._credentials, audience, action, members)
        for request in requests:
            send(self.platform, request, self._transport, self._policy, classify_meta)
        return len(requests)


@dataclass
class _Token:
    value: str
    expires: float


_tokens: dict[str, _Token] = {}


class GoogleCustomerMatch:
    platform: Platform = "google"

    def __init__(
        self,
        credentials: GoogleCredentials,
        transport: Transport,
        policy: RetryPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._credentials = credentials
        self._transport = transport
        self._policy = policy or default_policy()
        self._monotonic = monotonic

    def apply(self, audience: str, action: Action, members: Sequence[Member]) -> int:
        """One offline user data job: create, add the operations (≤ 10,000 identifiers a call), run."""
        credentials = self._credentials
        user_list = credentials.user_list(audience)
        metadata: dict[str, Any] = {"userList": user_list}
        if action == "add" and credentials.consent is not None:
            metadata["consent"] = credentials.consent.model_dump()
        created = self._post(
            f"{GOOGLE_ADS}/customers/{credentials.customer}/offlineUserDataJobs:create",
            {"job": {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": metadata}},
            "offlineUserDataJobs:create",
        )
        job = created.get("resourceName") if isinstance(created, dict) else None
        if not isinstance(job, str) or not job.startswith(
            f"customers/{credentials.customer}/offlineUserDataJobs/"
        ):
            raise AdPlatformRequestError(
                self.platform, "offlineUserDataJobs:create (no job in the answer)", 200, True, None
            )
        calls = google_operations(action, members)
        for operations in calls:
            self._post(
                f"{GOOGLE_ADS}/{job}:addOperations",
                {"operations": operations},
                "offlineUserDataJobs:addOperations",
            )
        self._post(f"{GOOGLE_ADS}/{job}:run", {}, "offlineUserDataJobs:run")
        return len(calls) + 2

    def _post(self, url: str, body: dict[str, Any], call: str) -> Any:
        request = HttpRequest(
            "POST", url, self._headers(), json.dumps(body, separators=(",", ":")).encode(), call
        )
        return send(self.platform, request, self._transport, self._policy, classify_google)

    def _headers(self) -> dict[str, str]:
        credentials = self._credentials
        headers = {
            "Content-Type": "application/json",
            "developer-token": credentials.developer_token.get_secret_value(),
            "Authorization": f"Bearer {self._access_token()}",
        }
        if credentials.login_customer_id:
            headers["login-customer-id"] = credentials.login_customer_id.replace("-", "")
        return headers

    def _access_token(self) -> str:
        credentials = self._credentials
        if not credentials.refreshes:
            assert credentials.access_token is not None  # parse_credentials requires one of the two
            return credentials.access_token.get_secret_value()
        assert credentials.client_id and credentials.client_secret and credentials.refresh_token
        key = hashlib.sha256(credentials.refresh_token.get_secret_value().encode()).hexdigest()
        cached = _tokens.get(key)
        if cached is not None and cached.expires > self._monotonic():
            return cached.value
        # OAuth 2.0 refresh (RFC 6749 §6), as Google's token endpoint takes it: a form body.
        form = urlencode(
            {
                "grant_type": "refresh_token",
                "client_id": credentials.client_id,
                "client_secret": credentials.client_secret.get_secret_value(),
                "refresh_token": credentials.refresh_token.get_secret_value(),
            }
        ).encode()
        request = HttpRequest(
            "POST",
            GOOGLE_TOKEN_URL,
            {"Content-Type": "application/x-www-form-urlencoded"},
            form,
            "oauth2 token refresh",
        )
        answer = send(self.platform, request, self._transport, self._policy, classify_google)
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise AdPlatformRequestError(
                self.platform, "oauth2 token refresh (no token in the answer)", 200, False, None
            )
        lifetime = answer.get("expires_in", 3600)
        lifetime = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
        _tokens[key] = _Token(token, self._monotonic() + max(0.0, lifetime - 60))  # a minute's margin
        return token


AudienceClient = MetaAudiences | GoogleCustomerMatch


@dataclass
class AdPlatforms:
    """The platform clients of one invocation, built on first use from the secrets named in the
    settings. `local` (AD_PLATFORMS=local): requests go to the installed recorder only."""

    meta_secret_arn: str | None
    google_secret_arn: str | None
    local: bool = False
    policy: RetryPolicy | None = None
    _clients: dict[str, AudienceClient] = field(default_factory=dict)

    def client(self, platform: Platform) -> AudienceClient:
        found = self._clients.get(platform)
        if found is None:
            secret = self.meta_secret_arn if platform == "meta" else self.google_secret_arn
            credentials = load_credentials(platform, secret)
            chosen = transport(self.local)
            policy = self.policy or default_policy()
            if isinstance(credentials, MetaCredentials):
                found = MetaAudiences(credentials, chosen, policy)
            else:
                found = GoogleCustomerMatch(credentials, chosen, policy)
            self._clients[platform] = found
        return found
