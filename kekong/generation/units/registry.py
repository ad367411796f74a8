"""The kinds of control unit, in the order they are asked to claim a request's unit: the first that
claims it prepares it. Adding a kind: its module beside these, and a line here."""

from __future__ import annotations

from functools import cache
from typing import Any

from kekong.generation.units.base import Unit
from kekong.generation.units.controlnet import ControlNetUnit, UnionUnit
from kekong.generation.units.files import load_model
from kekong.generation.units.ip_adapter import IPAdapterUnit
from kekong.generation.units.reference import ReferenceUnit
from kekong.generation.units.t2i_adapter import T2IAdapterUnit
from kekong.request import ControlUnit

KINDS: list[type[Unit]] = [
    IPAdapterUnit,  # by its module (ip-adapter_clip_*); its model is an IP-Adapter file
    ReferenceUnit,  # by its module (reference_only); no model
    T2IAdapterUnit,  # the rest by the model file they name (or the base's default for the module)
    UnionUnit,
    ControlNetUnit,  # plain ControlNets and Control-LoRAs: whatever file is left
]


def prepare(base: Any, unit: ControlUnit, index: int) -> Unit:
    """The request's unit as the kind that claims it, its model loaded and checked against `base`."""
    loaded = cache(lambda: load_model(base, unit))  # a kind that asks loads the unit's file; the next reuses it
    kind = next(kind for kind in KINDS if kind.claims(unit, loaded))
    return kind.prepare(base, unit, index, loaded)
