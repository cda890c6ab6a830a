"""pix2pix Space: translate an uploaded image, or paint a facade label map and see the photo.

For a label-map model (pix2pixHD: ``info.label_nc`` classes) the upload tab takes a class-index PNG and the drawing
tab paints classes in their ``label_palette`` colours, read back as class indices before translating.

Run locally: ``MODEL_ID=path/to/folder python spaces_app/app.py`` (serves on 127.0.0.1:7860; ``GRADIO_SERVER_NAME``
and ``GRADIO_SERVER_PORT`` change that). Settings are environment variables, see ``model_service.Settings``.
The API endpoints are ``/translate`` (image file -> PNG of the same size) and ``/translate_drawing``.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from pix2pix_hub.fileio import save_image
from pix2pix_hub.performance import tune_allocator_unless_disabled

# The helpers sit next to this file: importable when it is run as a script, and also when it is imported.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from facade_palette import (  # noqa: E402
    FACADE_CLASSES,
    canvas_to_labels,
    class_colors,
    class_legend_html,
    class_map_image,
    draw_class_map,
    draw_facade,
    legend_html,
    snap_to_palette,
    to_hex,
)
from model_service import (  # noqa: E402
    LoadedModel,
    Settings,
    input_preview,
    load_model,
    open_upload,
    output_folder,
    save_png,
    style_choice,
    translate_drawing,
    translate_image,
)

from pix2pix_hub.images.labels import labels_to_image  # noqa: E402

EXAMPLES = [(0, 256, 256), (1, 256, 256), (2, 256, 256), (3, 256, 256), (4, 384, 256)]
CANVAS = (256, 256)
CSS = "#status {padding: 8px 12px; border-radius: 8px; background: var(--block-background-fill);}"


def friendly_decode_errors(image: gr.Image) -> gr.Image:
    """Make ``image``'s upload decoding failures (a text file, a broken file) friendly errors.

    Args:
        image: the upload component. Gradio opens the upload before our function runs and would answer a bare
            "Error"; the instance's ``preprocess`` is wrapped rather than subclassing ``gr.Image`` (a subclass makes
            Gradio write a ``.pyi`` stub next to this file at every start).

    Returns:
        ``image`` itself.
    """
    preprocess = image.preprocess

    def checked_preprocess(payload):  # noqa: ANN001, ANN202 - same signature as gr.Image.preprocess
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001
            name = getattr(payload, "orig_name", None) or "The upload"
            raise gr.Error(
                f"{name} is not an image this app can read. Upload a PNG, JPEG or WebP image.", title="Not an image"
            ) from error

    image.preprocess = checked_preprocess
    return image


def write_examples(folder: Path, label_nc: int = 0) -> list[str]:
    """Draw the examples as PNGs (atomic writes: several app processes may share the folder): facade label maps,
    or for a label-map model class-index maps (palette PNGs: shown in colour, read as indices)."""
    paths = []
    for seed, width, height in EXAMPLES:
        if label_nc:
            image = class_map_image(draw_class_map(seed, width, height, label_nc), label_nc)
            path = folder / f"classes{label_nc}_{seed}_{width}x{height}.png"
        else:
            image, path = (
                Image.fromarray(draw_facade(seed, width, height)),
                folder / f"facade_{seed}_{width}x{height}.png",
            )
        paths.append(str(save_image(image, path, "PNG")))
    return paths


def editor_value(label_map: np.ndarray) -> dict:
    return {"background": label_map, "layers": [], "composite": None}


def blank_wall() -> dict:
    return editor_value(np.broadcast_to(np.array(FACADE_CLASSES["wall"], np.uint8), (*CANVAS, 3)).copy())


def random_facade() -> dict:
    return editor_value(draw_facade(int(np.random.default_rng().integers(1 << 31)), *CANVAS))


def class_canvas(labels: np.ndarray, label_nc: int) -> dict:
    """An editor value showing class indices ``labels`` in their class colours."""
    return editor_value(np.asarray(labels_to_image(labels, label_nc)))


def class_brush(label_nc: int, selected: int) -> gr.Brush:
    """A brush offering exactly the class colours, ``selected`` picked."""
    colours = class_colors(label_nc)
    return gr.Brush(colors=colours, default_color=colours[selected], color_mode="fixed", default_size=10)


def painted_composite(value: dict | None) -> np.ndarray:
    """The canvas as painted, ``(H, W, 3|4)`` uint8; an error when there is nothing on it."""
    composite = None if value is None else value.get("composite")
    if composite is None or np.asarray(composite).size == 0:
        raise gr.Error("Paint a label map first (or press “Random ...”).", title="Empty canvas")
    return np.asarray(composite, dtype=np.uint8)


def build_demo(settings: Settings, model: LoadedModel, examples: list[str]) -> gr.Blocks:
    """The page: a status line, an upload tab and a drawing tab (facades, or classes for a label-map model)."""
    with gr.Blocks(title="pix2pix") as demo:
        gr.Markdown(
            "# pix2pix: image-to-image translation\n"
            "A conditional GAN ([Isola et al., 2017](https://arxiv.org/abs/1611.07004)) served with "
            "pix2pix-hub. Any image size works: the output has the input's size."
        )
        gr.Markdown(model.status, elem_id="status")
        upload_tab(settings, model, examples)
        if model.label_nc:
            class_tab(model, settings)
        else:
            facade_tab(model)
    return demo


def upload_tab(settings: Settings, model: LoadedModel, examples: list[str]) -> None:
    """Upload (or paste) an image, or for a label-map model a class-index PNG; before/after slider."""
    outputs = output_folder()

    def translate(image_path: str | None) -> str:
        """Translate an uploaded image; returns a PNG of the same size."""
        return save_png(translate_image(model, open_upload(image_path, settings.max_pixels)), outputs)

    def compare(image_path: str | None, output_path: str | None) -> tuple[str, str] | None:
        """The slider's pair; the input is re-saved upright as PNG, as the model saw it (browsers show no TIFF)."""
        if image_path is None or output_path is None:
            return None
        return save_png(input_preview(model, open_upload(image_path, settings.max_pixels)), outputs), output_path

    labels = model.label_nc
    with gr.Tab("Translate an image"):
        with gr.Row():
            source = friendly_decode_errors(
                gr.Image(
                    label="Input: a class-index PNG (pixel value k = class k)" if labels else "Input",
                    type="filepath",
                    image_mode=None,  # as uploaded: a class-index map keeps its indices
                    sources=["upload", "clipboard"],
                    height=320,
                )
            )
            result = gr.Image(
                label="Output", type="filepath", format="png", interactive=False, height=320, elem_id="output"
            )
        run = gr.Button("Translate", variant="primary")
        slider = gr.ImageSlider(
            label="Compare: input | output", type="filepath", format="png", max_height=400, elem_id="compare"
        )
        gr.Examples(
            examples=examples,
            inputs=source,
            label=(
                f"Class-index maps drawn by the app ({labels} classes)"
                if labels
                else "Facade label maps drawn by the app (for a labels → photo model)"
            ),
        )
        run.click(translate, source, result, api_name="translate").success(
            compare, [source, result], slider, api_visibility="private"
        )


