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
_EVERY_STATE = np.arange(_STATES)
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
    confidence. Returns the most likely information bits (tail removed).

    Add-compare-select over all 64 states at once: state s' is reached from s'>>1 and
    (s'>>1)|32 with input bit s'&1 (the reader decodes up to 30 hypotheses per image)."""
    pairs = soft.reshape(-1, 2)
    signs = 2.0 * _OUTPUTS - 1.0  # (states, inputs, 2): the ±1 each branch expects
    branches = signs @ pairs.T  # (states, inputs, steps): correlation of each branch with what came
    low = _EVERY_STATE >> 1
    high = low | (_STATES >> 1)
    bit = _EVERY_STATE & 1
    from_low, from_high = branches[low, bit], branches[high, bit]  # (next states, steps)
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    took_high = np.empty((len(pairs), _STATES), bool)
    for step in range(len(pairs)):
        via_low, via_high = metric[low] + from_low[:, step], metric[high] + from_high[:, step]
        took_high[step] = via_high > via_low
        metric = np.where(took_high[step], via_high, via_low)
    state, bits = 0, []  # zero-terminated: the path ends in state 0
    for step in range(len(pairs) - 1, -1, -1):
        bits.append(state & 1)
        state = (state >> 1) | (_STATES >> 1 if took_high[step, state] else 0)
    return np.array(bits[::-1][: len(pairs) - (_K - 1)], np.uint8)
