"""Provenance: infotext, recipe and (later) watermark and content credentials on every image."""
