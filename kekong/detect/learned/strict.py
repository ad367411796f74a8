"""Strict loading of a learned detector's weights, refused with the keys that do not fit."""

from __future__ import annotations

from torch import nn

from kekong.errors import KekongError


def load_strictly(network: nn.Module, state: dict, path: str, what: str) -> nn.Module:
    """`load_state_dict(strict=True)`, refused with the keys that are missing, unexpected or mis-shaped."""
    try:
        missing, unexpected = network.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes: torch names the tensor on the next line
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise KekongError(f"{path}: does not fit the {what} network ({lines[-1]})") from None
    if missing or unexpected:
        parts = [f"{label}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise KekongError(f"{path}: does not fit the {what} network ({'; '.join(parts)})")
    return network


def strip_prefix(state: dict, prefix: str) -> dict:
    """Drop `prefix` from every key when every key has it (the annotators' `strip_prefix_if_present`)."""
    if state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix) :]: value for key, value in state.items()}
    return state


def unwrap(state: dict, key: str = "model") -> dict:
    """The weights of a training checkpoint that keeps them under `key` (DSINE's, ZoeDepth's), else `state`."""
    inner = state.get(key)
    return inner if isinstance(inner, dict) else state
