"""The declaration is read, not retyped: server limits narrow the declared bounds."""

from __future__ import annotations

import pytest

from kekong.declaration import spec
from kekong.errors import ParameterError
from kekong.request import GenerationRequest, build_request
from kekong.server.config import Limits, limit_range


def test_limits_default_to_the_declared_bounds():
    limits = Limits()
    assert limits.max_steps == spec("steps").le and limits.max_side == spec("width").le
    assert limit_range("max_batch") == (1, spec("batch_size").le * spec("batch_count").le)


def test_server_limits_narrow_each_field_they_bound():
    limits = Limits(max_steps=40, max_side=128, max_batch=2)
    assert limits.spec("steps").le == 40 and limits.spec("hr_second_pass_steps").le == 40
    assert {limits.spec(name).le for name in ("width", "height", "hr_resize_x", "seed_resize_from_h")} == {128}
    assert limits.spec("batch_size").le == 2 and limits.spec("steps").default == 20
    assert Limits(max_steps=10).spec("steps").default == 10  # a default above the limit comes down to it
    assert limits.spec("cfg_scale") == spec("cfg_scale")  # fields no limit bounds are as declared
    with pytest.raises(ParameterError, match="steps: this server allows at most 40"):
        limits.check(build_request(prompt="x", steps=41))


def test_every_cli_option_made_from_a_field_has_its_declared_bounds_and_help():
    import typer.main

    from kekong.cli import app
    from kekong.cli.fields import DECLARED

    command = typer.main.get_command(app).commands["generate"]
    params = {opt: param for param in command.params for opt in param.opts}
    assert len(DECLARED) >= 30
    for flags, name, model in DECLARED:
        field, param = spec(name, model), params[flags[0]]
        assert (param.min, param.max) == (field.ge, field.le), name
        assert param.default is None, name  # left out: the model's recommendation or the declared default
        if field.choices:
            assert all(choice in param.help for choice in field.choices), name


def test_every_a1111_field_that_sets_a_request_field_has_its_declared_bounds():
    import annotated_types

    from kekong.server.a1111_models import A1111_FIELD_OF, Img2ImgRequest, Txt2ImgRequest

    checked = 0
    for model in (Txt2ImgRequest, Img2ImgRequest):
        for a1111_name, info in model.model_fields.items():
            target = A1111_FIELD_OF.get(a1111_name, a1111_name)
            if target not in GenerationRequest.model_fields or a1111_name in ("prompt", "negative_prompt",
                                                                                "hr_prompt", "hr_negative_prompt"):
                continue
            field = spec(target)
            if field.ge is None and field.le is None:
                continue
            bounds = {type(m): m for m in info.metadata}
            assert getattr(bounds.get(annotated_types.Ge), "ge", None) == field.ge, a1111_name
            assert getattr(bounds.get(annotated_types.Le), "le", None) == field.le, a1111_name
            checked += 1
    assert checked >= 25


def test_the_a1111_route_refuses_past_the_declared_bound_naming_the_field(tmp_path):
    from fastapi.testclient import TestClient

    from kekong.server.app import create_app
    from kekong.server.config import ServerConfig

    steps = spec("steps").le
    with TestClient(create_app(ServerConfig(data_dir=tmp_path, ui=False))) as client:
        refused = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": steps + 1})
        assert refused.status_code == 422 and "steps" in refused.json()["detail"]
        batch = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "n_iter": spec("batch_count").le + 1})
        assert batch.status_code == 422 and "n_iter" in batch.json()["detail"]
