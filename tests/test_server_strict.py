"""`kekong serve --strict`: the A1111 routes refuse the fields kekong does not know (by default
they are ignored and named in info.kekong.warnings, tests/test_a1111_leniency.py)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kekong.cli import app as cli
from kekong.server.config import ServerConfig
from tests.test_server_queue import Gated, serve

BODY = {"prompt": "x", "width": 64, "height": 64, "steps": 2}


@pytest.mark.parametrize(("extra", "named"), [
    ({"future_option": 1}, "unknown field(s) future_option for /sdapi/v1/txt2img"),
    ({"alwayson_scripts": {"controlnet": {"args": [{"module": "none", "brand_new_field": 2}]}}},
     "brand_new_field"),
])
def test_a_strict_server_refuses_unknown_fields_by_name(tmp_path, extra, named):
    client = serve(tmp_path, Gated(open_=True), strict=True)
    try:
        answer = client.post("/sdapi/v1/txt2img", json={**BODY, **extra})
        assert answer.status_code == 422 and named in answer.json()["detail"]
        assert "--strict" in answer.json()["detail"]
        assert client.get("/v1/jobs").json() == []  # refused before it was queued
    finally:
        client.__exit__(None, None, None)


def test_the_strict_flag_reaches_the_server_config(monkeypatch, tmp_path):
    seen: list[ServerConfig] = []

    def create_app(config):
        seen.append(config)
        raise SystemExit(0)  # no server: the config is what is checked

    monkeypatch.setattr("kekong.server.app.create_app", create_app)
    runner = CliRunner()
    for args, strict in ((["--strict"], True), ([], False)):
        done = runner.invoke(cli, ["serve", "--data-dir", str(tmp_path), "--no-ui", "--max-queue", "5",
                                   "--keep-jobs-hours", "2", *args])
        assert done.exit_code == 0, done.output
        assert seen[-1].strict is strict and seen[-1].max_queue == 5 and seen[-1].keep_jobs_hours == 2.0
