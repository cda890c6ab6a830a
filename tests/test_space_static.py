"""The static Space (``space build --static``) in a real browser: Debian's chromium, driven by Playwright, loads the
page and the model from 127.0.0.1, translates a real facades label map, and its pixels are compared with
``Pix2Pix``'s for the same file (fp32: within 2 levels; int8: within the file's own PSNR gate); a second visit
takes the model from the browser's cache; each error message appears where it should.

The server sends the cross-origin isolation headers the Space's front matter asks the Hub for (``custom_headers``),
so the page runs onnxruntime-web's threads as on the Hub. Screenshots go to ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import base64
import collections
import functools
import http.server
import io
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_hub import ModelInfo, Pix2Pix
from pix2pix_hub.hub.static_space import CONFIG_FILE, ISOLATION_HEADERS, build_static_space
from pix2pix_hub.images.labels import label_palette
from pix2pix_hub.images.metrics import psnr_per_image
from pix2pix_hub.images.palettes import FACADES
from pix2pix_hub.inference.quantize import int8_report
from pix2pix_hub.models import UNetGenerator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "spaces_app"))
from local_server import BROWSER_ARGS, CHROMIUM  # noqa: E402

FACADES_TRAIN = ROOT.parent / "shared" / "data" / "facades" / "train"
ARTIFACTS = ROOT / "test-artifacts"
MODEL_ID = "someone/facades-tiny"
# WebGPU without a GPU: Chromium's SwiftShader implements Vulkan on the CPU, and WebGPU runs on it.
WEBGPU_ARGS = [
    "--no-sandbox",
    "--enable-unsafe-webgpu",
    "--enable-features=Vulkan",
    "--use-vulkan=swiftshader",
    "--use-webgpu-adapter=swiftshader",
    "--enable-unsafe-swiftshader",
]
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: apt-get install -y chromium chromium-driver"
    ),
    pytest.mark.skipif(not FACADES_TRAIN.is_dir(), reason=f"{FACADES_TRAIN} not found"),
]
playwright_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("onnxruntime")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_quantize import train_tiny_translator  # noqa: E402


def label_crop(index: int, box: tuple[int, int, int, int]) -> Image.Image:
    """A window of the colour label map (the right half) of the facades file ``index``."""
    image = Image.open(FACADES_TRAIN / f"{index}.jpg").convert("RGB")
    left, top, right, bottom = box
    return image.crop((256 + left, top, 256 + right, bottom))


class Site:
    """A threaded HTTP server on 127.0.0.1 for a folder, sending the Space's isolation headers and counting
    requests per path."""

    def __init__(self, folder: Path) -> None:
        self.requests: collections.Counter[str] = collections.Counter()
        counter = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def end_headers(self) -> None:
                for name, value in ISOLATION_HEADERS.items():
                    self.send_header(name, value)
                super().end_headers()

            def do_GET(self) -> None:
                counter[self.path.split("?")[0]] += 1
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        handler = functools.partial(Handler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[Site, Path]]:
    """The tiny trained translator saved with model.onnx and a gated model.int8.onnx (calibrated on facade label
    crops) under ``model/``, and the static Space built for it under ``space/``, served."""
    root = tmp_path_factory.mktemp("static")
    calibration = root / "calibration"
    calibration.mkdir()
    for index in range(12):
        label_crop(index + 20, (16, 16, 80, 80)).save(calibration / f"{index}.png")
    pix2pix = Pix2Pix(train_tiny_translator().eval(), info=ModelInfo.for_training("facades", "BtoA", 256))
    pix2pix.quantize(calibration, path=root / "int8.onnx", num_calibration=12)
    model = pix2pix.save_pretrained(root / "site" / "model")
    served = Site(root / "site")
    try:
        build_static_space(root / "site" / "space", MODEL_ID, model_dir=model, model_base=f"{served.url}/model")
        yield served, model
    finally:
        served.server.shutdown()


@pytest.fixture(scope="module")
def playwright():
    with playwright_api.sync_playwright() as p:  # one per thread: every browser here comes from it
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
    try:
        yield launched
    finally:
        launched.close()


def open_page(context, url: str):
    """A new page at ``url``, once the page is ready or has reported an error."""
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("window.pix2pixState && (window.pix2pixState.ready || window.pix2pixState.error)")
    return page


def state(page) -> dict:
    return page.evaluate("() => ({...window.pix2pixState})")


def translate_upload(page, path: Path) -> np.ndarray:
    """Upload ``path``, wait for the translation, return the page's output pixels (H, W, 3) uint8."""
    runs = state(page)["runs"]
    page.set_input_files("#upload", str(path))
    return translated(page, runs)


