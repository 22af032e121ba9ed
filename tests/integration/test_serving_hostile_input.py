"""Hostile clients: fuzzed bodies never get a 5xx; body size and time are bounded; a client
that goes away is not a server error; the model repository endpoints are closed.

The fuzz test sends the shapes a review answered with 500 and thousands of seeded
mutations of V1, V2 JSON and V2 binary bodies (``_serving_fuzz``), then checks that the
server is still live and ready and counted no 5xx. ``CHURNOPS_FUZZ_REQUESTS`` changes the
number of random mutations (default 3000); the status counts go to stderr.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from _serving_fuzz import GOOD, V1, cases, named
from _serving_support import metric_value

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_BODY = 200_000
# Named shapes that are valid requests: a [n, 1] shape is the contract's, an unknown
# top-level V1 key is ignored (KServe's V1 protocol).
VALID = {"binary-valid", "v2-json-2d-shape", "binary-2d-shape", "v1-unknown-key-nested"}


@pytest.fixture(scope="module")
def limited_server(
    trained: dict, mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator:
    """``churnops serve`` with a 200 kB body limit and a 3 s body timeout."""
    from churnops.serving.process import start_model_server

    log = tmp_path_factory.mktemp("serve-limited") / "server.log"
    with start_model_server(
        f"models:/{trained['model_name']}@champion",
        mlflow_server,
        log_path=log,
        env={"CHURNOPS_MAX_BODY_BYTES": str(MAX_BODY), "CHURNOPS_BODY_TIMEOUT": "3"},
    ) as proc:
        yield proc


def _metrics(server) -> str:
    return requests.get(f"{server.url}/metrics", timeout=10).text


def _assert_healthy(server) -> None:
    assert requests.get(f"{server.url}/v2/health/live", timeout=10).status_code == 200
    assert requests.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200
    r = requests.post(f"{server.url}{V1}", json={"instances": [GOOD]}, timeout=30)
    assert r.status_code == 200, r.text
    assert server.popen.poll() is None


@pytest.mark.parametrize(("label", "path", "body", "headers"), named(), ids=lambda v: str(v)[:40])
def test_named_hostile_shapes_are_4xx_naming_the_field(
    model_server, label, path, body, headers
) -> None:
    r = requests.post(f"{model_server.url}{path}", data=body, headers=headers, timeout=60)
    if label in VALID:
        assert r.status_code == 200, (label, r.text[:300])
        return
    assert 400 <= r.status_code < 500, (label, r.status_code, r.text[:300])
    error = r.json()
    assert error["error"] and error["field"], error


def test_fuzzed_requests_never_get_a_5xx(model_server) -> None:
    n = int(os.environ.get("CHURNOPS_FUZZ_REQUESTS", "3000"))
    counts: Counter = Counter()
    by_kind: Counter = Counter()
    failures = []
    before = metric_value(_metrics(model_server), "churnops_requests_total")
    session = requests.Session()
    sent = 0
    for label, path, body, headers in cases(seed=13, n=n):
        try:
            r = session.post(f"{model_server.url}{path}", data=body, headers=headers, timeout=60)
        except requests.ConnectionError as err:  # the server closed on us: count it, go on
            counts["connection-error"] += 1
            failures.append((label, "connection error", str(err)[:200]))
            session = requests.Session()
            continue
        sent += 1
        counts[r.status_code] += 1
        by_kind[
            (label.split("-")[1] if label.startswith("random") else "named", r.status_code)
        ] += 1
        if r.status_code >= 500:
            failures.append((label, r.status_code, r.text[:300], body[:200]))
        elif r.status_code >= 400:
            assert "field" in r.json(), (label, r.text[:300])
    summary = {
        "requests": sent,
        "status_counts": {str(k): v for k, v in sorted(counts.items(), key=str)},
        "by_protocol": {f"{k[0]}:{k[1]}": v for k, v in sorted(by_kind.items(), key=str)},
    }
    print(f"\nfuzz summary: {json.dumps(summary)}", file=sys.stderr)
    assert not failures, failures[:10]
    _assert_healthy(model_server)
    text = _metrics(model_server)
    assert metric_value(text, "churnops_requests_total") - before >= sent
    for code in ("500", "501", "502", "503", "504"):
        assert metric_value(text, "churnops_requests_total", code=code) == 0


def test_repository_endpoints_are_closed(model_server) -> None:
    for action in ("unload", "load"):
        r = requests.post(f"{model_server.url}/v2/repository/models/churn/{action}", timeout=10)
        assert r.status_code == 403 and "disabled" in r.json()["error"]
    _assert_healthy(model_server)


def _raw(server, head: bytes, body: bytes = b"", *, close: bool = False) -> bytes:
    """Send a hand-made request; return whatever the server answers (or b"")."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head + body)
        if close:
            return b""
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def _head(path: str, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: localhost", "Content-Type: application/json"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_content_length_over_the_limit_is_refused_before_reading(limited_server) -> None:
    """413 while the client has sent only the headers: the body was never waited for."""
    answer = _raw(limited_server, _head(V1, Content_Length=str(50 * 1024 * 1024)), b"{")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    r = requests.post(
        f"{limited_server.url}{V1}",
        json={"instances": [GOOD] * (2 * MAX_BODY // len(json.dumps(GOOD)))},  # twice the limit
        timeout=30,
    )
    assert r.status_code == 413 and "--max-body-bytes" in r.json()["error"]
    _assert_healthy(limited_server)


def test_chunked_body_over_the_limit_is_refused_while_streaming(limited_server) -> None:
    """A chunked body is counted as it arrives: 413 before the client finishes."""
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5))  # 320 kB, unfinished
    answer = _raw(limited_server, _head(V1, Transfer_Encoding="chunked"), body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

    _assert_healthy(limited_server)


def test_stalled_body_times_out_with_408(limited_server) -> None:
    answer = _raw(limited_server, _head(V1, Content_Length="1000"), b'{"instances": [')
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"--body-timeout" in answer or b"408" in answer
    _assert_healthy(limited_server)


def test_client_disconnect_mid_body_is_499_not_500(limited_server) -> None:
    before = _metrics(limited_server)
    for _ in range(3):
        _raw(limited_server, _head(V1, Content_Length="5000"), b'{"instances": [{', close=True)

    def counted() -> bool:
        return metric_value(_metrics(limited_server), "churnops_requests_total", code="499") >= (
            metric_value(before, "churnops_requests_total", code="499") + 3
        )

    deadline = time.monotonic() + 30
    while not counted() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert counted(), limited_server.log_tail()
    text = _metrics(limited_server)
    assert metric_value(text, "churnops_requests_total", code="500") == 0
    assert "Traceback" not in limited_server.log_tail(400)
    _assert_healthy(limited_server)


def test_a_local_server_binds_loopback_only(limited_server) -> None:
    """``start_model_server`` passes ``--host 127.0.0.1``: another address of the machine
    (127.0.0.2 stands in for one: 0.0.0.0 would accept it) is refused."""
    port = limited_server.extra["port"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=5).close()
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
