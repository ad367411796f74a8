"""Images and model names as HTTP clients send them, checked before a job is queued.

The server reads no paths: an image is base64 (bare or a `data:` URI), or — only when the server
was started with URL inputs on — an http(s) URL to a public address, fetched without redirects,
with a size and a time cap. Model names are names (or hub ids), never file paths.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kekong.errors import ImageError, ParameterError


@dataclass(frozen=True)
class UrlPolicy:
    enabled: bool = False
    max_bytes: int = 20 * 2**20
    timeout_s: float = 10.0


NO_URLS = UrlPolicy()


def image_field(value: Any, field: str, urls: UrlPolicy = NO_URLS) -> str:
    """A checked `data:` URI for a request's image field; the error names the field."""
    data = field_bytes(value, field, urls)
    check_image(data, field)
    return "data:image;base64," + base64.b64encode(data).decode()


def image_array(value: Any, field: str, urls: UrlPolicy = NO_URLS):
    """A request's image field decoded once to uint8 RGB (for routes that use it at once)."""
    from kekong.io import load_image

    try:
        return load_image(field_bytes(value, field, urls))
    except ImageError as error:
        raise ParameterError(f"{field}: {error}") from None


def field_bytes(value: Any, field: str, urls: UrlPolicy = NO_URLS) -> bytes:
    """The bytes of an image field: base64 (bare or data: URI), or a fetched URL when allowed."""
    if not isinstance(value, str) or not value.strip():
        raise ParameterError(f"{field}: expected a base64-encoded image, got {type(value).__name__}")
    value = value.strip()
    if value.startswith(("http://", "https://")):
        if not urls.enabled:
            raise ParameterError(f"{field}: URL inputs are off on this server (start it with --allow-urls); "
                                 "send the image as base64")
        data = fetch_url(value, urls, field)
    else:
        payload = value.partition(",")[2] if value.startswith("data:") else value
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ParameterError(f"{field}: not valid base64 (the API reads no file paths; send image bytes "
                                 "base64-encoded)") from None
        if not data:
            raise ParameterError(f"{field}: empty image")
    return data


def check_image(data: bytes, field: str) -> None:
    """Decode once (pixel cap first) so a corrupt upload is refused before it is queued."""
    from kekong.io import load_image

    try:
        load_image(data)
    except ImageError as error:
        raise ParameterError(f"{field}: {error}") from None


_NAME = re.compile(r"^[\w.\- ()+,@=\[\]]+(/[\w.\- ()+,@=\[\]]+)?$")


def model_name(value: Any, field: str) -> str | None:
    """A model name or hub id (`org/name`); file paths are refused."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("", "none", "automatic"):
        return None
    if text.startswith(("/", "~", ".")) or ".." in text or "\\" in text or not _NAME.match(text):
        raise ParameterError(f"{field}: {text!r} is not a model name (the API loads models by name from its "
                             "models folder or the Hugging Face cache, not by path)")
    return text


# -- URL inputs ------------------------------------------------------------------------------
def public_address(host: str) -> str:
    """The first address `host` resolves to, if every address is public; else a ParameterError."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise ParameterError(f"{host}: cannot resolve ({error})") from None
    addresses = [info[4][0] for info in infos]
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise ParameterError(f"{host} resolves to {ip}, a loopback/private/link-local/reserved address; "
                                 "URL inputs may only name public hosts")
    return addresses[0]


def fetch_url(url: str, policy: UrlPolicy, field: str) -> bytes:
    import httpx

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ParameterError(f"{field}: only http(s) URLs are fetched")
    public_address(parts.hostname)
    deadline = time.monotonic() + policy.timeout_s  # httpx's timeout is per read; this caps the whole fetch
    try:
        with httpx.stream("GET", url, follow_redirects=False, timeout=policy.timeout_s) as response:
            if response.is_redirect:
                raise ParameterError(f"{field}: {url} redirects; redirects are not followed")
            if response.status_code != 200:
                raise ParameterError(f"{field}: {url} answered HTTP {response.status_code}")
            declared = int(response.headers.get("content-length") or 0)
            if declared > policy.max_bytes:
                raise ParameterError(f"{field}: {url} is {declared} bytes, over the {policy.max_bytes}-byte cap")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if time.monotonic() > deadline:
                    raise ParameterError(f"{field}: {url} took over {policy.timeout_s:g} s")
                if size > policy.max_bytes:
                    raise ParameterError(f"{field}: {url} is over the {policy.max_bytes}-byte cap")
                chunks.append(chunk)
    except httpx.HTTPError as error:
        raise ParameterError(f"{field}: could not fetch {url} ({type(error).__name__})") from None
    return b"".join(chunks)
