"""Every image kekong writes carries its provenance in layers — parameters + recipe, invisible
watermark, signed C2PA manifest — and `kekong verify` reads them back, notices tampering, and
checks each file on its own.

Generation runs on tiny random models (64 px); the stamped pixels are then swapped for a real
512-px photo, which is what the layers are about (stamping does not care how pixels were made)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from kekong.generation.pipeline import generate
from kekong.io import save_image
from kekong.provenance import marks
from kekong.provenance.stamp import Layers, read_png_text, stamp
from kekong.provenance.verify import Outcome, verify
from kekong.request import build_request
from tests.tiny_models import build_tiny_base, build_tiny_controlnet


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A txt2img and an img2img result from tiny models, with 512-px photo pixels."""
    root = tmp_path_factory.mktemp("provenance")
    build_tiny_base(root / "base")
    build_tiny_controlnet(root / "cn")
    save_image(data.coffee()[:64, :64], root / "control.png")
    save_image(data.chelsea()[:64, :64], root / "init.png")
    common = dict(prompt="a cat", model=str(root / "base"), width=64, height=64, steps=2, seed=7)
    txt2img = generate(build_request(**common, controls=[{"module": "none", "image": str(root / "control.png"),
                                                          "model": str(root / "cn")}]))[0]
    img2img = generate(build_request(**common, init_image=str(root / "init.png"), denoising_strength=0.5))[0]
    photo = data.astronaut()
    return root, dataclasses.replace(txt2img, image=photo), dataclasses.replace(img2img, image=photo)


def test_all_layers_by_default_and_verify_reads_each(runs, tmp_path):
    _, txt2img, _ = runs
    path = stamp(txt2img, tmp_path / "out.png")
    verdict = verify(path)
    assert verdict.outcome == Outcome.FOUND
    # C2PA: valid, signed by the local CA made on first use — valid but not trusted
    assert verdict.c2pa["state"] == "valid" and verdict.c2pa["local"] and not verdict.c2pa["trusted"]
    assert verdict.c2pa["actions"] == ["c2pa.created"]
    assert verdict.c2pa["digital_source_type"].endswith("/trainedAlgorithmicMedia")
    # the control image is an ingredient, by hash
    ingredient = verdict.c2pa["kekong"]["ingredients"][0]
    assert ingredient["relationship"] == "inputTo"
    assert ingredient["sha256"] == hashlib.sha256((runs[0] / "control.png").read_bytes()).hexdigest()
    # watermark: found, and resolved to this image's recipe on this machine
    recipe = json.loads(read_png_text(path)["kekong-recipe"])
    assert verdict.watermark["found"] and verdict.watermark["id"] == recipe["provenance"]["watermark"]
    assert verdict.watermark["made_here"]["path"] == str(path.resolve())
    assert verdict.watermark["made_here"]["recipe"]["request"]["prompt"] == "a cat"
    assert verdict.metadata["parameters"].startswith("a cat")
    assert verdict.c2pa["kekong"]["watermark"] == verdict.watermark["id"]


def test_img2img_is_an_edit_with_the_init_image_as_parent(runs, tmp_path):
    _, _, img2img = runs
    verdict = verify(stamp(img2img, tmp_path / "edit.png"))
    assert verdict.c2pa["actions"] == ["c2pa.opened", "c2pa.edited"]
    assert verdict.c2pa["digital_source_type"].endswith("/compositeWithTrainedAlgorithmicMedia")
    [parent] = verdict.c2pa["kekong"]["ingredients"]
    assert parent["relationship"] == "parentOf"


def test_ingredient_thumbnails_only_on_request(runs, tmp_path):
    import c2pa

    _, txt2img, _ = runs
    plain = stamp(txt2img, tmp_path / "plain.png")
    with_thumbs = stamp(txt2img, tmp_path / "thumbs.png", layers=Layers(c2pa_thumbnails=True))

    def ingredient_thumbnails(path: Path) -> list:
        manifest = c2pa.Reader("image/png", io.BytesIO(path.read_bytes())).get_active_manifest()
        return [i.get("thumbnail") for i in manifest["ingredients"] if i.get("thumbnail")]

    assert ingredient_thumbnails(plain) == []
    assert len(ingredient_thumbnails(with_thumbs)) == 1


