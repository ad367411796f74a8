"""A schema-driven fuzz pass over the OpenAPI spec: whatever a client sends, the server answers
4xx or 2xx, never 5xx. The server under test runs with tight limits (2 steps, 128 px, 2 images)
so that generated requests that happen to be valid stay cheap."""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.server_helpers import Server

EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("fuzz"), extra=["--max-steps", "2", "--max-side", "128",
                                                            "--max-batch", "2"]).start()
    yield server
    server.stop()


def test_no_request_yields_a_server_error(fuzz_server):
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    failures = []
    for operation, mode in itertools.product(operations, GenerationMode):  # valid-shaped and malformed requests

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def no_5xx(case):
            response = case.call(timeout=60)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r:.300}: {response.status_code} "
                                f"{response.text[:300]}")

        try:
            no_5xx()
        except Unsatisfiable:  # nothing to make malformed (a route without parameters or body)
            assert mode is GenerationMode.NEGATIVE
    assert not failures, "\n".join(failures[:10])
