"""ONNX networks run through onnxruntime (DW-Pose's YOLOX and RTMPose files), loaded once per file.

A file that is no ONNX model, or whose inputs/outputs are not the ones the extension's code feeds and
reads (the ONNX analogue of a strict state_dict load), is refused naming the file and what differs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from kekong.errors import KekongError


@dataclass(frozen=True)
class Contract:
    """What the caller feeds and reads: the input's (C, H, W) and each output's trailing dims.
    None in a spec matches any size (a dynamic axis); a dynamic axis in the file matches any spec."""

    network: str
    input_chw: tuple[int, int, int]
    outputs: tuple[tuple[int | None, ...], ...]


class OnnxNetwork:
    """One onnxruntime session with the single input and the outputs its contract names."""

    def __init__(self, session: Any, path: str) -> None:
        self.session = session
        self.path = path
        self.input_name = session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        try:
            return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})
        except Exception as exc:  # onnxruntime's own error types (shape mismatch, failed kernel)
            raise KekongError(f"{self.path}: the ONNX model failed on its input ({str(exc).splitlines()[0]})") \
                from None


def _fits(declared: Sequence[Any], wanted: Sequence[int | None]) -> bool:
    if len(declared) != len(wanted):
        return False
    return all(w is None or not isinstance(d, int) or d == w for d, w in zip(declared, wanted, strict=True))


def _shape(arg: Any) -> list[Any]:
    return list(arg.shape) if arg.shape is not None else []


def load_onnx(path: str, contract: Contract) -> OnnxNetwork:
    """An onnxruntime CPU session for `path`, checked against `contract` (kept while the file is unchanged)."""
    stat = os.stat(path)
    return _load(path, stat.st_mtime_ns, stat.st_size, contract)


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int, contract: Contract) -> OnnxNetwork:
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - a dependency
        raise KekongError("onnxruntime is not installed: pip install onnxruntime") from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # no warnings on stderr
    try:
        session = onnxruntime.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # InvalidProtobuf, Fail, NoSuchFile: onnxruntime's own types
        raise KekongError(f"{path}: not a readable ONNX model for {contract.network} "
                          f"({str(exc).splitlines()[0][:200]})") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    wanted_in = (None, *contract.input_chw)
    problems = []
    if len(inputs) != 1 or not _fits(_shape(inputs[0]), wanted_in):
        got = [(i.name, _shape(i)) for i in inputs]
        problems.append(f"input {got} where one input of shape [N, {', '.join(map(str, contract.input_chw))}] "
                        "is fed")
    if len(outputs) != len(contract.outputs) or not all(
            _fits(_shape(o)[1:], spec) for o, spec in zip(outputs, contract.outputs, strict=False)):
        got = [(o.name, _shape(o)) for o in outputs]
        want = ", ".join("[N, " + ", ".join("*" if d is None else str(d) for d in spec) + "]"
                         for spec in contract.outputs)
        problems.append(f"outputs {got} where {want} are read")
    if problems:
        raise KekongError(f"{path}: does not fit the {contract.network} network ({'; '.join(problems)})")
    return OnnxNetwork(session, path)
