"""Error correction for the watermark payload: CRC-16 check bits and a rate-1/2, constraint-length-7
convolutional code (the NASA/Voyager generators 133, 171 octal) decoded by soft-decision Viterbi.

Soft decisions matter here: a watermark bit arrives as a correlation value, not a 0/1, and the
decoder weighs confident chips above doubtful ones (about 2 dB better than decoding hard bits)."""

from __future__ import annotations

import numpy as np

_K = 7
_GENERATORS = (0o133, 0o171)
_STATES = 1 << (_K - 1)


def _parity(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    for shift in (4, 2, 1):
        x ^= x >> shift
    return x & 1


# For each state (the last K-1 input bits) and input bit: the next state and the two output bits.
_REGISTER = (np.arange(_STATES)[:, None] << 1 | np.arange(2)[None, :]) & ((1 << _K) - 1)
_NEXT_STATE = _REGISTER & (_STATES - 1)
_OUTPUTS = np.stack([_parity(_REGISTER & g) for g in _GENERATORS], axis=-1)  # (states, 2 inputs, 2 outputs)


def crc16(bits: np.ndarray) -> np.ndarray:
    """CRC-16/CCITT (polynomial 0x1021, initial value 0xFFFF) of a bit array, as 16 bits."""
    register = 0xFFFF
    for bit in bits.astype(int):
        feedback = ((register >> 15) & 1) ^ bit
        register = (register << 1) & 0xFFFF
        if feedback:
            register ^= 0x1021
    return np.array([(register >> (15 - i)) & 1 for i in range(16)], np.uint8)


def encode(bits: np.ndarray) -> np.ndarray:
    """Convolutional encoding, zero-terminated (K-1 tail bits): 2·(n+6) coded bits."""
    state, out = 0, []
    for bit in [*bits.astype(int), *[0] * (_K - 1)]:
        out.extend(_OUTPUTS[state, bit])
        state = _NEXT_STATE[state, bit]
    return np.array(out, np.uint8)


def decode(soft: np.ndarray) -> np.ndarray:
    """Soft-decision Viterbi. `soft` holds one value per coded bit: positive means 1, its size the
    confidence. Returns the most likely information bits (tail removed)."""
    pairs = soft.reshape(-1, 2)
    signs = 2.0 * _OUTPUTS - 1.0  # (states, inputs, 2): the ±1 each branch expects
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    choices = []
    for pair in pairs:
        branch = metric[:, None] + signs @ pair  # (states, inputs): correlation of branch with received
        candidate = np.full(_STATES, -np.inf)
        came_from = np.zeros((_STATES, 2), np.int64)  # (previous state, input) that won each next state
        flat_next = _NEXT_STATE.ravel()
        flat_branch = branch.ravel()
        order = np.argsort(flat_branch)  # ascending, so the best write per next state comes last
        candidate[flat_next[order]] = flat_branch[order]
        came_from[flat_next[order]] = np.stack(np.unravel_index(order, branch.shape), axis=-1)
        metric = candidate
        choices.append(came_from)
    state, bits = 0, []  # zero-terminated: the path ends in state 0
    for came_from in reversed(choices):
        previous, bit = came_from[state]
        bits.append(bit)
        state = previous
    return np.array(bits[::-1][: len(pairs) - (_K - 1)], np.uint8)
