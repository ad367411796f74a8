"""A batch manifest: one generation request per line (JSON Lines), the same request JSON as
`kekong generate --request` and `/v1/jobs`.

Each line is read on its own: a line that is not JSON, not a valid request, or names an image
that cannot be read becomes a `Line` with an `error` (the batch goes on with the others).
Image paths are relative to the manifest's folder; a model given as a path that exists there is
too. An `http(s)://` image is fetched only when the caller passes a `fetch` (the CLI's
`--allow-urls`, with the server's URL rules); otherwise the line is refused by name.

The recipe hash covers what decides an output: the validated request (models by name, every input
image by the sha256 of its bytes, not its path) and the write options. It names the output files,
so moving the manifest and its images elsewhere keeps a finished batch finished.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kekong.errors import KekongError, ParameterError
from kekong.request import GenerationRequest, build_request

HASH_CHARS = 12  # of the recipe hash, in output names
Fetch = Callable[[str, str], bytes]  # (url, field) → the image's bytes, under the caller's URL rules


@dataclass
class Line:
    """One manifest line: its number (1-based, blank and # lines counted), and either a request
    with its recipe hash, or the error that refused it."""

    number: int
    fields: dict[str, Any] = field(default_factory=dict)  # the request JSON, inputs resolved
    request: GenerationRequest | None = None
    recipe_hash: str = ""
    error: str | None = None
    name: str | None = None  # an output name of its own (generate --prompts-file/--batch-dir's A1111 names)

    @property
    def stem(self) -> str:
        """Output name without suffix: line number and recipe hash (or the line's own name)."""
        return self.name if self.name is not None else f"{self.number:05d}-{self.recipe_hash[:HASH_CHARS]}"

    @property
    def images(self) -> int:
        return self.request.batch_size * self.request.batch_count if self.request else 0

    @property
    def model(self) -> str:
        """What a worker must hold loaded to run this line (model affinity)."""
        from kekong.models.refs import DEFAULT_BASE

        return (self.request.model if self.request and self.request.model else DEFAULT_BASE)


def read_manifest(path: Path, options: dict[str, Any] | None = None, fetch: Fetch | None = None) -> list[Line]:
    """Every request line of the manifest; blank lines and lines starting with # are skipped.
    `options` (output format, provenance layers, scoring) join each line's recipe hash."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: cannot read the manifest ({exc})") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip() and not raw.lstrip().startswith("#"):
            lines.append(parse_line(number, raw, path.parent, options or {}, fetch))
    if not lines:
        raise ParameterError(f"{path}: no request lines in it (one request JSON per line)")
    return lines


def parse_line(number: int, raw: str, folder: Path, options: dict[str, Any], fetch: Fetch | None = None) -> Line:
    try:
        fields = json.loads(raw)
    except ValueError as exc:
        return Line(number, error=f"not JSON ({exc})")
    if not isinstance(fields, dict):
        return Line(number, error=f"expected a request object, got {type(fields).__name__}")
    try:
        fields = resolve_inputs(fields, folder, fetch)
        request = build_request(**fields)
        digest = recipe_hash(request, options)
    except KekongError as error:
        return Line(number, error=str(error))
    return Line(number, fields, request, digest)


def job_line(number: int, name: str, fields: dict[str, Any], options: dict[str, Any]) -> Line:
    """A job made elsewhere than in a manifest (generate --prompts-file/--batch-dir) as a line
    named `name`: its image paths made absolute against the working folder; a field out of bounds
    raises (every job is checked before the first runs), an image that cannot be read is the
    line's error (that job is skipped, the others run)."""
    fields = resolve_inputs(fields, Path.cwd(), None)
    request = build_request(**fields)
    try:
        digest = recipe_hash(request, options)
    except KekongError as error:
        return Line(number, fields, request, error=str(error), name=name)
    return Line(number, fields, request, digest, name=name)


def resolve_inputs(fields: dict[str, Any], folder: Path, fetch: Fetch | None) -> dict[str, Any]:
    """Image paths made absolute against the manifest's folder (models too, when the path exists
    there); URLs fetched into `data:` URIs when `fetch` is given, else refused."""
    from kekong.provenance.recipe import input_fields, model_fields, set_field

    fields = json.loads(json.dumps(fields))  # a copy: nested units are edited
    request = build_request(**fields)  # validates first: a bad field is named before any file is read
    for name, reference in input_fields(request):
        if reference.startswith(("http://", "https://")):
            if fetch is None:
                raise ParameterError(f"{name}: {reference} is a URL; URL inputs are off (pass --allow-urls)")
            set_field(fields, name, "data:image;base64," + base64.b64encode(fetch(reference, name)).decode())
        elif not reference.startswith("data:"):
            local = Path(reference).expanduser()
            set_field(fields, name, str(local if local.is_absolute() else (folder / local).resolve()))
    for name, reference, _ in model_fields(request):
        local = Path(reference).expanduser()
        if not local.is_absolute() and (folder / local).exists():
            set_field(fields, name, str((folder / local).resolve()))
    return fields


def recipe_hash(request: GenerationRequest, options: dict[str, Any]) -> str:
    """sha256 of the request as published (models by name, inputs by content) and the options."""
    from kekong.provenance.recipe import input_fields, input_record, public_request

    records = []
    for name, reference in input_fields(request):
        try:
            records.append(input_record(name, reference))
        except (OSError, KekongError):
            shown = "the inline image" if reference.startswith("data:") else Path(reference).name
            raise ParameterError(f"{name}: cannot read {shown}") from None
    published = public_request(request, [{**r, "name": f"sha256:{r['sha256']}"} for r in records])
    text = json.dumps({"request": published, "options": options}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
