"""The Space in a real browser: Debian's chromium driven by Playwright uploads, clicks, paints and sees outputs.

Screenshots are kept as test artifacts in ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import sys
import urllib.request
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
sys.path.insert(0, str(ROOT / "spaces_app"))
from local_server import BROWSER_ARGS, CHROMIUM, running_app  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: apt-get install -y chromium chromium-driver"
    ),
]
pytest.importorskip("gradio")
playwright_api = pytest.importorskip("playwright.sync_api")

from facade_palette import draw_facade  # noqa: E402

from pix2pix_hub import Pix2Pix, unet_128  # noqa: E402


def output_image(page, elem_id: str, timeout_ms: int = 60_000) -> Image.Image:
    """Wait for the output component ``elem_id`` to show a served image; return that image as downloaded."""
    image = page.locator(f"#{elem_id} img[src*='gradio_api/file=']").first
    image.wait_for(state="visible", timeout=timeout_ms)
    with urllib.request.urlopen(image.get_attribute("src")) as response:
        return Image.open(BytesIO(response.read()))


def test_upload_translate_and_draw_in_chromium(tmp_path):
    model_dir = tmp_path / "tiny"
    Pix2Pix(unet_128(ngf=8), None).save_pretrained(model_dir)
    upload = tmp_path / "facade.png"
    Image.fromarray(draw_facade(11, 320, 240)).save(upload)
    ARTIFACTS.mkdir(exist_ok=True)

    with running_app({"MODEL_ID": str(model_dir), "DIRECTION": "BtoA"}) as url, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1200})
            page.goto(url, wait_until="domcontentloaded")
            translate = page.get_by_role("button", name="Translate", exact=True)
            translate.wait_for(timeout=60_000)
            assert page.get_by_text("BtoA: label map → photo").is_visible()

            page.locator("input[type=file]").first.set_input_files(str(upload))
            page.locator("img[src*='facade.png']").first.wait_for(timeout=30_000)  # the upload is shown
            translate.click()
            assert output_image(page, "output").size == (320, 240)
            # The comparison slider fills after the translation: input and output, both served.
            compared = page.locator("#compare img[src*='gradio_api/file=']")
            compared.nth(1).wait_for(timeout=30_000)
            assert compared.count() == 2
            assert page.locator(".toast-body").count() == 0, "an error toast appeared"
            page.screenshot(path=str(ARTIFACTS / "space_translate.png"), full_page=True)

            page.get_by_role("tab", name="Draw a facade").click()
            canvas = page.locator("#canvas canvas").first
            canvas.wait_for(timeout=30_000)
            box = canvas.bounding_box()
            x, y = box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.3
            page.mouse.move(x, y)
            page.mouse.down()
            for step in range(20):
                page.mouse.move(x + step * 6, y + step * 3)
            page.mouse.up()
            page.get_by_role("button", name="Translate drawing").click()
            assert output_image(page, "drawn-output").size == (256, 256)
            page.screenshot(path=str(ARTIFACTS / "space_draw.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "space_translate.png").stat().st_size > 10_000


def changed_output(page, elem_id: str, before: str, timeout_ms: int = 60_000) -> tuple[str, Image.Image]:
    """Wait until ``elem_id`` shows a served image other than ``before`` (a src); return its src and the image."""
    selector = f"#{elem_id} img[src*='gradio_api/file=']"
    page.wait_for_function(
        "([selector, before]) => { const image = document.querySelector(selector); "
        "return image !== null && image.getAttribute('src') !== before; }",
        arg=[selector, before],
        timeout=timeout_ms,
    )
    src = page.locator(selector).first.get_attribute("src")
    with urllib.request.urlopen(src) as response:
        return src, Image.open(BytesIO(response.read())).convert("RGB")


def test_spade_style_control_in_chromium(tmp_path):
    """A SPADE model with a style encoder: paint, translate, "Another style" (a new seed, shown) changes the output,
    and so does an uploaded style photo."""
    import numpy as np
    import torch

    from pix2pix_hub import ModelInfo
    from pix2pix_hub.models import SPADEGenerator

    torch.manual_seed(0)
    generator = SPADEGenerator(in_channels=4, ngf=4, use_vae=True, z_dim=8, spade_hidden=8).eval()
    with torch.no_grad():  # a tiny random model: make the style code matter visibly
        generator.fc.weight.mul_(50)
        generator.encoder.fc_mu.weight.mul_(50)
    Pix2Pix(generator, info=ModelInfo(label_nc=4)).save_pretrained(tmp_path / "spade")
    style = tmp_path / "style.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (96, 128, 3), np.uint8)).save(style)
    ARTIFACTS.mkdir(exist_ok=True)

    with running_app({"MODEL_ID": str(tmp_path / "spade")}) as url, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("tab", name="Paint classes").wait_for(timeout=60_000)
            page.get_by_role("tab", name="Paint classes").click()
            canvas = page.locator("#canvas canvas").first
            canvas.wait_for(timeout=30_000)
            box = canvas.bounding_box()
            x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
            page.mouse.move(x, y)
            page.mouse.down()
            for step in range(15):
                page.mouse.move(x + step * 6, y + step * 4)
            page.mouse.up()
            page.get_by_role("button", name="Translate drawing").click()
            src, zero = changed_output(page, "drawn-output", "")
            assert zero.size == (256, 256)
            assert (
                page.locator("#style-seed textarea, #style-seed input").first.input_value() == ""
            )  # no seed yet: the zero code

            page.get_by_role("button", name="Another style").click()
            src, seeded = changed_output(page, "drawn-output", src)
            shown = page.locator("#style-seed textarea, #style-seed input").first.input_value()
            assert shown.isdigit()
            assert np.abs(np.asarray(seeded, np.int16) - np.asarray(zero, np.int16)).max() > 8

            page.locator("#style-photo input[type=file]").set_input_files(str(style))
            src, styled = changed_output(page, "drawn-output", src)
            assert page.locator("#style-seed textarea, #style-seed input").first.input_value() == ""  # the photo's
            assert np.abs(np.asarray(styled, np.int16) - np.asarray(seeded, np.int16)).max() > 8
            assert page.locator(".toast-body").count() == 0, "an error toast appeared"
            page.screenshot(path=str(ARTIFACTS / "space_spade_styles.png"), full_page=True)
        finally:
            browser.close()
