"""Jobs' input images as content-addressed files beside the job store.

A stored request names each image (init image, mask, a unit's image or mask) by `sha256:<hex>`
instead of carrying its base64 in the SQLite row; the bytes are kept once, however many jobs
send them, as `<root>/<hex><suffix>` (the suffix sniffed from the bytes, so a reader that goes by
the name — a C2PA ingredient's type — sees the right format). The worker turns the references
back into paths; no API answer shows them.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kekong.errors import ImageError, ParameterError
from kekong.io import image_source, write_atomic
from kekong.provenance.credentials import sniff_mime

REFERENCE = re.compile(r"^sha256:([0-9a-f]{64})$")
_SUFFIXES = {"image/jpeg": ".jpg"}


def image_fields(request: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(label, holder, key) of every image a request's fields carry, set or not."""
    yield "init_image", request, "init_image"
    yield "mask", request, "mask"
    for index, unit in enumerate(request.get("controls") or []):
        if isinstance(unit, dict):
            yield f"controls[{index}].image", unit, "image"
            yield f"controls[{index}].mask", unit, "mask"
    if isinstance(request.get("repose"), dict):
        yield "repose.image", request["repose"], "image"  # the photo a re-pose warps


def suffix(data: bytes) -> str:
    mime = sniff_mime(data)
    return _SUFFIXES.get(mime, "." + mime.split("/")[1]) if mime else ".img"


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    except OSError:  # a folder cannot be fsynced on some systems; the file itself was
        pass
    finally:
        os.close(handle)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, data: bytes) -> str:
        """Keep `data` (once) and return its reference."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if path is None:
            path = write_atomic(self.root / f"{digest}{suffix(data)}", data)  # a reader never sees half
            _fsync(path)  # on disk before the row that references it is committed
            _fsync(self.root)
        else:
            with contextlib.suppress(OSError):
                os.utime(path)  # newly referenced: not an orphan for the start-up sweep
        return f"sha256:{digest}"

    def path(self, digest: str) -> Path | None:
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            return None
        return next((p for p in self.root.glob(f"{digest}.*") if not p.name.endswith(".tmp")), None)

    def remove(self, digest: str) -> None:
        path = self.path(digest)
        if path is not None:
            path.unlink(missing_ok=True)

    def stored(self) -> dict[str, Path]:
        """digest → file of every blob on disk."""
        if not self.root.is_dir():
            return {}
        return {p.name.partition(".")[0]: p for p in self.root.iterdir()
                if REFERENCE.match("sha256:" + p.name.partition(".")[0]) and not p.name.endswith(".tmp")}

    # -- a request's images ------------------------------------------------------------------
    def externalize(self, request: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
        """(a copy of `request` with every inline image replaced by its reference, the digests
        it references). An inline image that does not decode is left as it was (running it fails
        with the message it always had)."""
        request = copy.deepcopy(request)  # the strings are shared, not copied
        digests = set()
        for _, holder, key in image_fields(request):
            value = holder.get(key)
            if isinstance(value, str) and value.startswith("data:"):
                try:
                    data = image_source(value)
                except ImageError:
                    continue
                holder[key] = self.put(data)
            match = REFERENCE.match(holder.get(key) or "")
            if match:
                digests.add(match[1])
        return request, digests

    def resolve(self, request: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """(a copy of `request` with every reference replaced by its file's path, path → the
        fields it is given as, to name them in place of the path in a message)."""
        request = copy.deepcopy(request)
        names: dict[str, list[str]] = {}
        for label, holder, key in image_fields(request):
            match = REFERENCE.match(holder.get(key) or "")
            if match is None:
                continue
            path = self.path(match[1])
            if path is None:
                raise ParameterError(f"{label}: the job's input image ({holder[key]}) is no longer stored; "
                                     "send the request again")
            holder[key] = str(path)
            names.setdefault(str(path), []).append(label)
        return request, {path: ", ".join(labels) for path, labels in names.items()}

    def scrub(self, text: str, names: dict[str, str]) -> str:
        """`text` with each blob path replaced by the fields it was given as (an error message the
        API shows must not show where the server keeps its files)."""
        for path, label in names.items():
            text = text.replace(path, label)
        return text.replace(str(self.root), "<job inputs>")
