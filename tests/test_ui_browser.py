"""The web UI in a real browser: Debian's chromium, headless, driven by Playwright (no browser
download). Upload a photo, detect the pose, drag a joint, send the pose to a control unit,
generate, and see the image; then the A1111 workflow: more units, a detector's own parameters,
paste parameters, the score under the image, send to img2img, PNG info back to txt2img, an X/Y
plot and the LoRA browser. Screenshots are kept in test-artifacts/ui/ (README's docs/ui-*.png
are copied from them)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from kekong.io import save_image
from tests.server_helpers import Server, star_outline

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "ui"
# Flags for a closed network: no background connections to Google's hosts at start-up.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

GENERATION_MS = 240_000  # a first generation loads the models; on a loaded 2-core machine that takes minutes
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """A UI server with one LoRA in its models folder and a styles.csv in its data folder."""
    models, data = tmp_path_factory.mktemp("ui-models"), tmp_path_factory.mktemp("ui-data")
    (models / "Lora").mkdir()
    (models / "Lora" / "paper-cut.safetensors").write_bytes(b"")
    (data / "styles.csv").write_text("name,prompt,negative_prompt\nPaper,paper cut,blurry\n")
    saved = {key: os.environ.get(key) for key in ("KEKONG_MODELS_DIR", "KEKONG_DATA_DIR")}
    os.environ.update(KEKONG_MODELS_DIR=str(models), KEKONG_DATA_DIR=str(data))  # the server process inherits
    try:
        server = Server(tmp_path_factory.mktemp("ui-server"), ui=True).start()
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.update({key: value})
    yield server
    server.stop()


@pytest.fixture
def page(ui_server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(60_000)
        page.goto(ui_server.url + "/ui/")
        page.wait_for_selector("#generate")
        yield page
        page.screenshot(path=str(ARTIFACTS / "last-page.png"), full_page=True)  # what a failure left
        browser.close()


def pose_in_page(page) -> dict:
    return json.loads(page.eval_on_selector("#pose-editor canvas", "c => c.dataset.pose"))


def test_pose_from_photo_drag_a_joint_and_generate(page, astronaut, tmp_path):
    photo = save_image(astronaut, tmp_path / "astronaut.png")
    page.get_by_role("tab", name="Pose editor").click()
    page.set_input_files("#pose-photo input[type=file]", str(photo))
    page.click("#detect-pose")
    page.wait_for_function("() => JSON.parse(document.querySelector('#pose-editor canvas').dataset.pose || "
                           "'{\"people\": []}').people.length === 1")
    before = pose_in_page(page)["people"][0]["pose_keypoints_2d"]
    page.screenshot(path=str(ARTIFACTS / "1-pose-detected.png"), full_page=True)

    canvas = page.locator("#pose-editor canvas")
    box = canvas.bounding_box()
    scale = box["width"] / pose_in_page(page)["canvas_width"]
    nose = (box["x"] + before[0] * scale, box["y"] + before[1] * scale)
    page.mouse.move(*nose)
    page.mouse.down()
    page.mouse.move(nose[0] + 40, nose[1] + 10, steps=5)
    page.mouse.up()
    # the moved pose reaches Python: the export box shows it
    page.wait_for_function(f"() => document.querySelector('#pose-json').innerText.includes('{before[0]:.1f}') "
                           "=== false")
    after = pose_in_page(page)["people"][0]["pose_keypoints_2d"]
    assert after[0] == pytest.approx(before[0] + 40 / scale, abs=2 / scale)
    assert after[3:] == before[3:]  # only the nose moved
    page.screenshot(path=str(ARTIFACTS / "2-joint-dragged.png"), full_page=True)

    page.click("#pose-to-unit")
    page.get_by_role("tab", name="Generate").click()
    page.wait_for_function("() => document.querySelector('#unit0-image img') !== null")
    page.fill("#prompt textarea", "a red star on a white background")
    page.click("#generate")
    page.wait_for_selector("#gallery img", timeout=GENERATION_MS)
    assert "done" in page.input_value("#status textarea")
    page.screenshot(path=str(ARTIFACTS / "3-generated.png"), full_page=True)

    page.click("#gallery img")  # picking an image shows its parameters and its provenance check
    page.wait_for_function("() => document.querySelector('#details textarea').value.includes('provenance')")
    details = page.input_value("#details textarea")
    assert "a red star on a white background" in details and "Steps: 20" in details
    page.screenshot(path=str(ARTIFACTS / "4-parameters-and-provenance.png"), full_page=True)

    # the photo warped to the edited pose (shown), then re-posed (generated: warp + inpaint)
    page.get_by_role("tab", name="Pose editor").click()
    page.click("#pose-warp")
    page.wait_for_function("() => document.querySelector('#pose-warp-status').innerText.includes('handles')")
    assert page.locator("#pose-warped img").count() == 1
    page.screenshot(path=str(ARTIFACTS / "5-pose-warped.png"), full_page=True)
    page.uncheck("#pose-with-unit input")  # the shipped model has no openpose ControlNet
    last = page.input_value("#status textarea")  # `done: job …` of the first generation
    page.click("#pose-repose")
    page.wait_for_function("last => { const v = document.querySelector('#status textarea').value; "
                           "return v.startsWith('done') && v !== last; }", arg=last, timeout=GENERATION_MS)
    page.click("#gallery img")
    page.wait_for_function("() => document.querySelector('#details textarea').value.includes('Repose warp: rigid')")


PASTED = """a blue star on a white background
Steps: 6, Sampler: Euler a, CFG scale: 2, Seed: 3, Size: 64x64, \
ControlNet 0: "Module: none, Model: kekong-shapes-outline, Weight: 1.0, Resize Mode: Crop and Resize, \
Processor Res: 512, Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced\""""


