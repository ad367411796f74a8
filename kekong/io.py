"""Reading and writing images, with the same rules on every path that reads one.

Rules (documented in README "Image input"):
- EXIF orientation is applied, so a phone photo is upright.
- Palette, greyscale, 16-bit, float and CMYK images are converted to 8-bit RGB.
- Alpha is composited onto a background (white by default: a sketch on a transparent
  layer reads as a sketch on paper). `load_image_rgba` keeps alpha for mask helpers.
- Images larger than a pixel cap (KEKONG_MAX_PIXELS, default 40 megapixels) are refused
  before their pixels are decoded, so a decompression bomb costs nothing; so are PNG text
  chunks that inflate past Pillow's limits (MAX_TEXT_CHUNK, MAX_TEXT_MEMORY).
- A corrupt or non-image file raises ImageError naming the file.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kekong.errors import ImageError

DEFAULT_MAX_PIXELS = 40_000_000
ImageSource = str | os.PathLike | bytes | np.ndarray | Image.Image


def max_pixels() -> int:
    """The decoded-pixel cap, from KEKONG_MAX_PIXELS or the default."""
    value = os.environ.get("KEKONG_MAX_PIXELS", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_PIXELS


def _describe(source: ImageSource) -> str:
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"<{type(source).__name__}>"


def _open(source: ImageSource) -> Image.Image:
    """Open without decoding pixels; check the size against the cap first."""
    name = _describe(source)
    if isinstance(source, Image.Image):
        image = source
    else:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise ImageError(f"{name}: no such file")
            stream = io.BytesIO(path.read_bytes())  # PIL decodes lazily; no file left open
        else:
            stream = io.BytesIO(source)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(stream)
        except (UnidentifiedImageError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as exc:
            raise ImageError(f"{name}: not a readable image ({exc.__class__.__name__})") from exc
        except ValueError as exc:  # PNG text chunks (zTXt/iTXt) that inflate past Pillow's limits
            raise ImageError(f"{name}: refused, its metadata is too large ({exc})") from exc
        except OSError as exc:
            raise ImageError(f"{name}: not a readable image ({exc})") from exc
    width, height = image.size
    if width * height > max_pixels():
        raise ImageError(
            f"{name}: {width}x{height} is {width * height:,} pixels, over the cap of "
            f"{max_pixels():,} (set KEKONG_MAX_PIXELS to raise it)"
        )
    if width == 0 or height == 0:
        raise ImageError(f"{name}: image has no pixels ({width}x{height})")
    return image


def _decode(image: Image.Image, name: str) -> Image.Image:
    """Decode pixels, apply EXIF orientation and bring every mode to RGB or RGBA."""
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{name}: image data is corrupt or truncated ({exc})") from exc
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # High bit depth greyscale: scale the full range of the type down to 8 bits.
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if mode == "F" else (65535.0 if values.max() > 255 else 255.0)
        grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        return image.convert("RGBA")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        return image.convert("RGBA")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def load_image_rgba(source: ImageSource) -> np.ndarray:
    """Load any image as uint8 HxWx4 RGBA (alpha 255 where the file has none)."""
    if isinstance(source, np.ndarray):
        return as_rgba(source)
    name = _describe(source)
    image = _decode(_open(source), name)
    return np.array(image.convert("RGBA"), dtype=np.uint8)


def load_image(source: ImageSource, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Load any image as uint8 HxWx3 RGB; alpha is composited onto `background`."""
    if isinstance(source, np.ndarray):
        return as_rgb(source)
    name = _describe(source)
    image = _decode(_open(source), name)
    if image.mode == "RGBA":
        base = Image.new("RGBA", image.size, (*background, 255))
        image = Image.alpha_composite(base, image)
    return np.array(image.convert("RGB"), dtype=np.uint8)


