"""The web UI's A1111 settings in a real browser (issue 23 item 2): the checkpoint and VAE selectors
with their refresh, the model's own CFG, schedule type, batch count, a style from styles.csv, Pixel
Perfect on a unit — each must reach the generated image's parameters — then send to inpaint and to a
ControlNet unit. Same server and browser as tests/test_ui_browser.py; screenshots in test-artifacts/ui/."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from kekong.io import save_image
from tests.server_helpers import star_outline
from tests.test_ui_browser import ARTIFACTS, GENERATION_MS, PASTED, page, pick, pytestmark, ui_server  # noqa: F401


def blue_share(png: bytes) -> float:
    """Share of strongly blue pixels in a screenshot."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return float(((rgb[..., 2] > 150) & (rgb[..., 0] < 100) & (rgb[..., 1] < 100)).mean())


def test_settings_reach_the_image_and_sends_fill_inpaint_and_a_unit(page, tmp_path):  # noqa: F811
    # the shipped model is picked, with its own CFG (2, not A1111's 7); the refresh keeps it
    assert page.input_value("#checkpoint input")
    assert page.input_value("#cfg input[type=number]") == "2"
    page.get_by_text("↻ Refresh models").click()
    assert page.input_value("#vae input") == "Automatic"

    page.get_by_text("↙ Paste parameters").click()  # unit 1: the shipped outline ControlNet, module none
    page.fill("#paste-text textarea", PASTED)
    page.click("#paste-apply")
    page.wait_for_function("() => document.querySelector('#prompt textarea').value.startsWith('a blue star')")
    page.set_input_files("#unit0-image input[type=file]", str(save_image(star_outline(), tmp_path / "star.png")))
    page.wait_for_selector("#unit0-image img")

    pick(page, "#scheduler", "Karras")
    page.fill("#styles input", "Paper")
    page.get_by_role("option", name="Paper", exact=True).click()
    page.keyboard.press("Escape")
    batch_count = page.get_by_label("number input for Batch count")
    batch_count.fill("2")
    batch_count.press("Enter")
    page.get_by_label("Pixel Perfect").first.check()
    page.screenshot(path=str(ARTIFACTS / "9-settings.png"), full_page=True)

    page.click("#generate")
    page.wait_for_function("() => document.querySelector('#status textarea').value.startsWith('done')",
                           timeout=2 * GENERATION_MS)
    page.wait_for_function("() => document.querySelectorAll('#gallery img').length >= 2")  # batch count 2
    page.click("#gallery img")
    page.wait_for_function("() => document.querySelector('#details textarea').value.includes('Schedule type')")
    details = page.input_value("#details textarea")
    assert "Schedule type: Karras" in details
    assert "paper cut" in details  # the style's prompt merged in
    assert "Pixel Perfect: True" in details
    page.screenshot(path=str(ARTIFACTS / "10-settings-generated.png"), full_page=True)

    page.click("#send-inpaint")
    page.get_by_role("tab", name="Inpaint", selected=True).wait_for()
    page.wait_for_function("() => document.querySelector('#inpaint-image canvas') !== null")
    page.wait_for_timeout(1000)  # the editor paints its background layer
    assert blue_share(page.locator("#inpaint-image").screenshot()) > 0.05  # the generated blue star is in it
    pick(page, "#send-unit-number", "2")
    page.click("#send-unit")
    page.get_by_role("tab", name="Control unit 2").wait_for()
    page.wait_for_selector("#unit1-image img")
    assert page.is_checked("#unit1-enabled input")
