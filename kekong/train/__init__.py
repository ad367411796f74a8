"""Training: datasets (fill layout, on-the-fly detection, synthetic shapes) and training loops."""
