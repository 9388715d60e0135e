"""The local HTTP server over real sockets: it frames requests as API Gateway does, answers what it
cannot route like API Gateway, survives concurrent and hostile clients, logs without personal data,
and stops promptly."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import STOP_SECONDS, WRITE_KEY, LocalProcess, LocalRuntime, basic
from tests.payloads import load

MAX_BODY = 10 * 1024 * 1024
CLIENT_TIMEOUT = 60  # seconds; generous, the server's own read timeout is what is tested


def _address(local: LocalRuntime) -> tuple[str, int]:
    url = urlsplit(local.url)
    return str(url.hostname), int(url.port or 80)


def _exchange(local: LocalRuntime, raw: bytes) -> bytes:
    """Send raw bytes; everything the server answers until it closes the connection."""
    with socket.create_connection(_address(local), timeout=CLIENT_TIMEOUT) as connection:
        connection.sendall(raw)
        connection.shutdown(socket.SHUT_WR)  # nothing more: the server need not wait for the rest
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def _status_lines(received: bytes) -> list[str]:
    return [line for line in received.decode("latin-1").split("\r\n") if line.startswith("HTTP/1.")]


def _body(received: bytes) -> Any:
    return json.loads(received.split(b"\r\n\r\n", 1)[1])


def _authorization() -> str:
    return basic(WRITE_KEY)["Authorization"]


def _track(tag: str) -> bytes:
    return json.dumps(load("track-product-added", userId=f"user-{tag}", messageId=f"msg-{tag}")).encode()


def _logged_after(local: LocalRuntime, marker: str, count: int = 1) -> str:
    """The server's output once `marker` has appeared `count` times (the access log is written
    after the answer, so wait for it)."""
    for _ in range(500):
        text = "".join(local.output)
        if text.count(marker) >= count:
            return text
        threading.Event().wait(0.02)
    raise AssertionError(f"{marker!r} never logged:\n{text[-3000:]}")


@pytest.mark.parametrize("method", ["PATCH", "TRACE", "HEAD", "PUT", "PROPFIND", "BREW"])
def test_a_method_without_a_route_is_answered_404_as_api_gateway_does(
    local: LocalRuntime, method: str
) -> None:
    connection = http.client.HTTPConnection(*_address(local), timeout=CLIENT_TIMEOUT)
    connection.request(method, "/v1/track", headers={"Authorization": _authorization()})
    response = connection.getresponse()
    body = response.read()
    connection.close()

    assert response.status == 404
    if method != "HEAD":  # a HEAD answer has no body
        assert json.loads(body) == {"message": "Not Found"}


def test_an_unknown_path_is_answered_404_not_found(local: LocalRuntime) -> None:
    assert local.request("GET", "/nowhere") == (404, {"message": "Not Found"})


def test_a_content_length_that_is_not_a_number_is_answered_400(local: LocalRuntime) -> None:
    received = _exchange(
        local,
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nContent-Type: application/json\r\n"
        b"Authorization: " + _authorization().encode() + b"\r\n\r\n{}",
    )

    assert _status_lines(received) == ["HTTP/1.1 400 BAD REQUEST"]
    assert "Content-Length" in _body(received)["error"]


def test_an_overstated_content_length_times_out_while_others_are_served(local: LocalRuntime) -> None:
    with socket.create_connection(_address(local), timeout=CLIENT_TIMEOUT) as stalled:
        # Announces 100 bytes, sends 2, then waits.
        stalled.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}")
        # Meanwhile the server answers everyone else.
        for _ in range(5):
            assert local.request("GET", "/_local/health")[0] == 200
        received = b""
        while chunk := stalled.recv(65536):
            received += chunk

    # The stalled request is answered 408 (or closed without an answer), never left hanging.
    assert _status_lines(received) in ([], ["HTTP/1.1 408 REQUEST TIMEOUT"])
    assert local.request("GET", "/_local/health")[0] == 200


def test_a_chunked_body_is_read_as_the_body_and_never_as_another_request(local: LocalRuntime) -> None:
    tag = uuid.uuid4().hex
    body = _track(tag)
    # The second chunk is a whole request of its own: a server that ignores the chunked framing runs it.
    smuggled = b"GET /_local/health HTTP/1.1\r\nHost: x\r\n\r\n"
    chunks = b"%x\r\n%s\r\n" % (len(body), body) + b"0\r\n\r\n"
    received = _exchange(
        local,
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\nAuthorization: "
        + _authorization().encode()
        + b"\r\n\r\n"
        + chunks,
    )
    assert _status_lines(received) == ["HTTP/1.1 200 OK"]
    assert _body(received) == {"success": True}
    assert any(e["detail"].get("correlationId") == f"msg-{tag}" for e in local.events())

    # A chunk of bytes that look like a request is data, not a request.
    received = _exchange(
        local,
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\nAuthorization: "
        + _authorization().encode()
        + b"\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled),
    )
    assert _status_lines(received) == ["HTTP/1.1 400 BAD REQUEST"]


def test_a_content_length_with_a_transfer_encoding_is_refused(local: LocalRuntime) -> None:
    received = _exchange(
        local,
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /_local/health HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    assert _status_lines(received) == ["HTTP/1.1 400 BAD REQUEST"]


def test_a_body_over_10_mb_is_answered_413(local: LocalRuntime) -> None:
    received = _exchange(
        local,
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
    )
    assert _status_lines(received) == ["HTTP/1.1 413 REQUEST ENTITY TOO LARGE"]

    chunk = b"x" * (1024 * 1024)
    received = _exchange(
        local,
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 11
        + b"0\r\n\r\n",
    )
    assert _status_lines(received) == ["HTTP/1.1 413 REQUEST ENTITY TOO LARGE"]


def test_sixteen_keep_alive_clients_are_all_answered(local: LocalRuntime) -> None:
    def client(number: int) -> list[int]:
        # One keep-alive connection per client; http.client reconnects when the server closes it.
        connection = http.client.HTTPConnection(*_address(local), timeout=CLIENT_TIMEOUT)
        statuses = []
        try:
            for request in range(25):
                if request % 5 == 0:
                    headers = {"Authorization": _authorization(), "Content-Type": "application/json"}
                    body = _track(f"{number}-{request}-{uuid.uuid4().hex}")
                    connection.request("POST", "/v1/track", body=body, headers=headers)
                else:
                    connection.request("GET", "/_local/health", headers={"Connection": "keep-alive"})
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
        finally:
            connection.close()
        return statuses

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(client, range(16)))

    assert [len(statuses) for statuses in results] == [25] * 16
    assert {status for statuses in results for status in statuses} == {200}


def test_the_access_log_carries_no_query_string_and_no_identifier_from_a_path(local: LocalRuntime) -> None:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    admin = {"Authorization": "Bearer dev-admin-token"}
    local.raw("GET", f"/v1/profiles?email={email}", headers=admin)
    local.raw("GET", f"/v1/profiles/{email}", headers=admin)
    local.raw("DELETE", f"/v1/profiles/p-1/identifiers/email/{email}", headers=admin)
    local.raw("POST", f"/v1/{email}", data=b"{}", headers=basic(WRITE_KEY))
    local.raw("GET", f"/{email}/x")
    local.request("POST", f"/v1/track?email={email}", json.loads(_track(uuid.uuid4().hex)), basic(WRITE_KEY))

    logged = _logged_after(local, "POST /v1/track 200")
    assert email not in logged
    assert email.split("@")[0] not in logged
    assert "GET /v1/profiles " in logged
    assert "GET /v1/profiles/{profileId} " in logged
    assert "DELETE /v1/profiles/{profileId}/identifiers/{type}/{value} " in logged
    assert "POST /v1/{proxy+} " in logged


def test_an_advance_beyond_the_calendar_is_answered_400(local: LocalRuntime) -> None:
    status, body = local.request("POST", "/_local/clock/advance", {"seconds": 1e20})
    assert status == 400, body


def _stops_promptly(sent: signal.Signals) -> None:
    started = LocalProcess()
    try:
        runtime = started.ready()
        assert runtime.request("GET", "/_local/health")[0] == 200
        started.process.send_signal(sent)
        assert started.process.wait(timeout=STOP_SECONDS) == 0
        assert started.finished.wait(STOP_SECONDS)
        assert "Continuum local runtime stopped" in "".join(started.output)
    finally:
        if started.process.poll() is None:
            started.process.kill()


def test_sigterm_stops_it_with_exit_code_0() -> None:
    _stops_promptly(signal.SIGTERM)


def test_ctrl_c_stops_it_with_exit_code_0() -> None:
    _stops_promptly(signal.SIGINT)
