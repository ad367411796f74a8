"""kekong (可控): controllable image generation with ControlNet."""

__version__ = "0.1.0"

from kekong import lean_imports as _lean_imports

_lean_imports.install()


def generate(request=None, /, on_step=None, **fields):
    """Generate images: `kekong.generate(prompt="a red star", controls=[{"module": "canny", "image": "p.png"}])`.

    Takes a GenerationRequest or its fields (validated before anything loads); returns a list of
    `Generated` (`.image` is uint8 HxWx3, plus the seed and what made it). Write them with
    `kekong.save(generated, "out.png")`, which stamps the infotext and recipe.
    """
    from kekong.generation.pipeline import generate as run
    from kekong.request import GenerationRequest, build_request

    if request is not None and not isinstance(request, GenerationRequest):
        raise TypeError("pass a GenerationRequest or keyword fields")
    return run(request or build_request(**fields), on_step)


def save(generated, path, recipe_sidecar: bool = False, layers=None):
    """Write a generated image as PNG with its provenance: A1111 parameters and kekong recipe,
    invisible watermark and signed C2PA manifest (`layers=kekong.Layers(c2pa=False)` etc. to
    turn one off)."""
    from kekong.provenance.stamp import Layers, stamp

    return stamp(generated, path, recipe_sidecar, layers or Layers())


def __getattr__(name):
    if name == "Layers":
        from kekong.provenance.stamp import Layers

        return Layers
    raise AttributeError(name)
