"""The ad platforms' requests as sent (shared/store/ad_platforms.py): exact JSON per platform, the
10,000-identifier limit, retries on rate limits and 5xx, and credentials that never leak."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.store.ad_platforms import (
    GOOGLE_ADS,
    META_GRAPH,
    AdPlatformRequestError,
    AudienceNotConfiguredError,
    GoogleCredentials,
    GoogleCustomerMatch,
    Member,
    MetaAudiences,
    MetaCredentials,
    RetryPolicy,
    google_operations,
    meta_requests,
    parse_credentials,
    retry_after_seconds,
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


ADA = sha("ada@example.com")
ADA_WORK = sha("ada@work.example")
ADA_PHONE_META = sha("447700900123")
ADA_PHONE_GOOGLE = sha("+447700900123")

META = MetaCredentials.model_validate(
    {"access_token": "meta-token", "audiences": {"cart-abandoners": "6123"}}
)
GOOGLE = GoogleCredentials.model_validate(
    {
        "developer_token": "dev-token",
        "access_token": "google-token",
        "customer_id": "123-456-7890",
        "login_customer_id": "111-222-3333",
        "user_lists": {"cart-abandoners": "987"},
        "consent": {"adUserData": "GRANTED", "adPersonalization": "GRANTED"},
    }
)


class FakeTransport:
    """Answers from a script (one answer per request, the last repeated); records every request."""

    def __init__(self, *answers: tuple[int, Mapping[str, str], Any]):
        self.answers = list(answers) or [(200, {}, {})]
        self.sent: list[tuple[str, str, dict[str, str], Any]] = []

    def __call__(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Any:
        decoded = json.loads(body) if body.startswith(b"{") else body.decode()
        self.sent.append((method, url, dict(headers), decoded))
        status, answer_headers, answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if callable(answer):
            answer = answer(url)
        return status, answer_headers, json.dumps(answer).encode()


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def policy(sleeps: Sleeps) -> RetryPolicy:
    return RetryPolicy(attempts=4, base_seconds=0.2, cap_seconds=5.0, sleep=sleeps, draw=lambda: 0.5)


def emails(count: int) -> list[Member]:
    return [Member(emails=(sha(f"person{i}@example.com"),)) for i in range(count)]


# ---------------------------------------------------------------- Meta


def test_a_meta_add_posts_the_hashed_email_to_the_audience_users_edge() -> None:
    (request,) = meta_requests(META, "cart-abandoners", "add", [Member(emails=(ADA,))])

    assert (request.method, request.url) == ("POST", f"{META_GRAPH}/6123/users")
    body = request.json()
    assert body == {
        "payload": {"schema": ["EMAIL"], "data": [[ADA]]},
        "session": {
            "session_id": body["session"]["session_id"],
            "batch_seq": 1,
            "last_batch_flag": True,
            "estimated_num_total": 1,
        },
        "access_token": "meta-token",
    }
    assert META_GRAPH == "https://graph.facebook.com/v26.0"


def test_a_meta_removal_is_a_delete_of_the_same_payload() -> None:
    (request,) = meta_requests(META, "cart-abandoners", "remove", [Member(emails=(ADA,))])

    assert (request.method, request.url) == ("DELETE", f"{META_GRAPH}/6123/users")
    assert request.json()["payload"] == {"schema": ["EMAIL"], "data": [[ADA]]}


def test_a_persons_emails_and_phone_share_rows_with_an_empty_cell_where_one_runs_out() -> None:
    member = Member(emails=(ADA, ADA_WORK), phones=(ADA_PHONE_META,))

    (request,) = meta_requests(META, "cart-abandoners", "add", [member, Member(phones=(sha("15550001"),))])

    assert request.json()["payload"] == {
        "schema": ["EMAIL", "PHONE"],
        "data": [[ADA, ADA_PHONE_META], [ADA_WORK, ""], ["", sha("15550001")]],
    }


def test_ten_thousand_identifiers_are_one_meta_request() -> None:
    requests = meta_requests(META, "cart-abandoners", "add", emails(10_000))

    assert len(requests) == 1
    assert len(requests[0].json()["payload"]["data"]) == 10_000


def test_ten_thousand_and_one_are_two_meta_requests_of_one_session() -> None:
    requests = meta_requests(META, "cart-abandoners", "add", emails(10_001))

    sessions = [r.json()["session"] for r in requests]
    assert [len(r.json()["payload"]["data"]) for r in requests] == [10_000, 1]
    assert [(s["batch_seq"], s["last_batch_flag"], s["estimated_num_total"]) for s in sessions] == [
        (1, False, 10_001),
        (2, True, 10_001),
    ]
    assert sessions[0]["session_id"] == sessions[1]["session_id"]


def test_an_audience_missing_from_the_credentials_fails_loudly() -> None:
    with pytest.raises(AudienceNotConfiguredError, match="vip"):
        meta_requests(META, "vip", "add", [Member(emails=(ADA,))])


# ---------------------------------------------------------------- Google


def _job(url: str) -> dict[str, str]:
    return {"resourceName": "customers/1234567890/offlineUserDataJobs/42"} if url.endswith(":create") else {}


def test_a_google_add_creates_a_job_adds_the_operations_and_runs_it() -> None:
    transport = FakeTransport((200, {}, _job))
    member = Member(emails=(ADA,), phones=(ADA_PHONE_GOOGLE,))

    requests = GoogleCustomerMatch(GOOGLE, transport, policy(Sleeps())).apply(
        "cart-abandoners", "add", [member]
    )

    assert requests == 3
    assert [(method, url, body) for method, url, _, body in transport.sent] == [
        (
            "POST",
            f"{GOOGLE_ADS}/customers/1234567890/offlineUserDataJobs:create",
            {
                "job": {
                    "type": "CUSTOMER_MATCH_USER_LIST",
                    "customerMatchUserListMetadata": {
                        "userList": "customers/1234567890/userLists/987",
                        "consent": {"adUserData": "GRANTED", "adPersonalization": "GRANTED"},
                    },
                }
            },
        ),
        (
            "POST",
            f"{GOOGLE_ADS}/customers/1234567890/offlineUserDataJobs/42:addOperations",
            {
                "operations": [
                    {
                        "create": {
                            "userIdentifiers": [{"hashedEmail": ADA}, {"hashedPhoneNumber": ADA_PHONE_GOOGLE}]
                        }
                    }
                ]
            },
        ),
        ("POST", f"{GOOGLE_ADS}/customers/1234567890/offlineUserDataJobs/42:run", {}),
    ]
    headers = transport.sent[0][2]
    assert headers == {
        "Content-Type": "application/json",
        "developer-token": "dev-token",
        "Authorization": "Bearer google-token",
        "login-customer-id": "1112223333",
    }
    assert GOOGLE_ADS == "https://googleads.googleapis.com/v26"


def test_a_google_removal_uses_remove_operations_and_states_no_consent() -> None:
    transport = FakeTransport((200, {}, _job))

    GoogleCustomerMatch(GOOGLE, transport, policy(Sleeps())).apply(
        "cart-abandoners", "remove", [Member(emails=(ADA,))]
    )

    create, add, _ = (body for _, _, _, body in transport.sent)
    assert "consent" not in create["job"]["customerMatchUserListMetadata"]
    assert add == {"operations": [{"remove": {"userIdentifiers": [{"hashedEmail": ADA}]}}]}


def test_ten_thousand_and_one_identifiers_are_two_google_calls_in_one_job() -> None:
    assert [len(ops) for ops in google_operations("add", emails(10_000))] == [10_000]
    assert [len(ops) for ops in google_operations("add", emails(10_001))] == [10_000, 1]

    transport = FakeTransport((200, {}, _job))
    GoogleCustomerMatch(GOOGLE, transport, policy(Sleeps())).apply("cart-abandoners", "add", emails(10_001))
    assert [url.rsplit(":", 1)[1] for _, url, _, _ in transport.sent] == [
        "create",
        "addOperations",
        "addOperations",
        "run",
    ]


def test_a_person_with_more_than_twenty_identifiers_becomes_several_user_data() -> None:
    many = Member(emails=tuple(sha(f"ada{i}@example.com") for i in range(25)))

    (operations,) = google_operations("add", [many])

    assert [len(op["create"]["userIdentifiers"]) for op in operations] == [20, 5]


def test_the_refresh_flow_fetches_an_access_token_once_and_reuses_it() -> None:
    refreshing = GoogleCredentials.model_validate(
        {
            **GOOGLE.model_dump(exclude={"access_token", "developer_token"}),
            "developer_token": "dev-token",
            "client_id": "client",
            "client_secret": "secret",
            "refresh_token": f"refresh-{id(object())}",
        }
    )

    def answer(url: str) -> dict[str, Any]:
        if url.startswith("https://oauth2.googleapis.com/token"):
            return {"access_token": "fresh-token", "expires_in": 3599}
        return _job(url)

    transport = FakeTransport((200, {}, answer))
    client = GoogleCustomerMatch(refreshing, transport, policy(Sleeps()), monotonic=lambda: 1000.0)
    client.apply("cart-abandoners", "add", [Member(emails=(ADA,))])
    client.apply("cart-abandoners", "add", [Member(emails=(ADA,))])

    token_calls = [body for _, url, _, body in transport.sent if "oauth2" in url]
    assert len(token_calls) == 1
    assert "grant_type=refresh_token" in token_calls[0]
    assert {h["Authorization"] for _, url, h, _ in transport.sent if "googleads" in url} == {
        "Bearer fresh-token"
    }


# ---------------------------------------------------------------- retries


def test_a_rate_limit_is_retried_after_the_time_the_platform_asks() -> None:
    transport = FakeTransport((429, {"Retry-After": "3"}, {"error": {"code": 17}}), (200, {}, {}))
    sleeps = Sleeps()

    MetaAudiences(META, transport, policy(sleeps)).apply("cart-abandoners", "add", [Member(emails=(ADA,))])

    assert len(transport.sent) == 2
    assert sleeps.waits == [3.0]


def test_server_errors_are_retried_with_growing_backoff_then_fail_retryable() -> None:
    transport = FakeTransport((503, {}, {"error": {"message": "unavailable"}}))
    sleeps = Sleeps()

    with pytest.raises(AdPlatformRequestError) as failed:
        MetaAudiences(META, transport, policy(sleeps)).apply(
            "cart-abandoners", "add", [Member(emails=(ADA,))]
        )

    assert failed.value.retryable and failed.value.status == 503
    assert len(transport.sent) == 4
    assert sleeps.waits == [0.1, 0.2, 0.4]  # full jitter at draw 0.5: half of 0.2 × 2^attempt


def test_meta_throttling_answered_as_400_with_its_code_is_retried() -> None:
    transport = FakeTransport(
        (400, {}, {"error": {"code": 80003, "message": "too many calls"}}), (200, {}, {})
    )

    MetaAudiences(META, transport, policy(Sleeps())).apply("cart-abandoners", "add", [Member(emails=(ADA,))])

    assert len(transport.sent) == 2


def test_any_other_client_error_fails_at_once() -> None:
    transport = FakeTransport((400, {}, {"error": {"code": 100, "message": "Invalid parameter"}}))
    sleeps = Sleeps()

    with pytest.raises(AdPlatformRequestError) as failed:
        MetaAudiences(META, transport, policy(sleeps)).apply(
            "cart-abandoners", "add", [Member(emails=(ADA,))]
        )

    assert not failed.value.retryable
    assert len(transport.sent) == 1 and sleeps.waits == []


def test_a_retry_after_longer_than_an_invocation_should_wait_is_left_to_the_queue() -> None:
    transport = FakeTransport((429, {"Retry-After": "120"}, {}))
    sleeps = Sleeps()

    with pytest.raises(AdPlatformRequestError) as failed:
        GoogleCustomerMatch(GOOGLE, transport, policy(sleeps)).apply(
            "cart-abandoners", "add", [Member(emails=(ADA,))]
        )

    assert failed.value.retryable and failed.value.retry_after == 120
    assert len(transport.sent) == 1 and sleeps.waits == []


def test_a_failure_names_neither_token_nor_identifier() -> None:
    transport = FakeTransport((400, {}, {"error": {"message": f"bad {ADA}"}}))

    with pytest.raises(AdPlatformRequestError) as failed:
        MetaAudiences(META, transport, policy(Sleeps())).apply(
            "cart-abandoners", "add", [Member(emails=(ADA,))]
        )

    assert ADA not in str(failed.value) and "meta-token" not in str(failed.value)


def test_retry_after_may_be_an_http_date() -> None:
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)

    assert retry_after_seconds({"retry-after": "Sat, 28 Nov 2026 12:00:07 GMT"}, now) == 7.0
    assert retry_after_seconds({"Retry-After": "5"}, now) == 5.0
    assert retry_after_seconds({}, now) is None


# ---------------------------------------------------------------- credentials


def test_an_invalid_secret_is_refused_naming_fields_not_values() -> None:
    with pytest.raises(AudienceNotConfiguredError) as refused:
        parse_credentials(
            "google", json.dumps({"developer_token": "s3cr3t-dev", "customer_id": "not-a-customer"})
        )

    assert "customer_id" in str(refused.value)
    assert "s3cr3t-dev" not in str(refused.value) and "not-a-customer" not in str(refused.value)


def test_google_credentials_need_a_token_or_the_refresh_flow() -> None:
    with pytest.raises(AudienceNotConfiguredError, match="refresh_token"):
        parse_credentials("google", json.dumps({"developer_token": "d", "customer_id": "1234567890"}))


def test_credentials_never_show_their_tokens() -> None:
    shown = f"{META!r} {META} {GOOGLE!r}"

    assert "meta-token" not in shown and "google-token" not in shown and "dev-token" not in shown