def test_turning_a_layer_off_is_recorded_in_the_others(runs, tmp_path):
    _, txt2img, _ = runs
    no_mark = verify(stamp(txt2img, tmp_path / "a.png", layers=Layers(watermark=False)))
    assert not no_mark.watermark["found"]
    assert no_mark.c2pa["kekong"]["watermark"] == "off" and no_mark.metadata["layers"]["watermark"] == "off"

    no_c2pa = verify(stamp(txt2img, tmp_path / "b.png", layers=Layers(c2pa=False)))
    assert no_c2pa.c2pa["state"] == "absent" and no_c2pa.metadata["layers"]["c2pa"] is False
    assert no_c2pa.watermark["found"]

    no_meta_path = stamp(txt2img, tmp_path / "c.png", layers=Layers(metadata=False))
    no_meta = verify(no_meta_path)
    assert read_png_text(no_meta_path) == {} and no_meta.metadata["parameters"] is None
    assert no_meta.c2pa["kekong"]["layers"]["metadata"] is False and no_meta.c2pa["kekong"]["recipe"] is None
    assert no_meta.watermark["made_here"]["recipe"] is None  # the register keeps no recipe either


def rewrite_one_pixel(path: Path) -> None:
    """Change one pixel in the PNG's image data, keeping every other chunk (the C2PA one too)."""
    blob = path.read_bytes()
    chunks, pos = [], 8
    while pos < len(blob):
        length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
        chunks.append((kind, blob[pos + 8:pos + 8 + length]))
        pos += 12 + length
    pixels = bytearray(zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT")))
    pixels[1000] ^= 0x10
    out, wrote = [blob[:8]], False
    for kind, body in chunks:
        if kind == b"IDAT":
            if wrote:
                continue
            kind, body, wrote = b"IDAT", zlib.compress(bytes(pixels)), True
        out.append(struct.pack(">I4s", len(body), kind) + body + struct.pack(">I", zlib.crc32(kind + body)))
    path.write_bytes(b"".join(out))


def test_one_changed_pixel_breaks_the_c2pa_binding(runs, tmp_path):
    _, txt2img, _ = runs
    path = stamp(txt2img, tmp_path / "signed.png")
    rewrite_one_pixel(path)
    verdict = verify(path)
    assert verdict.c2pa["state"] == "tampered" and verdict.outcome == Outcome.TAMPERED
    assert any("dataHash.mismatch" in problem for problem in verdict.c2pa["problems"])
    assert verdict.watermark["found"]  # the watermark still says who made it


def test_replay_keeps_the_mark(runs, tmp_path):
    _, txt2img, _ = runs
    first = stamp(txt2img, tmp_path / "first.png", layers=Layers(c2pa=False))
    mark_id = marks.parse_id(json.loads(read_png_text(first)["kekong-recipe"])["provenance"]["watermark"])
    again = stamp(txt2img, tmp_path / "again.png", layers=Layers(c2pa=False), mark_id=mark_id)
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))


def test_small_images_say_they_carry_no_reliable_mark(runs, tmp_path):
    _, txt2img, _ = runs
    small = dataclasses.replace(txt2img, image=data.astronaut()[:200, :200])
    path = stamp(small, tmp_path / "small.png")
    recipe = json.loads(read_png_text(path)["kekong-recipe"])
    assert recipe["provenance"]["watermark"].startswith("not embedded: 200x200 is below 256")
    assert verify(path).watermark["too_small"]


