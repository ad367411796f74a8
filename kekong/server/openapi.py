"""The OpenAPI document as the server answers: every error is `ErrorBody` (not FastAPI's
HTTPValidationError), each operation lists the codes the guard and its route can return, and
the request fields this server narrows carry its limit as `maximum`.

Which codes, per operation:
- the guard: 421 (a Host that is not this machine, on loopback), 401 (with an API key), 403
  (writes from another origin), 413 and 408 (a request body over the cap or too slow);
- 400 wherever there is a body (bytes that are not UTF-8 JSON); 422 wherever there are parameters
  or a body (validation, or a value kekong refuses); 404 wherever a model, detector or job is named
  (POST routes and routes with a path parameter);
- the routes' own: see ROUTE_CODES."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from kekong.server.config import NARROWS, ServerConfig


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: what kind of refusal, and a message naming the field or limit."""

    error: str
    detail: str
    job: str | None = None  # an A1111 generation whose job failed or was cancelled


REASONS = {
    400: "the body could not be read as JSON (e.g. not UTF-8)", 401: "missing or wrong API key",
    403: "a write from another origin", 404: "no such job, model or detector",
    408: "the request body did not arrive in time", 409: "the job is not in a state that allows this",
    413: "the request body is over --max-body-mb", 421: "the Host header does not name this server",
    422: "invalid request: the message names the field", 429: "the queue is full (--max-queue)",
    500: "the generation failed inside kekong (a bug; the job id is given)",
}
GENERATION = {409, 429, 500}  # a sync A1111 generation: cancelled, queue full, internal failure
ROUTE_CODES: dict[tuple[str, str], set[int]] = {
    ("post", "/sdapi/v1/txt2img"): GENERATION, ("post", "/sdapi/v1/img2img"): GENERATION,
    ("post", "/v1/jobs"): {429},
    ("get", "/v1/jobs/{job_id}/images/{index}"): {409}, ("get", "/v1/jobs/{job_id}/maps/{index}"): {409},
    ("delete", "/v1/jobs/{job_id}"): {409}, ("post", "/v1/jobs/{job_id}/retry"): {409},
}
EXTRA_SUCCESS: dict[tuple[str, str], dict[str, str]] = {
    ("post", "/v1/jobs"): {"200": "the job an earlier request with this Idempotency-Key made"},
    ("delete", "/v1/jobs/{job_id}"): {"204": "the finished job and its files were deleted"},
}
_WRITES = {"post", "put", "patch", "delete"}
_REF = {"$ref": "#/components/schemas/ErrorBody"}


def install(app: FastAPI, config: ServerConfig) -> None:
    """Serve `truthful(...)` as the app's OpenAPI document (built once, when first asked for)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes, tags=app.openapi_tags)
            app.openapi_schema = truthful(schema, config)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def codes_for(method: str, path: str, operation: dict[str, Any], config: ServerConfig) -> set[int]:
    """The error codes this operation can answer with on this server."""
    codes = set(ROUTE_CODES.get((method, path), set()))
    if config.loopback:
        codes.add(421)
    if config.api_key:
        codes.add(401)
    if method in _WRITES:
        codes.add(403)
    if "requestBody" in operation or method in _WRITES:
        codes |= {408, 413}
    if "requestBody" in operation:
        codes.add(400)
    if operation.get("parameters") or "requestBody" in operation:
        codes.add(422)
    if method == "post" or "{" in path:
        codes |= {404, 422}
    return codes


def truthful(schema: dict[str, Any], config: ServerConfig) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["ErrorBody"] = ErrorBody.model_json_schema()
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            body = next((r["content"] for c, r in responses.items() if c.startswith("2") and "content" in r), None)
            for code, text in EXTRA_SUCCESS.get((method, path), {}).items():
                responses.setdefault(code, {"description": text, **({"content": body} if body and code != "204"
                                                                     else {})})
            for code in sorted(codes_for(method, path, operation, config)):
                answer: dict[str, Any] = {"description": REASONS[code],
                                          "content": {"application/json": {"schema": _REF}}}
                if code == 429:
                    answer["headers"] = {"Retry-After": {"description": "seconds until a slot has probably freed",
                                                         "schema": {"type": "integer", "minimum": 1}}}
                if code == 401:
                    answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
                responses[str(code)] = answer
    _narrow(components, config)
    return schema


def _narrow(components: dict[str, Any], config: ServerConfig) -> None:
    """The server's limits as `maximum` on the request fields they lower (kekong's and A1111's)."""
    for limit, names in NARROWS.items():
        value = getattr(config.limits, limit)
        for model in ("GenerationRequest", "Txt2ImgRequest", "Img2ImgRequest"):
            properties = components.get(model, {}).get("properties", {})
            for name in (*names, "n_iter") if limit == "max_batch" else names:
                field = properties.get(name)
                if field is None:
                    continue
                for target in [field, *field.get("anyOf", [])]:
                    if target.get("type") in ("integer", "number") and target.get("maximum", value + 1) > value:
                        target["maximum"] = value