def pick(page, selector: str, option: str) -> None:
    page.click(f"{selector} input")
    page.get_by_role("option", name=option, exact=True).click()


def test_the_a1111_workflow(page, tmp_path):
    # more units, and a detector's own parameters in its unit
    page.fill("#unit-count input[type=number]", "4")
    page.press("#unit-count input[type=number]", "Enter")
    page.get_by_role("tab", name="Control unit 4").wait_for()
    pick(page, "#unit0-module", "canny")
    page.wait_for_selector("#unit0-number0", state="visible")
    assert "low threshold" in page.inner_text("#unit0-number0")
    assert "high threshold" in page.inner_text("#unit0-number1")
    assert not page.is_visible("#unit0-flag0")
    page.screenshot(path=str(ARTIFACTS / "5-units-and-detector-parameters.png"), full_page=True)

    # paste an A1111 infotext: the fields and unit 1 take its values
    page.get_by_text("↙ Paste parameters").click()
    page.fill("#paste-text textarea", PASTED)
    page.click("#paste-apply")
    page.wait_for_function("() => document.querySelector('#prompt textarea').value.startsWith('a blue star')")
    assert page.input_value("#steps input[type=number]") == "6"
    assert page.input_value("#seed input") == "3"
    page.wait_for_selector("#unit0-number0", state="hidden")  # module none: canny's sliders go
    assert "control image" in page.inner_text("#paste-notes")
    page.set_input_files("#unit0-image input[type=file]", str(save_image(star_outline(), tmp_path / "star.png")))
    page.wait_for_selector("#unit0-image img")
    page.click("#generate")
    page.wait_for_function("() => document.querySelector('#status textarea').value.startsWith('done')",
                           timeout=GENERATION_MS)
    page.wait_for_selector("#gallery img")
    assert "edge_f1@2px" in page.inner_text("#gallery")  # the fidelity score under the image
    page.screenshot(path=str(ARTIFACTS / "6-pasted-generated-scored.png"), full_page=True)

    # send the result to img2img
    page.click("#gallery img")
    page.click("#send-img2img")
    page.wait_for_selector("#img2img-image img")

    # PNG info: the image's parameters, and back to txt2img
    source = page.get_attribute("#gallery img", "src")
    made = tmp_path / "made.png"
    made.write_bytes(page.request.get(source).body())
    page.fill("#prompt textarea", "something else")
    page.get_by_role("tab", name="PNG info").click()
    page.set_input_files("#pnginfo-file input[type=file]", str(made))
    page.wait_for_function("() => document.querySelector('#pnginfo-parameters textarea').value.includes('Steps: 6')")
    assert "provenance found" in page.input_value("#pnginfo-provenance textarea")
    page.screenshot(path=str(ARTIFACTS / "7-png-info.png"), full_page=True)
    page.click("#pnginfo-to-txt2img")
    page.wait_for_function("() => document.querySelector('#prompt textarea').value.startsWith('a blue star')")

    # an X/Y plot over Prompt S/R
    page.get_by_text("X/Y plot").first.click()
    page.fill("#grid-x-values textarea, #grid-x-values input", "blue, red")
    page.click("#grid-run")
    page.wait_for_selector("#grid-sheet img", timeout=2 * GENERATION_MS)
    page.wait_for_function("() => document.querySelector('#status textarea').value === 'done: 2 cells'")
    page.screenshot(path=str(ARTIFACTS / "8-xy-plot.png"), full_page=True)

    # the LoRA browser adds the LoRA to the prompt
    page.get_by_text("LoRA and embeddings").click()
    page.get_by_text("<lora:paper-cut:1>").click()
    page.wait_for_function("() => document.querySelector('#prompt textarea').value.endsWith('<lora:paper-cut:1>')")