def test_the_sdxl_watermark_is_recognised(tmp_path):
    from imwatermark import WatermarkEncoder

    from kekong.provenance.verify import SDXL_BITS

    encoder = WatermarkEncoder()
    encoder.set_watermark("bits", SDXL_BITS)
    photo = data.astronaut()
    save_image(encoder.encode(photo[..., ::-1].copy(), "dwtDct")[..., ::-1].copy(), tmp_path / "sdxl.png")
    save_image(photo, tmp_path / "photo.png")
    assert verify(tmp_path / "sdxl.png").sdxl_watermark["found"]
    plain = verify(tmp_path / "photo.png")
    assert not plain.sdxl_watermark["found"] and plain.outcome == Outcome.NOTHING


def kekong(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kekong.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})


def test_cli_checks_every_file_and_exits_with_the_worst_outcome(runs, tmp_path):
    _, txt2img, _ = runs
    good = stamp(txt2img, tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "notes.txt").write_text("hello")
    done = kekong("verify", str(good), str(tmp_path / "broken.png"), str(tmp_path / "missing.png"),
                  str(tmp_path / "notes.txt"))
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "C2PA: valid" in done.stdout and "watermark: kekong id" in done.stdout
    assert "broken.png: not a readable image" in done.stdout and "missing.png: no such file" in done.stdout

    done = kekong("verify", "--json", str(good))
    assert done.returncode == 0
    [report] = json.loads(done.stdout)
    assert report["outcome"] == "found" and report["c2pa"]["state"] == "valid"


def test_configured_credentials_are_used_and_half_a_configuration_is_refused(runs, tmp_path, monkeypatch):
    from kekong.errors import KekongError
    from kekong.provenance.credentials import config_dir, load_credentials

    _, txt2img, _ = runs
    load_credentials()  # make the local ones, then configure them explicitly
    local = config_dir() / "c2pa"
    monkeypatch.setenv("KEKONG_C2PA_CERT", str(local / "chain.pem"))
    monkeypatch.setenv("KEKONG_C2PA_KEY", str(local / "signer.key"))
    assert not load_credentials().local
    assert verify(stamp(txt2img, tmp_path / "configured.png")).c2pa["state"] == "valid"
    monkeypatch.delenv("KEKONG_C2PA_KEY")
    with pytest.raises(KekongError, match="set both"):
        stamp(txt2img, tmp_path / "half.png")
    assert not (tmp_path / "half.png").exists()


def test_re_encoded_copies_lose_the_manifest_but_keep_the_mark(runs, tmp_path):
    """A JPEG re-save (what social sites do) drops C2PA and the chunks; the watermark remains, and
    its register says a manifest was written: stripped. Formats c2pa does not read (BMP) are still
    checked for the watermark."""
    _, txt2img, _ = runs
    path = stamp(txt2img, tmp_path / "orig.png")
    pixels = np.asarray(Image.open(path).convert("RGB"))
    Image.fromarray(pixels).save(tmp_path / "copy.jpg", quality=70)
    Image.fromarray(pixels).save(tmp_path / "copy.bmp")
    as_jpeg, as_bmp = verify(tmp_path / "copy.jpg"), verify(tmp_path / "copy.bmp")
    assert as_jpeg.c2pa["state"] == "stripped" and as_jpeg.c2pa["found"] == "absent"
    assert as_jpeg.watermark["found"] and as_jpeg.outcome == Outcome.STRIPPED
    assert as_bmp.c2pa["state"] == "stripped" and as_bmp.c2pa["found"] == "unsupported" and as_bmp.watermark["found"]


def without_chunk(blob: bytes, kind: bytes) -> bytes:
    """A PNG's bytes with every chunk of `kind` removed, the rest untouched."""
    out, pos = [blob[:8]], 8
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos:pos + 4])
        if blob[pos + 4:pos + 8] != kind:
            out.append(blob[pos:pos + 12 + length])
        pos += 12 + length
    return b"".join(out)