def translated(page, runs: int) -> np.ndarray:
    """The output pixels once the page has made more than ``runs`` translations."""
    page.wait_for_function(f"window.pix2pixState.runs > {runs} || window.pix2pixState.error")
    assert "error" not in state(page), state(page)["error"]
    return canvas_pixels(page, "output-canvas")


def canvas_pixels(page, element_id: str) -> np.ndarray:
    """A canvas's pixels (H, W, 3) uint8, read back as PNG (opaque pixels: exact)."""
    data = page.evaluate(f"document.getElementById('{element_id}').toDataURL('image/png')")
    png = Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1])))
    return np.asarray(png.convert("RGB"))


def paint_and_translate(page) -> tuple[np.ndarray, np.ndarray]:
    """Paint a stroke of the second class on the painter, translate it; the drawing and the output pixels."""
    page.get_by_role("button", name="Paint", exact=True).click()
    box = page.locator("#paint").bounding_box()
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(20):
        page.mouse.move(x + step * 8, y + step * 4)
    page.mouse.up()
    drawing = canvas_pixels(page, "paint")
    runs = state(page)["runs"]
    page.click("#translate-drawing")
    return drawing, translated(page, runs)


def message(page) -> str:
    page.locator("#message").wait_for(state="visible")
    return page.locator("#message").inner_text()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two uint8 images on the [-1, 1] scale the quantization gate measures on."""
    as_model = [torch.from_numpy(np.array(x)).permute(2, 0, 1)[None].float() / 127.5 - 1 for x in (a, b)]
    return float(psnr_per_image(*as_model)[0])


def test_the_page_translates_as_pix2pix_and_keeps_the_model_cached(site, browser, tmp_path):
    served, model = site
    upload = tmp_path / "labels.png"
    label_crop(1, (3, 5, 249, 250)).save(upload)  # 246 x 245: padded (reflect) to 256 x 256 and cropped back
    small = tmp_path / "small.png"
    label_crop(2, (100, 100, 120, 112)).save(small)  # 20 x 12: too small to reflect, edge-padded
    reference = Pix2Pix.from_pretrained(model, precision="fp32")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = open_page(context, f"{served.url}/space/index.html?graph=fp32")
        assert state(page)["ready"] and not state(page)["fromCache"]
        assert page.locator("#direction").inner_text() == "BtoA: CMP facade labels → photo"
        for path in (upload, small):
            expected = np.asarray(reference(Image.open(path)))
            actual = translate_upload(page, path)
            assert actual.shape == expected.shape
            assert np.abs(actual.astype(int) - expected).max() <= 2, path.name
        drawing, actual = paint_and_translate(page)
        colors = {tuple(c) for c in drawing.reshape(-1, 3)}
        assert colors == {tuple(FACADES.colors[k]) for k in (0, 1)}  # wall, and the window stroke: no blends
        assert np.abs(actual.astype(int) - np.asarray(reference(Image.fromarray(drawing)))).max() <= 2
        with page.expect_download() as download:
            page.click("#download")
        assert np.array_equal(np.asarray(Image.open(download.value.path()).convert("RGB")), actual)
        page.locator("#slider").fill("20")  # before/after: the input shows on the left fifth
        assert page.locator("#input-canvas").evaluate("e => e.style.clipPath") == "inset(0px 80% 0px 0px)"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "static_space.png"))

        again = open_page(context, f"{served.url}/space/index.html?graph=fp32")
        assert state(again)["ready"] and state(again)["fromCache"]
        assert served.requests["/model/model.onnx"] == 1  # the second visit downloaded nothing

        page = open_page(context, f"{served.url}/space/index.html")  # the default: the int8 file past its gate
        assert state(page)["graph"] == "int8"
        gate = int8_report(model / "model.int8.onnx")["min_psnr_db"]
        assert psnr(translate_upload(page, upload), np.asarray(reference(Image.open(upload)))) >= gate
        assert served.requests["/model/model.int8.onnx"] == 1
    finally:
        context.close()


def test_the_page_says_what_is_wrong(site, browser, tmp_path):
    served, _ = site
    url = f"{served.url}/space/index.html?graph=fp32"
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    huge = tmp_path / "huge.png"
    Image.new("L", (4097, 4096)).save(huge)  # one column over DEFAULT_MAX_PIXELS

    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = open_page(context, url)
        page.set_input_files("#upload", str(text))
        assert "notes.png is not an image this browser can read" in message(page)
        page.set_input_files("#upload", str(huge))
        assert "4097×4096 = 16781312 pixels, above this page's limit of 16777216" in message(page)
        assert state(page)["runs"] == 0
    finally:
        context.close()

    context = browser.new_context()  # a new profile: nothing cached
    context.set_default_timeout(TIMEOUT_MS)
    try:
        context.route("**/model.onnx", lambda route: route.fulfill(status=404, body="gone"))
        page = open_page(context, url)
        assert "The model download failed" in message(page) and "HTTP 404" in message(page)
        assert not state(page)["ready"]
    finally:
        context.close()

    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    downloads = served.requests["/model/model.onnx"]
    try:
        context.add_init_script("WebAssembly.validate = () => false;")  # as a browser without SIMD answers
        page = open_page(context, url)
        assert "This browser has no WebAssembly SIMD" in message(page)
        assert served.requests["/model/model.onnx"] == downloads  # nothing downloaded that could not run
    finally:
        context.close()


def test_a_label_map_model_takes_class_indices_and_its_boundaries(site, browser, tmp_path):
    served, model = site
    torch.manual_seed(0)
    info = ModelInfo(direction="AtoB", input="labels", output="photo", label_nc=5, instance=True)
    generator = UNetGenerator(num_downs=5, ngf=8, in_channels=6).eval()  # 5 classes + the boundary channel
    labels = Pix2Pix(generator, info=info).save_pretrained(model.parent / "labels-model")
    build_static_space(
        model.parent / "labels-space", "someone/labels", model_dir=labels, model_base=f"{served.url}/labels-model"
    )
    rng = np.random.default_rng(0)
    indices = np.kron(rng.integers(0, 5, size=(5, 7)), np.ones((9, 7), dtype=np.int64)).astype(np.uint8)  # 45 x 49
    upload = tmp_path / "classes.png"
    Image.fromarray(indices, mode="L").save(upload)
    expected = np.asarray(Pix2Pix.from_pretrained(labels, precision="fp32")(Image.open(upload)))
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = open_page(context, f"{served.url}/labels-space/index.html")
        assert page.locator("#input-kind").inner_text() == "a class-index map, 5 classes, with instance boundaries"
        actual = translate_upload(page, upload)
        assert np.abs(actual.astype(int) - expected).max() <= 2
        colours = tmp_path / "colours.png"
        Image.fromarray(label_palette(5)[indices]).save(colours)  # the same map in its class colours
        assert np.array_equal(translate_upload(page, colours), actual)
    finally:
        context.close()


def test_webgpu_where_the_browser_has_an_adapter(site, playwright, tmp_path):
    """The WebGPU build on SwiftShader (Chromium's Vulkan on the CPU): the same page, the same pixels."""
    served, model = site
    upload = tmp_path / "labels.png"
    label_crop(3, (60, 40, 100, 68)).save(upload)  # 40 x 28, padded to 64 x 32
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=WEBGPU_ARGS)
    try:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{served.url}/space/index.html?graph=fp32")
        page.wait_for_function("window.pix2pixState && (window.pix2pixState.ready || window.pix2pixState.error)")
        engine = state(page).get("engine")
        if engine != "WebGPU":
            pytest.skip(f"this chromium offers no WebGPU adapter on SwiftShader (the page ran on {engine})")
        actual = translate_upload(page, upload)
    finally:
        browser.close()
    expected = np.asarray(Pix2Pix.from_pretrained(model, precision="fp32")(Image.open(upload)))
    assert np.abs(actual.astype(int) - expected).max() <= 2


def test_space_json_holds_the_models_facts(site):
    served, model = site
    config = json.loads((model.parent / "space" / CONFIG_FILE).read_text())
    assert config["graphs"]["int8"]["bytes"] == (model / "model.int8.onnx").stat().st_size
    assert config["graphs"]["fp32"]["bytes"] == (model / "model.onnx").stat().st_size
    assert config["default_graph"] == "int8" and config["model_base"] == f"{served.url}/model"