def as_rgb(array: np.ndarray) -> np.ndarray:
    """Check an in-memory image and bring it to uint8 HxWx3 (like ControlNet's HWC3)."""
    if array.dtype != np.uint8:
        raise ImageError(f"image array must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape[:2]:
        raise ImageError(f"image array must be HxW, HxWx1, HxWx3 or HxWx4, got {array.shape}")
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.shape[2] == 4:
        rgb = array[:, :, :3].astype(np.float32)
        alpha = array[:, :, 3:].astype(np.float32) / 255.0
        return (rgb * alpha + 255.0 * (1.0 - alpha) + 0.5).clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def as_rgba(array: np.ndarray) -> np.ndarray:
    """Bring an in-memory uint8 image to HxWx4, opaque where it has no alpha."""
    if array.ndim == 3 and array.shape[2] == 4 and array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    rgb = as_rgb(array)
    alpha = np.full((*rgb.shape[:2], 1), 255, np.uint8)
    return np.concatenate([rgb, alpha], axis=2)


def save_image(array: np.ndarray, path: str | os.PathLike, pnginfo: dict[str, str] | None = None) -> Path:
    """Write uint8 HxW, HxWx3 or HxWx4 atomically (temp file + rename); format from the suffix."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown image format '{path.suffix}' (use .png, .jpg or .webp)")
    return write_atomic(path, encode_image(array, fmt, pnginfo, name=str(path)))


def encode_image(array: np.ndarray, fmt: str = "PNG", pnginfo: dict[str, str] | None = None, name: str = "image",
                 user_comment: str | None = None, compress_level: int = 6) -> bytes:
    """uint8 HxW, HxWx3 or HxWx4 as file bytes; PNG text chunks from `pnginfo`; for JPEG and
    WebP, `user_comment` goes into EXIF UserComment as A1111 writes it (UTF-16, "UNICODE" prefix).
    `compress_level` 1 makes PNGs about twice as fast to write, a little larger (HTTP answers)."""
    if array.dtype != np.uint8:
        raise ImageError(f"{name}: can only save uint8 images, got {array.dtype}")
    image = Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[2] == 1 else array)
    options: dict = {"compress_level": compress_level} if fmt == "PNG" else {}
    if fmt == "PNG" and pnginfo:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for key, value in pnginfo.items():
            info.add_text(key, value)  # tEXt, or iTXt when not Latin-1 (as A1111)
        options["pnginfo"] = info
    if fmt == "JPEG" and image.mode == "RGBA":
        raise ImageError(f"{name}: JPEG cannot hold alpha; save as .png")
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = 90
        if user_comment:
            exif = Image.Exif()
            exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + user_comment.encode("utf-16-be")
            options["exif"] = exif.tobytes()
    stream = io.BytesIO()
    image.save(stream, format=fmt, **options)
    return stream.getvalue()


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where the OS tells it (Linux: /proc), else
    set-and-restored under a lock (a file another thread makes meanwhile could get umask 0)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes via a temp file and a rename: a reader never sees half a file.

    The file gets the mode a plain `open()` would give it: a new file 0o666 less the umask
    (mkstemp's temp file is 0600, which would make every output owner-only), an overwritten file
    keeps its own permission bits."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:  # no file yet (or unreadable): as a new file
        mode = 0o666 & ~_umask()
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            if hasattr(os, "fchmod"):
                os.fchmod(stream.fileno(), mode)
            stream.write(data)
        if not hasattr(os, "fchmod"):
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def image_source(reference: str) -> ImageSource:
    """A request's image field: a file path, or a `data:image/…;base64,` URI (API clients)."""
    if reference.startswith("data:"):
        header, _, payload = reference.partition(",")
        if ";base64" not in header:
            raise ImageError("data: URI images must be base64-encoded")
        return _b64decode(payload)
    return reference


def _b64decode(payload: str) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"image is not valid base64 ({exc})") from None


def source_bytes(reference: str) -> bytes:
    """The file bytes behind a request image reference (a path or a data: URI)."""
    source = image_source(reference)
    data = source if isinstance(source, bytes) else Path(source).read_bytes() if Path(source).is_file() else b""
    if not data:
        raise ImageError(f"{reference}: no such file")
    return data


def source_sha256(reference: str) -> str:
    """sha256 of a request image's bytes (recorded in the recipe; replay checks it)."""
    import hashlib

    return hashlib.sha256(source_bytes(reference)).hexdigest()