def test_a_stripped_manifest_is_named_and_has_its_own_exit_code(runs, tmp_path, monkeypatch):
    _, txt2img, _ = runs
    path = stamp(txt2img, tmp_path / "signed.png")
    (tmp_path / "cut.png").write_bytes(without_chunk(path.read_bytes(), b"caBX"))  # the C2PA chunk only
    Image.open(path).save(tmp_path / "resaved.png")  # Pillow keeps no chunk: only the watermark is left
    cut, resaved = verify(tmp_path / "cut.png"), verify(tmp_path / "resaved.png")
    assert cut.c2pa["state"] == "stripped" and cut.outcome == Outcome.STRIPPED and cut.metadata["recipe"]
    assert resaved.c2pa["state"] == "stripped" and resaved.outcome == Outcome.STRIPPED
    assert "register" in resaved.c2pa["expected_because"] and not resaved.metadata["recipe"]

    done = kekong("verify", str(tmp_path / "resaved.png"))
    assert done.returncode == 4 and "C2PA: STRIPPED — this image was made with a signed C2PA manifest" in done.stdout
    assert "removed, or the image was edited or re-saved" in done.stdout
    done = kekong("verify", str(tmp_path / "resaved.png"), str(tmp_path / "cut.png"), str(path))
    assert done.returncode == 4  # worse than found, not as bad as tampered
    assert json.loads(kekong("verify", "--json", str(tmp_path / "cut.png")).stdout)[0]["outcome"] == "stripped"

    monkeypatch.setenv("KEKONG_DATA_DIR", str(tmp_path / "another-machine"))  # no register entry for the mark
    elsewhere_cut, elsewhere_resaved = verify(tmp_path / "cut.png"), verify(tmp_path / "resaved.png")
    assert elsewhere_cut.c2pa["state"] == "stripped" and "recipe" in elsewhere_cut.c2pa["expected_because"]
    assert elsewhere_resaved.c2pa["state"] == "absent" and elsewhere_resaved.outcome == Outcome.FOUND  # nothing says


def test_a_manifest_never_written_is_none_not_stripped(runs, tmp_path):
    _, txt2img, _ = runs
    path = stamp(txt2img, tmp_path / "plain.png", layers=Layers(c2pa=False))
    Image.open(path).save(tmp_path / "resaved.png")
    for verdict in (verify(path), verify(tmp_path / "resaved.png")):
        assert verdict.c2pa["state"] == "absent" and verdict.outcome == Outcome.FOUND


def test_c2pa_is_read_from_the_content_whatever_the_name(runs, tmp_path):
    _, txt2img, _ = runs
    blob = stamp(txt2img, tmp_path / "signed.png").read_bytes()
    (tmp_path / "download").write_bytes(blob)
    (tmp_path / "named-wrong.jpg").write_bytes(blob)
    for name in ("download", "named-wrong.jpg"):
        assert verify(tmp_path / name).c2pa["state"] == "valid", name


def test_a_folder_is_named_as_a_folder(tmp_path):
    done = kekong("verify", str(tmp_path))
    assert done.returncode == 3 and f"{tmp_path}: a folder, not an image" in done.stdout
    assert "no such file" not in done.stdout


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_jpeg_and_webp_carry_a1111s_exif_comment_and_a_signed_manifest(runs, tmp_path, suffix):
    from kekong.provenance.replay import load_recipe

    _, txt2img, _ = runs
    path = stamp(txt2img, tmp_path / f"out{suffix}")
    verdict = verify(path)
    assert verdict.metadata["parameters"].startswith("a cat") and "Steps: 2" in verdict.metadata["parameters"]
    assert verdict.c2pa["state"] == "valid" and verdict.watermark["found"]
    assert load_recipe(path)["request"]["prompt"] == "a cat"  # from the manifest: EXIF holds only the infotext


def test_an_unmarked_photo_is_described_in_plain_words(tmp_path):
    from kekong.provenance.verify import describe

    save_image(data.astronaut(), tmp_path / "photo.png")
    text = describe(verify(tmp_path / "photo.png"))
    assert "no kekong mark found" in text and "no id decoded" in text
    assert "no provenance found" in text
    assert "does not prove the image is a real photo" in text
    assert "→ nothing" not in text and "best match" not in text
