"""The declaration is read, not retyped: server limits narrow the declared bounds."""

from __future__ import annotations

import numpy as np
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

    commands = typer.main.get_command(app).commands
    assert len(DECLARED) >= 30
    for flags, name, model in DECLARED:  # generate's and repose's options
        field = spec(name, model)
        made = [param for command in ("generate", "repose") for param in commands[command].params
                if flags[0] in param.opts]
        assert any((param.min, param.max) == (field.ge, field.le)
                   and param.default is None  # left out: the model's recommendation or the declared default
                   and all(choice in param.help for choice in field.choices or ()) for param in made), name


A1111_MODELS = ("Txt2ImgRequest", "Img2ImgRequest")


def _a1111_models():
    from kekong.server import a1111_models

    return [getattr(a1111_models, name) for name in A1111_MODELS]


def test_every_a1111_field_that_sets_a_request_field_declares_it_with_its_bounds():
    import annotated_types

    from kekong.server.a1111_models import target_of

    checked = 0
    for model in _a1111_models():
        for name, info in model.model_fields.items():
            target, converted = target_of(info)
            if target is None:
                assert name not in GenerationRequest.model_fields or info.alias, name  # A1111's own field
                continue
            assert target in GenerationRequest.model_fields, name
            if not converted:  # a field that *is* a request field is named after it; A1111's name is its alias
                assert name == target, name
            field = spec(target)
            bounds = {type(m): m for m in info.metadata}
            if not converted or bounds:
                assert getattr(bounds.get(annotated_types.Ge), "ge", None) == field.ge, name
                assert getattr(bounds.get(annotated_types.Le), "le", None) == field.le, name
            checked += 1
    assert checked >= 40
    wire = {info.alias or name for name, info in _a1111_models()[1].model_fields.items()}
    assert {"n_iter", "inpaint_full_res_padding"} <= wire and not {"batch_count", "only_masked_padding"} & wire


# Fields that carry other settings by their own tables (override settings → OPTION_FIELDS, scripts
# → control units, infotext → its parser, styles → styles.csv): each is tested where it is handled.
_CARRIERS = {"override_settings", "alwayson_scripts", "infotext", "styles"}


def _edit(name: str, info, default) -> dict:
    """A value for field `name` that differs from its default and lies within its bounds."""
    from tests.server_helpers import b64_png

    special = {
        "sampler_name": "DDIM", "sampler_index": "DDIM", "refiner_checkpoint": "base-b",
        "init_images": [b64_png(np.full((8, 8, 3), 9, np.uint8))], "mask": b64_png(np.full((8, 8), 200, np.uint8)),
        "mask_blur_x": {"mask_blur_x": 6, "mask_blur_y": 6}, "mask_blur_y": {"mask_blur_x": 7, "mask_blur_y": 7},
        "inpaint_full_res": False, "inpainting_mask_invert": 1, "enable_hr": False,
    }
    value = special.get(name)
    if isinstance(value, dict):
        return value
    if value is None:
        kind = str(info.annotation)
        bounds = {type(m).__name__: m for m in info.metadata}
        low = getattr(bounds.get("Ge"), "ge", None)
        high = getattr(bounds.get("Le"), "le", None)
        if "bool" in kind:
            value = not default
        elif "int" in kind or "float" in kind:
            if default is not None:
                value = default + 1
            else:
                value = 0.5 if low is None else low if high is None else (low + high) / 2
            if high is not None and value > high:
                value = high - 1
            value = float(value) if "float" in kind else int(value)
        elif "list" in kind:
            value = ["x"]
        elif "dict" in kind:
            value = {"x": 1}
        else:
            value = "x"
    return {info.alias or name: value}


def test_every_a1111_field_sets_only_the_request_field_it_declares():
    """The field walk through to_request(): each field changed alone from a baseline changes exactly
    the request field it declares (to its value, when it is that field), or nothing (or is refused)."""
    from kekong.server.a1111_models import target_of
    from tests.server_helpers import b64_png

    image, mask = b64_png(np.zeros((8, 8, 3), np.uint8)), b64_png(np.full((8, 8), 255, np.uint8))
    base = {"refiner_checkpoint": "base-a", "enable_hr": True}
    walked = 0
    for model in _a1111_models():
        start = {**base, **({"init_images": [image], "mask": mask} if model.route == "img2img" else {})}
        before = model.model_validate(start).to_request({}).fields
        for name, info in model.model_fields.items():
            if name in _CARRIERS:
                continue
            edit = _edit(name, info, info.get_default(call_default_factory=True))
            try:
                after = model.model_validate({**start, **edit}).to_request({}).fields
            except ParameterError:  # a value kekong would not honour: refused by name, sets nothing
                target, _ = target_of(info)
                assert target is None, name
                continue
            changed = {key for key in {*before, *after} if before.get(key) != after.get(key)}
            target, converted = target_of(info)
            assert changed == ({target} if target else set()), (name, changed)
            if target and not converted:
                assert after[target] == next(iter(edit.values())), name
            walked += 1
    assert walked >= 60


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
