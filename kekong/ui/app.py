"""The web UI: Gradio Blocks mounted at /ui, calling the same services as the HTTP API.

Generate (prompt, sampler, size, control units with detector previews, img2img / inpaint with a
drawn mask), watch step previews, browse results with their parameters and provenance, send any
image to a control unit, and pose people in the pose editor.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from kekong.errors import KekongError
from kekong.ui import pose_editor
from kekong.ui.widgets import Widgets

UNITS = 3


def data_uri(image: np.ndarray) -> str:
    from kekong.io import encode_image

    return "data:image/png;base64," + base64.b64encode(encode_image(image.astype(np.uint8), "PNG")).decode()


def upscaler_names() -> list[str]:
    from kekong.generation.hires import UPSCALERS
    from kekong.models import esrgan

    return [*UPSCALERS, *esrgan.available()]


def enlarged(preview: np.ndarray, side: int = 256) -> np.ndarray:
    """A latent-size step preview blown up with nearest-neighbour, so it can be seen."""
    factor = max(1, side // max(preview.shape[:2]))
    return np.kron(preview, np.ones((factor, factor, 1), np.uint8))


def checkpoint_titles() -> list[str]:
    from kekong.models.catalog import base_models

    return [m["title"] for m in base_models()]


def default_checkpoint() -> str | None:
    """The shipped model's title (what a request without `model` runs)."""
    from kekong.models.catalog import base_models
    from kekong.models.refs import DEFAULT_BASE

    titles = [m["title"] for m in base_models() if m["model_name"] == DEFAULT_BASE]
    return titles[0] if titles else None


def vae_names() -> list[str]:
    from kekong.models.catalog import display_name
    from kekong.models.refs import list_local

    return ["Automatic", *[display_name(path) for path in list_local("vae")]]


def recommended_cfg(title: str | None, widgets: Widgets) -> float:
    """The picked model's recommended CFG, else the declared default."""
    from kekong.generation.defaults import model_defaults

    name = title.rsplit(" [", 1)[0] if title else None
    return model_defaults(name).get("cfg_scale", widgets.field("cfg_scale").default)


def without_paths(text: str, verdict: Any) -> str:
    """The provenance lines with the server's file paths reduced to file names (they mean nothing to,
    and should not be shown to, whoever uses the UI)."""
    paths = [verdict.file, ((verdict.watermark or {}).get("made_here") or {}).get("path")]
    for path in filter(None, paths):
        text = text.replace(str(path), Path(str(path)).name)
    return text


def mask_from_editor(value: Any) -> np.ndarray | None:
    """A drawn mask (white = repaint) from the image editor's layers; None when nothing is drawn."""
    if not value or not value.get("layers"):
        return None
    alpha = np.zeros(np.asarray(value["layers"][0]).shape[:2], np.uint8)
    for layer in value["layers"]:
        layer = np.asarray(layer)
        if layer.ndim == 3 and layer.shape[2] == 4:
            alpha = np.maximum(alpha, layer[:, :, 3])
    if not alpha.any():
        return None
    return np.repeat(np.where(alpha > 0, 255, 0).astype(np.uint8)[:, :, None], 3, axis=2)


