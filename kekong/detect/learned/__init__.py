"""Learned detectors whose outputs ControlNet 1.1 models were trained on (weights required)."""
