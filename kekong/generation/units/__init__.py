"""Control units as kinds: one class per kind of unit behind one interface (base.py), listed in
registry.py. The loop asks each kind for its units' contribution at a step."""

from kekong.generation.units.base import Contribution, Sampling, Step, Unit
from kekong.generation.units.controlnet import ControlNetUnit, UnionUnit
from kekong.generation.units.ip_adapter import IPAdapterUnit
from kekong.generation.units.reference import ReferenceUnit
from kekong.generation.units.t2i_adapter import T2IAdapterUnit

__all__ = ["Contribution", "ControlNetUnit", "IPAdapterUnit", "ReferenceUnit", "Sampling", "Step",
           "T2IAdapterUnit", "UnionUnit", "Unit"]
