"""The OpenAPI document says what the server answers: every error body is ErrorBody (FastAPI's
HTTPValidationError is gone), each operation documents the codes the guard and the route can
return, the server's limits are `maximum`s, and real refusals match what the document says.
schemathesis runs all its checks in-process over every route (a fake generation: no
image is made)."""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from kekong.server.app import create_app
from kekong.server.config import Limits, ServerConfig
from kekong.server.openapi import ErrorBody
from tests.test_server_queue import TINY, Gated, serve, wait_status

ERROR = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    fake = Gated(open_=True)
    client = serve(tmp_path_factory.mktemp("openapi"), fake, limits=Limits(max_steps=40, max_side=256),
                   max_queue=3)
    yield client
    client.__exit__(None, None, None)


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_every_error_is_documented_with_the_body_the_server_sends(app_client):
    spec = app_client.get("/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(spec)
    assert len(list(operations(spec))) >= 40
    for method, path, operation in operations(spec):
        responses = operation["responses"]
        errors = {code: r for code, r in responses.items() if code[0] in "45"}
        assert all(r["content"]["application/json"]["schema"] == ERROR for r in errors.values()), (method, path)
        assert "421" in errors, (method, path)  # a loopback server refuses foreign Host names everywhere
        assert "401" not in errors  # no API key: never asked for
        if method != "get":
            assert {"403", "408", "413"} <= set(errors), (method, path)
        if operation.get("parameters") or "requestBody" in operation:
            assert "422" in errors, (method, path)
        if "{job_id}" in path:
            assert "404" in errors, (method, path)
    paths = spec["paths"]
    for route in ("/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/v1/jobs"):
        assert "Retry-After" in paths[route]["post"]["responses"]["429"]["headers"], route
    assert {"200", "202"} <= set(paths["/v1/jobs"]["post"]["responses"])
    assert {"200", "204", "404", "409"} <= set(paths["/v1/jobs/{job_id}"]["delete"]["responses"])
    schemas = spec["components"]["schemas"]
    assert maximum(schemas["GenerationRequest"], "steps") == 40  # this server's --max-steps
    assert maximum(schemas["GenerationRequest"], "width") == 256  # (width may be null: inside anyOf)
    assert maximum(schemas["Txt2ImgRequest"], "steps") == 40 and maximum(schemas["Img2ImgRequest"], "height") == 256


def maximum(model: dict, name: str) -> float:
    field = model["properties"][name]
    return next(part["maximum"] for part in [field, *field.get("anyOf", [])] if "maximum" in part)


def test_an_api_key_server_documents_401(tmp_path):
    client = serve(tmp_path, Gated(open_=True), api_key="k")
    try:
        spec = client.get("/openapi.json", headers={"X-API-Key": "k"}).json()
        assert all("401" in operation["responses"] for _, _, operation in operations(spec))
        refused = client.get("/v1/jobs")
        assert refused.status_code == 401 and ErrorBody.model_validate(refused.json())
    finally:
        client.__exit__(None, None, None)


def test_real_refusals_are_documented_and_have_the_documented_body(app_client):
    spec = app_client.get("/openapi.json").json()
    job_id = app_client.post("/v1/jobs", json=TINY).json()["id"]
    wait_status(app_client, job_id, ("done",))
    answers = [
        ("get", "/v1/jobs", app_client.get("/v1/jobs", headers={"Host": "elsewhere.example"}), 421),
        ("post", "/v1/jobs", app_client.post("/v1/jobs", json=TINY, headers={"Origin": "null"}), 403),
        ("post", "/v1/jobs", app_client.post("/v1/jobs", content=b"x" * 100, headers={
            "content-length": str(2**40), "content-type": "application/json"}), 413),
        ("post", "/v1/jobs", app_client.post("/v1/jobs", json={**TINY, "steps": 41}), 422),
        ("get", "/v1/jobs", app_client.get("/v1/jobs?limit=-1"), 422),
        ("get", "/v1/jobs/{job_id}", app_client.get("/v1/jobs/nope"), 404),
        ("post", "/v1/jobs/{job_id}/retry", app_client.post(f"/v1/jobs/{job_id}/retry"), 409),
        ("get", "/v1/jobs/{job_id}/images/{index}", app_client.get(f"/v1/jobs/{job_id}/images/7"), 404),
        ("post", "/sdapi/v1/txt2img", app_client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 99}), 422),
        ("post", "/sdapi/v1/png-info", app_client.post("/sdapi/v1/png-info", json={"image": "bm90IGFuIGltYWdl"}),
         422),
    ]
    for method, path, answer, status in answers:
        assert answer.status_code == status, (path, answer.text)
        assert str(status) in spec["paths"][path][method]["responses"], (method, path, status)
        assert ErrorBody.model_validate(answer.json()).detail, (path, answer.text)


EXAMPLES = int(os.environ.get("KEKONG_SCHEMATHESIS_EXAMPLES", "8"))  # make bench: 50
# Schema-valid is not acceptable for these: an image must decode, names must exist, a pose JSON must be
# one, and request.py's cross-field rules (hires with an upscaler, sizes in multiples of 8 …) are not JSON
# Schema. Every other check (status codes, response schemas and headers, content types, malformed data
# refused) runs, on every route.
SEMANTIC = {("POST", "/v1/jobs"), ("POST", "/sdapi/v1/png-info"), ("POST", "/sdapi/v1/txt2img"),
            ("POST", "/sdapi/v1/img2img"), ("POST", "/sdapi/v1/options"), ("POST", "/sdapi/v1/interrogate"),
            ("POST", "/sdapi/v1/extra-single-image"), ("POST", "/sdapi/v1/extra-batch-images"),
            ("POST", "/controlnet/detect"), ("POST", "/controlnet/render_openpose_json"), ("POST", "/v1/jobs/video")}


def test_schemathesis_all_checks_pass_in_process(tmp_path, monkeypatch):
    monkeypatch.setattr("kekong.server.worker.run_generation", Gated(open_=True))  # schemathesis starts the app
    app = create_app(ServerConfig(data_dir=tmp_path, ui=False, limits=Limits(max_steps=40, max_side=256),
                                  max_queue=3))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    chosen = [r.ok() for r in schema.get_all_operations()]  # every route the server has
    assert len(chosen) >= 42 and {("POST", "/sdapi/v1/txt2img"), ("GET", "/v1/jobs")} <= {
        (o.method.upper(), o.path) for o in chosen}
    failures: list[str] = []
    for operation in chosen:
        for mode in GenerationMode:
            check(operation, mode, failures)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:25])


def check(operation, mode: GenerationMode, failures: list[str]) -> None:
    """EXAMPLES requests of `mode` to one operation, each validated by every schemathesis check
    (less positive-data acceptance for the SEMANTIC routes)."""
    from schemathesis.checks import positive_data_acceptance

    excluded = [positive_data_acceptance] if (operation.method.upper(), operation.path) in SEMANTIC else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def conforms(case):
        try:
            case.call_and_validate(timeout=120, excluded_checks=excluded)
        except (AssertionError, FailureGroup) as error:  # schemathesis' failure(s), with their reasons
            failures.append(f"{case.method} {case.formatted_path} [{mode.value}]: {str(error)[:600]}")

    try:
        conforms()
    except Unsatisfiable:  # nothing to make malformed (a route without parameters or body)
        assert mode is GenerationMode.NEGATIVE
