"""One error family for everything a user can get wrong: the CLI prints these without a traceback."""


class KekongError(Exception):
    """A problem the user can fix; the message names it."""


class ImageError(KekongError):
    """An image could not be read or is not acceptable (corrupt, too large, wrong type)."""


class ParameterError(KekongError, ValueError):
    """A parameter is unknown or out of its bounds."""


class MissingWeightsError(KekongError):
    """A model-backed feature needs weights that are not on this machine."""
