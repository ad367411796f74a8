"""The web UI's sliders and choice lists are the request's declaration, narrowed by the server's
limits: walk every widget the UI made from a field and compare it with that field's declaration."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from kekong.declaration import spec
from kekong.generation.defaults import model_defaults
from kekong.server.config import NARROWS, Limits
from kekong.ui.app import UI


def built(limits: Limits | None) -> UI:
    app = FastAPI()
    ui = UI(app, limits)
    ui.last_blocks = ui.blocks()
    return ui


@pytest.mark.parametrize("limits", [Limits(), Limits(max_steps=40, max_side=128, max_batch=2)],
                         ids=["default", "narrow"])
def test_every_widget_shows_its_fields_declared_bounds_narrowed_by_the_server(limits):
    ui = built(limits)
    assert len(ui.widgets.made) >= 15
    for name, model, component in ui.widgets.made:
        declared = spec(name, model)
        if declared.choices:
            assert [c[0] if isinstance(c, tuple) else c for c in component.choices] == list(declared.choices), name
            assert component.value == declared.default, name
            continue
        upper = declared.le
        for limit, names in NARROWS.items():  # the server's table of which limit narrows which field
            if name in names and model.__name__ == "GenerationRequest":
                upper = min(upper, getattr(limits, limit))
        assert (component.minimum, component.maximum) == (declared.ge, upper), name


def test_a_narrow_server_offers_no_more_than_it_allows():
    ui = built(Limits(max_steps=40, max_side=128))
    sliders = {component.label: component for _, _, component in ui.widgets.made}
    assert sliders["Steps"].maximum == 40 and sliders["Width"].maximum == 128 and sliders["Height"].maximum == 128
    assert sliders["Hires steps (0 = same)"].maximum == 40


def test_cfg_starts_at_the_default_models_recommendation():
    ui = built(None)
    [cfg] = [c for name, _, c in ui.widgets.made if name == "cfg_scale"]
    assert cfg.value == model_defaults(None)["cfg_scale"] == 2.0


def test_the_checkpoint_dropdown_lists_and_starts_on_the_shipped_model():
    from kekong.models.refs import DEFAULT_BASE

    ui = built(None)
    blocks = ui.last_blocks.blocks.values()
    [checkpoint] = [b for b in blocks if getattr(b, "elem_id", None) == "checkpoint"]
    names = [c[0] if isinstance(c, tuple) else c for c in checkpoint.choices]
    assert any(name.startswith(DEFAULT_BASE + " [") for name in names)
    assert checkpoint.value.startswith(DEFAULT_BASE + " [")
    [vae] = [b for b in blocks if getattr(b, "elem_id", None) == "vae"]
    assert vae.value == "Automatic"
    [gallery] = [b for b in blocks if getattr(b, "elem_id", None) == "gallery"]
    assert gallery.interactive is False  # an output: no "Drop media here"
