"""The guard in front of every route: whose writes are accepted (origins), framing refused, and
bodies bounded in size and in time — chunked or not, checked on a raw socket."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from kekong.server.app import create_app
from kekong.server.config import Limits, ServerConfig
from tests.server_helpers import free_port


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("guard"), ui=False,
                          allowed_origins=("https://studio.example",))
    with TestClient(create_app(config)) as client:
        yield client


@pytest.mark.parametrize(("origin", "status"), [
    (None, 200),  # tools send no Origin
    ("http://testserver", 200),  # the page this server served (the Host the request went to)
    ("http://testserver:80", 200),  # the same origin with its default port written out
    ("https://studio.example", 200),  # listed with --allow-origin
    ("null", 403),  # a sandboxed frame or a file:// page
    ("http://localhost:9999", 403),  # another port on this machine is another origin
    ("https://testserver", 403),  # another scheme too
    ("https://attacker.example", 403),
])
def test_writes_are_accepted_only_from_the_servers_own_origin(client, origin, status):
    headers = {"Origin": origin} if origin else {}
    answer = client.post("/sdapi/v1/interrupt", headers=headers)
    assert answer.status_code == status, answer.text
    if status == 403:
        assert "cross-origin write" in answer.json()["detail"] and "--allow-origin" in answer.json()["detail"]


def test_reads_from_any_origin_and_every_answer_forbids_framing(client):
    for path in ("/health", "/docs", "/openapi.json"):
        answer = client.get(path, headers={"Origin": "null"})
        assert answer.status_code == 200
        assert answer.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    refused = client.post("/sdapi/v1/interrupt", headers={"Origin": "null"})
    assert refused.headers["x-frame-options"] == "DENY"  # refusals too


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A real server on a socket: 1000-byte bodies at most, 1 s to send one."""
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("live"), ui=False, body_timeout_s=1.0,
                          limits=Limits(max_body_bytes=1000))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def _send(port: int, raw: bytes, wait_s: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(raw)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
        return answer


def _head(path: str, extra: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}"
            "Connection: close\r\n\r\n").encode()


def test_a_chunked_body_over_the_cap_is_413(live):
    chunk = b"x" * 600
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    answer = _send(live, _head("/v1/jobs", "Transfer-Encoding: chunked\r\n") + body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"at most 1000" in answer


def test_a_declared_length_over_the_cap_is_413_before_the_body(live):
    answer = _send(live, _head("/v1/jobs", "Content-Length: 5000\r\n"))  # no body sent at all
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_half_sent_bodies_are_dropped_after_the_body_timeout(live):
    started = time.monotonic()
    sockets = []
    for _ in range(20):  # twenty clients that promise 500 bytes and send 10
        sock = socket.create_connection(("127.0.0.1", live), timeout=10)
        sock.sendall(_head("/v1/jobs", "Content-Length: 500\r\n") + b'{"prompt":')
        sockets.append(sock)
    answers = []
    for sock in sockets:
        with sock:
            answers.append(sock.recv(65536))
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers), answers[0][:200]
    assert time.monotonic() - started < 8  # each one let go about 1 s after it started
    small = b'{"prompt": "x", "steps": 0}'  # a complete small body still reaches the route (422: steps)
    answer = _send(live, _head("/v1/jobs", f"Content-Length: {len(small)}\r\n") + small)
    assert answer.startswith(b"HTTP/1.1 422"), answer[:200]