def facade_tab(model: LoadedModel) -> None:
    """Paint a facade label map in the CMP facade colours and translate it."""
    outputs = output_folder()

    def translate_canvas(value: dict | None) -> tuple[str, tuple[str, str]]:
        """Translate the painted canvas: colours are snapped to the facade palette first."""
        label_map = snap_to_palette(painted_composite(value))
        output = save_png(translate_drawing(model, label_map), outputs)
        return output, (save_png(Image.fromarray(label_map), outputs), output)

    with gr.Tab("Draw a facade"):
        gr.Markdown(
            "Paint a label map with the facade classes (pick a colour in the brush menu) and translate it. "
            "The eraser paints *background*. Colours are snapped to the nearest class before translating."
        )
        gr.HTML(legend_html())
        with gr.Row():
            canvas = drawing_canvas(
                editor_value(draw_facade(0, *CANVAS)),
                gr.Brush(
                    colors=[to_hex(rgb) for rgb in FACADE_CLASSES.values()],
                    default_color=to_hex(FACADE_CLASSES["window"]),
                    color_mode="fixed",
                    default_size=10,
                ),
            )
            drawn_output = drawing_output()
        with gr.Row():
            gr.Button("Random facade").click(random_facade, None, canvas, api_visibility="private")
            gr.Button("Blank wall").click(blank_wall, None, canvas, api_visibility="private")
            draw_run = gr.Button("Translate drawing", variant="primary")
        drawn_slider = gr.ImageSlider(
            label="Compare: label map | output", type="filepath", format="png", max_height=400
        )
        draw_run.click(translate_canvas, canvas, [drawn_output, drawn_slider], api_name="translate_drawing")