class UI:
    """The Blocks app; `services` is looked up per call (the server starts them at lifespan)."""

    def __init__(self, fastapi_app: Any, limits: Any = None) -> None:
        self.app = fastapi_app
        self.widgets = Widgets(limits)  # every slider and choice list from the declaration, narrowed by limits

    @property
    def services(self) -> Any:
        return self.app.state.services

    # -- handlers ---------------------------------------------------------------------------
    def detect(self, image: np.ndarray | None, module: str, res: int) -> np.ndarray:
        import gradio as gr

        if image is None:
            raise gr.Error("upload an image to this unit first")
        if module == "none":
            return image
        try:
            detected, _ = self.services.detect(module, image, int(res))
        except KekongError as error:
            raise gr.Error(str(error)) from None
        return detected

    def detect_pose(self, image: np.ndarray | None) -> str:
        import gradio as gr

        if image is None:
            raise gr.Error("upload a photo to unit 1 (or load an image here) first")
        try:
            from kekong.detect import run

            result = run("openpose", image)
        except KekongError as error:
            raise gr.Error(str(error)) from None
        return json.dumps(result.data)

    def fields(self, prompt: str, negative: str, sampler: str, steps: float, cfg: float, seed: float, width: float,
               height: float, batch: float, init: Any, strength: float, units: list[Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {"prompt": prompt, "negative_prompt": negative, "sampler": sampler,
                                  "steps": int(steps), "cfg_scale": float(cfg), "seed": int(seed),
                                  "width": int(width), "height": int(height), "batch_size": int(batch)}
        if init and init.get("background") is not None:
            background = np.asarray(init["background"])[:, :, :3]
            fields["init_image"] = data_uri(background)
            fields["denoising_strength"] = float(strength)
            mask = mask_from_editor(init)
            if mask is not None:
                fields["mask"] = data_uri(mask)
        controls = []
        for enabled, image, module, model, weight, start, end, mode, resize, res, region, *perfect in units:
            if not enabled or image is None:
                continue
            unit = {"module": module, "image": data_uri(image), "weight": weight, "start": start, "end": end,
                    "mode": mode, "resize_mode": resize, "res": int(res)}
            if perfect and perfect[0]:
                unit["pixel_perfect"] = True
            if model and model != "Automatic":
                unit["model"] = model.rsplit(" [", 1)[0]
            if region is not None:
                unit["mask"] = data_uri(region)
            controls.append(unit)
        fields["controls"] = controls
        return fields

    @staticmethod
    def base(model: str | None, vae: str | None, scheduler: str, batch_count: float) -> dict[str, Any]:
        """Checkpoint, VAE, schedule type and batch count. The shipped model and the model's own VAE
        are left to the request's defaults, so an unchanged UI sends what it sent before."""
        from kekong.models.refs import DEFAULT_BASE

        fields: dict[str, Any] = {"scheduler": scheduler, "batch_count": int(batch_count)}
        name = model.rsplit(" [", 1)[0] if model else None
        if name and name != DEFAULT_BASE:
            fields["model"] = name
        if vae and vae != "Automatic":
            fields["vae"] = vae
        return fields

    @staticmethod
    def extras(enable_hr: bool, hr_scale: float, hr_upscaler: str, hr_steps: float, hr_strength: float,
               refiner: str, refiner_switch_at: float) -> dict[str, Any]:
        """Hires fix and refiner settings, only when switched on (the request's defaults otherwise)."""
        fields: dict[str, Any] = {}
        if enable_hr:
            fields.update(enable_hr=True, hr_scale=float(hr_scale), hr_upscaler=hr_upscaler,
                          hr_second_pass_steps=int(hr_steps), denoising_strength=float(hr_strength))
        if refiner and refiner != "None":
            fields.update(refiner=refiner.rsplit(" [", 1)[0], refiner_switch_at=float(refiner_switch_at))
        return fields

    def generate(self, *inputs: Any):
        """Queue the job, then stream step previews until it is done; yields (preview, status, gallery)."""
        import gradio as gr

        per_unit = 12
        fixed, units = inputs[:11], [inputs[11 + i * per_unit: 11 + (i + 1) * per_unit] for i in range(UNITS)]
        rest = inputs[11 + UNITS * per_unit:]
        try:
            fields = {**self.fields(*fixed, units), **self.extras(*rest[:7]), **self.base(*rest[7:])}
            job, _ = self.services.submit(fields, "ui")
        except KekongError as error:
            raise gr.Error(str(error)) from None
        event = self.services.worker.finished_event(job.id)
        while not event.wait(0.3):
            running = self.services.worker.running
            preview = self.services.preview(job.id)
            if preview is not None and running is not None:
                yield enlarged(preview), f"step {running.step} / {running.total}", gr.skip()
            else:
                yield gr.skip(), "queued", gr.skip()
        job = self.services.store.get(job.id)
        if job.status != "done":
            raise gr.Error(f"{job.status}: {job.error}")
        gallery = [(str(self.services.file(job, item["file"])), f"seed {item['seed']}")
                   for item in job.result["images"]]
        self.last_job = job
        yield gr.skip(), f"done: job {job.id}", gallery

    def describe(self, gallery: list, evt: Any) -> str:
        """Parameters and the provenance check of the picked image."""
        from kekong.provenance.verify import describe, verify

        path = gallery[evt.index][0] if gallery else None
        if isinstance(path, dict):
            path = path.get("path") or path.get("image", {}).get("path")
        if not path:
            return ""
        verdict = verify(path)
        parameters = (verdict.metadata or {}).get("parameters") or ""
        return f"{parameters}\n\n— provenance —\n{without_paths(describe(verdict), verdict)}"

    def send_to_unit(self, gallery: list, selected: Any) -> np.ndarray:
        import gradio as gr

        from kekong.io import load_image

        if not gallery:
            raise gr.Error("generate an image first")
        index = int(selected or 0)
        item = gallery[min(index, len(gallery) - 1)][0]
        path = item.get("path") if isinstance(item, dict) else item
        return load_image(path)

    # -- layout -----------------------------------------------------------------------------
    def blocks(self) -> Any:
        import gradio as gr

        from kekong.detect import list_detectors
        from kekong.generation.defaults import model_defaults
        from kekong.models.catalog import base_models, controlnet_models
        from kekong.models.ip_adapter import MODULES as IP_MODULES
        from kekong.request import ControlUnit

        modules = ["none", *[d.name for d in list_detectors()], *IP_MODULES]
        models = ["Automatic", *controlnet_models()]
        w = self.widgets
        with gr.Blocks(title="kekong") as demo:
            gr.Markdown("## kekong — controllable image generation")
            with gr.Tab("Generate"):
                with gr.Row():
                    checkpoint = gr.Dropdown(checkpoint_titles(), value=default_checkpoint(),
                                             label="Stable Diffusion checkpoint", elem_id="checkpoint")
                    vae = gr.Dropdown(vae_names(), value="Automatic", label="SD VAE", elem_id="vae")
                    refresh = gr.Button("🔄 Refresh models", scale=0)
                with gr.Row():
                    prompt = gr.Textbox(label="Prompt", lines=2, elem_id="prompt", scale=3)
                    negative = gr.Textbox(label="Negative prompt", lines=2, scale=2)
                with gr.Row():
                    sampler = w.choice(gr, "Dropdown", "sampler", "Sampler")
                    steps = w.slider(gr, "steps", "Steps", 1, elem_id="steps")
                    cfg = w.slider(gr, "cfg_scale", "CFG scale", 0.5,  # the default model's recommendation
                                   value=model_defaults(None).get("cfg_scale"))
                    scheduler = w.choice(gr, "Dropdown", "scheduler", "Schedule type")
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)")
                with gr.Row():
                    native = 64  # the default (shipped) model's native size
                    width = w.slider(gr, "width", "Width", 8, value=native, elem_id="width")
                    height = w.slider(gr, "height", "Height", 8, value=native, elem_id="height")
                    batch = w.slider(gr, "batch_size", "Batch size", 1)
                    batch_count = w.slider(gr, "batch_count", "Batch count", 1)
                with gr.Accordion("img2img / inpaint (draw the mask on the image)", open=False):
                    init = gr.ImageEditor(label="Init image", type="numpy", brush=gr.Brush(colors=["#ffffff"]))
                    strength = w.slider(gr, "denoising_strength", "Denoising strength", 0.01)
                with gr.Accordion("Hires fix and refiner", open=False):
                    with gr.Row():
                        enable_hr = gr.Checkbox(value=False, label="Hires fix")
                        hr_scale = w.slider(gr, "hr_scale", "Upscale by", 0.05)
                        hr_upscaler = gr.Dropdown(upscaler_names(), value="Latent", label="Upscaler")
                        hr_steps = w.slider(gr, "hr_second_pass_steps", "Hires steps (0 = same)", 1)
                        hr_strength = w.slider(gr, "denoising_strength", "Hires denoising strength", 0.01,
                                               value=0.7)  # A1111's hires default
                    with gr.Row():
                        refiner = gr.Dropdown(["None", *[m["title"] for m in base_models()]], value="None",
                                              label="Refiner")
                        switch_at = w.slider(gr, "refiner_switch_at", "Refiner switch at", 0.01)
                extras = [enable_hr, hr_scale, hr_upscaler, hr_steps, hr_strength, refiner, switch_at]
                unit_inputs, unit_images, unit_modules = [], [], []
                with gr.Tabs():
                    for index in range(UNITS):
                        with gr.Tab(f"Control unit {index + 1}"):
                            with gr.Row():
                                enabled = gr.Checkbox(value=index == 0, label="Enabled")
                                module = gr.Dropdown(modules, value="none", label="Detector",
                                                     elem_id=f"unit{index}-module")
                                model = gr.Dropdown(models, value="Automatic", label="Model")
                            with gr.Row():
                                image = gr.Image(label="Control image", type="numpy", elem_id=f"unit{index}-image")
                                detected = gr.Image(label="Detected map", type="numpy", interactive=False,
                                                    elem_id=f"unit{index}-map")
                                region = gr.Image(label="Region mask (optional)", type="numpy")
                            with gr.Row():
                                weight = w.slider(gr, "weight", "Weight", 0.05, ControlUnit)
                                start = w.slider(gr, "start", "Start", 0.01, ControlUnit)
                                end = w.slider(gr, "end", "End", 0.01, ControlUnit)
                                res = w.slider(gr, "res", "Processor resolution", 8, ControlUnit)
                            with gr.Row():
                                mode = w.choice(gr, "Radio", "mode", "Control mode", ControlUnit)
                                resize = w.choice(gr, "Radio", "resize_mode", "Resize mode", ControlUnit)
                                perfect = gr.Checkbox(value=bool(w.field("pixel_perfect", ControlUnit).default),
                                                      label="Pixel Perfect")
                            preview = gr.Button("Preview detected map", elem_id=f"unit{index}-preview")
                            preview.click(self.detect, [image, module, res], detected)
                            unit_inputs += [enabled, image, module, model, weight, start, end, mode, resize, res,
                                            region, perfect]
                            unit_images.append(image)
                            unit_modules.append(module)
                with gr.Row():
                    go = gr.Button("Generate", variant="primary", elem_id="generate")
                    stop = gr.Button("Interrupt")
                status = gr.Textbox(label="Progress", interactive=False, elem_id="status")
                with gr.Row():
                    step_preview = gr.Image(label="Step preview", interactive=False, height=256)
                    gallery = gr.Gallery(label="Results", columns=4, elem_id="gallery", type="filepath",
                                         interactive=False)  # an output: nothing to drop here
                details = gr.Textbox(label="Parameters and provenance", lines=8, interactive=False,
                                     elem_id="details")
                selected = gr.Number(value=0, visible=False)
                with gr.Row():
                    sends = [gr.Button(f"Send to control unit {i + 1}") for i in range(UNITS)]
                go.click(self.generate, [prompt, negative, sampler, steps, cfg, seed, width, height, batch, init,
                                         strength, *unit_inputs, *extras, checkpoint, vae, scheduler,
                                         batch_count], [step_preview, status, gallery])
                # picking a model shows its recommended settings (declared defaults where it has none)
                checkpoint.change(lambda title: recommended_cfg(title, w), checkpoint, cfg)
                refresh.click(lambda: (gr.update(choices=checkpoint_titles()), gr.update(choices=vae_names())),
                              None, [checkpoint, vae])
                stop.click(lambda: self.services.worker.interrupt() and None, None, None)

                def picked(gallery_value: list, evt: gr.SelectData) -> tuple[str, int]:
                    return self.describe(gallery_value, evt), evt.index

                picked.__annotations__["evt"] = gr.SelectData  # Gradio finds the event argument by its type
                gallery.select(picked, gallery, [details, selected])
                for send, target in zip(sends, unit_images, strict=True):
                    send.click(self.send_to_unit, [gallery, selected], target)
            with gr.Tab("Pose editor"):
                with gr.Row():
                    editor = pose_editor.component(gr)
                    with gr.Column():
                        pose_source = gr.Image(label="Photo to read a pose from", type="numpy",
                                               elem_id="pose-photo")
                        detect_pose = gr.Button("Detect pose", elem_id="detect-pose")
                        with gr.Row():
                            add = gr.Button("Add person", elem_id="add-person")
                            remove = gr.Button("Remove person")
                        pose_file = gr.File(label="Import OpenPose JSON", file_types=[".json"])
                        pose_json = gr.Code(label="OpenPose JSON (export)", language="json", elem_id="pose-json",
                                            value=pose_editor.empty_pose())
                        pose_to = [gr.Button(f"Send pose to control unit {i + 1}", elem_id=f"pose-to-unit{i}")
                                   for i in range(UNITS)]
                detect_pose.click(self.detect_pose, pose_source, editor)
                add.click(pose_editor.add_person, editor, editor)
                remove.click(pose_editor.remove_person, editor, editor)
                editor.change(lambda value: value, editor, pose_json)

                def imported(file: Any) -> str:
                    if file is None:
                        return gr.skip()
                    path = file if isinstance(file, str) else file.name
                    try:
                        with open(path, encoding="utf-8") as stream:
                            return json.dumps(pose_editor.parse(stream.read()))
                    except KekongError as error:
                        raise gr.Error(str(error)) from None

                pose_file.upload(imported, pose_file, editor)
                for button, image, module in zip(pose_to, unit_images, unit_modules, strict=True):
                    button.click(lambda value: (pose_editor.render(value), "none"), editor, [image, module])
            with gr.Tab("Verify"):
                to_check = gr.File(label="Image to check (PNG, JPEG, WebP)")
                verdict = gr.Code(label="Provenance", language="json")

                def check(file: Any) -> str:
                    from kekong.provenance.verify import verify

                    if file is None:
                        return ""
                    path = file if isinstance(file, str) else file.name
                    return json.dumps(verify(path).as_json(), indent=1, default=str)

                to_check.upload(check, to_check, verdict)
        return demo


def mount_ui(app: Any, store_dir: Path) -> None:
    """Mount the UI at /ui; generated images are served from the job store at `store_dir`.

    The server passes what the UI needs (it mounts the UI, so the UI never imports the server)."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    ui = UI(app, getattr(app.state, "limits", None))
    gr.mount_gradio_app(app, ui.blocks(), path="/ui", allowed_paths=[str(store_dir)], ssr_mode=False,
                        footer_links=[])
