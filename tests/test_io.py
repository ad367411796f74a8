"""Every path that reads an image: orientation, modes, alpha, pixel cap, corrupt files."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kekong.errors import ImageError
from kekong.io import _umask, load_image, load_image_rgba, save_image, write_atomic


def _png_bytes(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_exif_orientation_is_applied():
    wide = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    loaded = load_image(_png_bytes(wide, "JPEG", exif=exif.tobytes()))
    assert loaded.shape == (40, 20, 3)  # portrait after rotation


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1", "I;16", "I", "F"])
def test_every_mode_becomes_uint8_rgb(mode):
    source = Image.new("RGB", (16, 8), (200, 100, 50)).convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "F", "I") else "PNG"
    loaded = load_image(_png_bytes(source, fmt))
    assert loaded.shape == (8, 16, 3) and loaded.dtype == np.uint8


def test_sixteen_bit_greyscale_uses_the_full_range():
    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)  # 0 … 65535
    loaded = load_image(_png_bytes(Image.fromarray(ramp)))
    assert loaded[0, 0, 0] == 0 and loaded[-1, -1, 0] == 255


def test_alpha_is_composited_on_white_and_kept_by_rgba_loader():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half fully transparent
    data = _png_bytes(Image.fromarray(rgba, "RGBA"))
    rgb = load_image(data)
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[3, 3]) == (255, 255, 255)
    assert load_image_rgba(data)[3, 3, 3] == 0


def test_pixel_cap_refuses_before_decoding(monkeypatch):
    monkeypatch.setenv("KEKONG_MAX_PIXELS", "1000")
    with pytest.raises(ImageError, match="over the cap"):
        load_image(_png_bytes(Image.new("RGB", (100, 100))))


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    with pytest.raises(ImageError, match=r"junk\.png"):
        load_image(junk)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(_png_bytes(Image.new("RGB", (64, 64), (1, 2, 3)))[:80])
    with pytest.raises(ImageError, match=r"cut\.png"):
        load_image(truncated)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "absent.png")


def test_save_is_atomic_and_round_trips(tmp_path, coffee):
    path = save_image(coffee, tmp_path / "out" / "coffee.png")
    assert np.array_equal(load_image(path), coffee)
    assert [p.name for p in path.parent.iterdir()] == ["coffee.png"]  # no temp file left
    with pytest.raises(ImageError, match="unknown image format"):
        save_image(coffee, tmp_path / "coffee.xyz")


@pytest.fixture
def umask():
    """Set the process umask for one test and put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_follow_the_umask(tmp_path, coffee, umask, mask, expected):
    umask(mask)
    image = save_image(coffee, tmp_path / "coffee.png")
    sidecar = write_atomic(tmp_path / "recipe.json", b"{}")
    assert stat.S_IMODE(image.stat().st_mode) == expected
    assert stat.S_IMODE(sidecar.stat().st_mode) == expected
    assert _umask() == mask  # reading it does not change it


def test_overwriting_keeps_the_files_mode(tmp_path, coffee, umask):
    umask(0o077)
    path = tmp_path / "coffee.png"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)  # the user's own choice, e.g. readable by a web server's group
    save_image(coffee, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert np.array_equal(load_image(path), coffee)


def test_umask_read_without_proc(monkeypatch, umask):
    """Where /proc is missing, the umask is set and restored (under a lock), not lost."""
    umask(0o027)
    real_read_text = Path.read_text

    def no_proc(self, *args, **kwargs):
        if str(self).startswith("/proc"):
            raise OSError("no /proc here")
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", no_proc)
    assert _umask() == 0o027
    assert os.umask(0o027) == 0o027  # still in force afterwards