def class_tab(model: LoadedModel, settings: Settings) -> None:
    """A label-map model's drawing tab: paint classes (a class picker sets the brush), read back as indices; for a
    SPADE model with a style encoder, a style control beside it (``style_control``)."""
    outputs = output_folder()
    label_nc = model.label_nc

    def translate_canvas(value: dict | None, style_path: str | None = None, seed: str | None = None) -> tuple:
        """Translate the painted canvas: each pixel becomes the class of its nearest class colour; the style is the
        uploaded style photo, else the seed shown, else the zero code."""
        labels = canvas_to_labels(painted_composite(value), label_nc)
        style = style_choice(model, style_path, seed, settings.max_pixels)
        output = save_png(translate_image(model, class_map_image(labels, label_nc), **style), outputs)
        return output, (save_png(labels_to_image(labels, label_nc), outputs), output)

    def random_map() -> dict:
        return class_canvas(draw_class_map(int(np.random.default_rng().integers(1 << 31)), *CANVAS, label_nc), label_nc)

    def pick(selected: int) -> gr.ImageEditor:
        return gr.ImageEditor(brush=class_brush(label_nc, int(selected)))

    with gr.Tab("Paint classes"):
        gr.Markdown(
            f"Paint a class map with the model's {label_nc} classes: pick a class, paint, translate. Each colour "
            "is a class (numbered below); the eraser paints class 0. Colours are read back as the nearest class."
        )
        gr.HTML(class_legend_html(label_nc))
        picker = gr.Dropdown(choices=[(f"class {k}", k) for k in range(label_nc)], value=1 % label_nc, label="Class")
        with gr.Row():
            canvas = drawing_canvas(
                class_canvas(draw_class_map(0, *CANVAS, label_nc), label_nc), class_brush(label_nc, 1 % label_nc)
            )
            drawn_output = drawing_output()
        styles = style_control() if model.style_dim else []
        with gr.Row():
            gr.Button("Random map").click(random_map, None, canvas, api_visibility="private")
            gr.Button("Clear (class 0)").click(
                lambda: class_canvas(np.zeros(CANVAS[::-1], np.int64), label_nc), None, canvas, api_visibility="private"
            )
            draw_run = gr.Button("Translate drawing", variant="primary")
        picker.change(pick, picker, canvas, api_visibility="private")
        drawn_slider = gr.ImageSlider(
            label="Compare: class map | output", type="filepath", format="png", max_height=400
        )
        results = [drawn_output, drawn_slider]
        draw_run.click(translate_canvas, [canvas, *styles[:2]], results, api_name="translate_drawing")
        if styles:
            style_photo, seed, another = styles
            # A new style re-renders the painting at once: a new seed (the photo cleared), or an uploaded photo.
            another.click(new_seed, None, [seed, style_photo], api_visibility="private").then(
                translate_canvas, [canvas, style_photo, seed], results, api_visibility="private"
            )
            style_photo.upload(lambda: "", None, seed, api_visibility="private").then(
                translate_canvas, [canvas, style_photo, seed], results, api_visibility="private"
            )


def style_control() -> list:
    """The style of a SPADE model with a style encoder, side by side: a style photo to upload (its style: the
    encoder's mean), and the seed of a sampled style with an "Another style" button that draws a new one. The
    photo wins while there is one; with neither, the zero code (the average style).

    Returns:
        ``[style photo, seed, another-style button]``.
    """
    gr.Markdown(
        "**Style.** One painting, many photos: upload a style photo (its look is copied), or press *Another "
        "style* for a random one (its seed is shown; the same seed gives the same style). With neither, the "
        "average style is used."
    )
    with gr.Row(equal_height=True):
        style_photo = friendly_decode_errors(
            gr.Image(
                label="Style photo", type="filepath", sources=["upload", "clipboard"], height=200, elem_id="style-photo"
            )
        )
        with gr.Column():
            seed = gr.Textbox(
                label="Style seed (empty: the average style)", value="", interactive=False, elem_id="style-seed"
            )
            another = gr.Button("Another style", elem_id="another-style")
    return [style_photo, seed, another]


def new_seed() -> tuple[str, None]:
    """A new random style seed (as the seed box shows it), and the style photo cleared (the seed is the style now)."""
    return str(int(np.random.default_rng().integers(1 << 31))), None


def drawing_canvas(value: dict, brush: gr.Brush) -> gr.ImageEditor:
    return gr.ImageEditor(
        elem_id="canvas",
        value=value,
        label="Label map",
        type="numpy",
        image_mode="RGBA",
        sources=["upload"],
        brush=brush,
        eraser=gr.Eraser(default_size=16),
        transforms=(),
        layers=False,
        canvas_size=CANVAS,
        fixed_canvas=True,
        format="png",  # the canvas must keep exact palette colours; webp would blur them
        height=420,
    )


def drawing_output() -> gr.Image:
    return gr.Image(
        label="Output", type="filepath", format="png", interactive=False, height=420, elem_id="drawn-output"
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A process-wide setting, so the entry point applies it (PIX2PIX_NO_ALLOCATOR_TUNING=1 leaves it alone).
    tune_allocator_unless_disabled()
    settings = Settings.from_env()
    model = load_model(settings)
    examples_dir = Path(tempfile.gettempdir()) / "pix2pix_space_examples"
    demo = build_demo(settings, model, write_examples(examples_dir, model.label_nc))
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency_limit)
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None,
        max_file_size=settings.max_file_size,
        allowed_paths=[str(examples_dir), str(output_folder())],
        css=CSS,
        footer_links=["api"],
    )


if __name__ == "__main__":
    main()
