"""Who may call the server, checked before any route runs (a pure ASGI middleware).

- A body over the cap is refused (413) before it is read whole, whether it declares its length or
  arrives chunked; a body not received in full within the body timeout is refused (408), so slow
  or half-sent requests cannot hold the server's connections.
- On loopback the Host header must name this machine: a page on another site that re-points its
  DNS name at 127.0.0.1 (DNS rebinding) is refused (421).
- Writes (anything but GET/HEAD/OPTIONS) are accepted with no `Origin`, or with the server's own
  origin (the scheme and the Host the request was sent to) or one listed with `--allow-origin`;
  any other — another site, another port on this machine, a sandboxed frame's `null` — is
  refused (403): a web page the user visits cannot drive the server through their browser.
- Every answer forbids framing (`X-Frame-Options: DENY`, CSP `frame-ancestors 'none'`), so the UI
  cannot be overlaid inside another site's page (clickjacking).
- The local CLI route (`/v1/local/*`, server/local.py) answers loopback clients only and takes
  the runtime file's token in place of an API key (the CLI knows the file, not the key).
- With an API key, every request must carry it: `Authorization: Bearer KEY`, `X-API-Key: KEY`, or
  HTTP Basic with the key as password (so a browser can open the UI). With several keys (one per
  caller), the key's short id (`owner`) goes with the request to the job queue, which is fair
  between callers; the key itself is never stored.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlsplit

from kekong.server.config import ServerConfig

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]", "testserver"}
_FRAME_HEADERS = [(b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'")]


class Guard:
    def __init__(self, app: Any, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        self.hosts = _LOCAL_NAMES | {h.lower() for h in config.allowed_hosts}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_frame_protection(send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope["method"], headers, scope.get("scheme", "http"), scope.get("path", ""))
        if refusal is not None:
            await _respond(send, *refusal)
            return
        key = self._key(headers)
        if key is not None:  # request.state.owner: whose job this is (store.claim_next's fair order)
            scope.setdefault("state", {})["owner"] = owner_of(key)
        declared = headers.get("content-length", "")
        cap = self.config.limits.max_body_bytes
        if declared.isdigit() and int(declared) > cap:
            await _respond(send, 413, f"request body is {declared} bytes; this server takes at most {cap}")
            return
        body = await _read_body(receive, cap, self.config.body_timeout_s)
        if isinstance(body, tuple):
            await _respond(send, *body)
            return
        await self.app(scope, _replay(body, receive), send)

    def refusal(self, method: str, headers: dict[str, str], scheme: str = "http", path: str = ""
                ) -> tuple[int, str, dict] | None:
        host = _hostname(headers.get("host", ""))
        if self.config.loopback and host not in self.hosts:
            return 421, f"Host {headers.get('host', '')!r} is not this server (DNS rebinding is refused)", {}
        if method not in _SAFE_METHODS:
            origin = headers.get("origin")
            own = f"{scheme}://{headers.get('host', '')}".lower()
            if origin is not None and _origin(origin) not in {_origin(own), *map(_origin, self.config.allowed_origins)}:
                return 403, (f"cross-origin write from {origin} refused (this server accepts writes from {own}; "
                             "serve with --allow-origin ORIGIN to accept another)"), {}
            if headers.get("sec-fetch-site") == "cross-site":
                return 403, "cross-site request refused", {}
        if path == LOCAL_HELLO or (path.startswith(LOCAL_PREFIX) and local_token_ok(self.config, headers)):
            return None  # the routes also check that the client is on loopback (hello proves the token, sends none)
        if self.config.api_keys and self._key(headers) is None:
            return 401, "missing or wrong API key", {"www-authenticate": 'Basic realm="kekong"'}
        return None

    def _key(self, headers: dict[str, str]) -> str | None:
        """The server's key the request carries, or None."""
        given = headers.get("x-api-key", "")
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            given = value.strip()
        elif scheme.lower() == "basic":
            try:
                given = base64.b64decode(value.strip()).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                given = ""
        found = None
        for key in self.config.api_keys:  # every key compared, in constant time each
            if given and hmac.compare_digest(given.encode(), key.encode()):
                found = key
        return found


LOCAL_PREFIX = "/v1/local/"
LOCAL_HELLO = LOCAL_PREFIX + "hello"
LOCAL_TOKEN_HEADER = "x-kekong-local-token"


def local_token_ok(config: ServerConfig, headers: dict[str, str]) -> bool:
    """The request carries this server's runtime-file token (compared in constant time)."""
    given = headers.get(LOCAL_TOKEN_HEADER, "")
    return bool(config.local_token and given and hmac.compare_digest(given.encode(), config.local_token.encode()))


def owner_of(key: str) -> str:
    """A key's short public id: jobs record it, never the key."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


async def _read_body(receive: Any, cap: int, timeout_s: float) -> bytes | tuple[int, str]:
    """The whole body, or (status, message): 413 once more than `cap` bytes came (declared or
    chunked), 408 when it is not complete within `timeout_s`."""
    chunks, seen = [], 0
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        left = deadline - asyncio.get_running_loop().time()
        try:
            message = await asyncio.wait_for(receive(), max(left, 0.001))
        except TimeoutError:
            return 408, f"the request body did not arrive within {timeout_s:g} s"
        if message["type"] != "http.request":  # the client went away
            return 400, "the client disconnected before sending the whole body"
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > cap:
            return 413, f"request body is over {cap} bytes; this server takes at most {cap}"
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    """A `receive` that hands the app the body read already, then waits on the client as before."""
    sent = False

    async def replayed() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _with_frame_protection(send: Any) -> Any:
    async def protected(message: dict) -> None:
        if message["type"] == "http.response.start":
            names = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(name, value) for name, value in _FRAME_HEADERS if name not in names]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return protected


def _origin(origin: str) -> str:
    """scheme://host:port with the scheme's default port written out, lower case; `null` stays."""
    parts = urlsplit(origin.strip().lower())
    if not parts.scheme or not parts.hostname:
        return origin.strip().lower()
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


def _hostname(netloc: str) -> str:
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


async def _respond(send: Any, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": "refused", "detail": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
