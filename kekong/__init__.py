"""kekong (可控): controllable image generation with ControlNet."""

__version__ = "0.1.0"
