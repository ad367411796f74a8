"""The web UI: Gradio Blocks mounted at /ui, calling the same services as the HTTP API.

Generate (prompt, sampler, size, control units with detector previews, img2img / inpaint with a
drawn mask), watch step previews, browse results with their parameters and provenance, send any
image to a control unit, and pose people in the pose editor.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kekong.choices import MAX_UNITS
from kekong.errors import KekongError
from kekong.ui import grid_panel, networks, pnginfo, pose_editor
from kekong.ui import units as unit_panels
from kekong.ui.gallery import caption, gallery_path
from kekong.ui.widgets import Widgets


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
        self.slot_counts = unit_panels.slot_counts()  # detector parameter slots per unit

    @property
    def services(self) -> Any:
        return self.app.state.services

    # -- handlers ---------------------------------------------------------------------------
    def detect(self, image: np.ndarray | None, module: str, res: int, *slots: Any) -> np.ndarray:
        """The unit's map with its detector parameters as set in the unit's slots."""
        import gradio as gr

        if image is None:
            raise gr.Error("upload an image to this unit first")
        if module == "none":
            return image
        try:
            params = unit_panels.unit_params(module, list(slots), self.slot_counts)
            detected, _ = self.services.detect(module, image, int(res), params)
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

    @staticmethod
    def repose_spec(photo: np.ndarray | None, pose: str, original: str | None) -> dict[str, Any]:
        """The re-pose of the pose tab: its photo, the editor's pose, and the pose detected on the photo
        (None when the pose was imported or drawn: then it is detected on the photo when the warp runs)."""
        import gradio as gr

        if photo is None:
            raise gr.Error("load the photo to re-pose first (Photo to read a pose from)")
        edited = pose_editor.parse(pose)
        if not edited["people"]:
            raise gr.Error("the pose editor holds nobody: detect the photo's pose first")
        source = pose_editor.parse(original) if original else None
        if source is not None and len(source["people"]) != len(edited["people"]):
            source = None  # people added or removed since the detection: detect again on the photo
        return {"image": data_uri(np.asarray(photo)[:, :, :3]), "pose": edited, "source_pose": source}

    def warp_to_pose(self, photo: np.ndarray | None, pose: str, original: str | None) -> tuple[np.ndarray, str]:
        """The photo warped to the editor's pose, the areas a re-pose repaints outlined in white."""
        import cv2
        import gradio as gr

        from kekong.generation.repose import warp_photo
        from kekong.repose_spec import ReposeSpec

        try:
            done = warp_photo(ReposeSpec(**self.repose_spec(photo, pose, original)))
        except (KekongError, ValueError) as error:
            raise gr.Error(str(error)) from None
        shown = done.image.copy()
        edge = cv2.morphologyEx(done.mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        shown[edge] = 255
        return shown, f"{done.handles} handles; {(done.mask > 0).mean():.1%} of the photo to repaint"

    def repose(self, data: dict[Any, Any]) -> Iterator[tuple[Any, str, Any, Any]]:
        """Re-pose: the Generate tab's settings and enabled units (extra units), the pose tab's photo and pose;
        yields (preview, status, gallery, tab) as generate does."""
        import gradio as gr

        pose = self.pose_parts
        try:
            fields = self.collect(data)
            spec = self.repose_spec(data.get(pose["photo"]), data.get(pose["editor"]), data.get(pose["original"]))
        except KekongError as error:
            raise gr.Error(str(error)) from None
        fields.pop("init_image", None)
        fields.pop("mask", None)
        fields["denoising_strength"] = float(data.get(self.named["strength"]))
        if data.get(pose["with_unit"]):
            fields["controls"] = [{"module": "none"}, *fields["controls"]]
            spec["pose_unit"] = 0
        fields["repose"] = spec
        yield gr.skip(), "warping", gr.skip(), gr.update(selected="generate-tab")
        for preview, status, job in self.run_job(fields):
            if job is None:
                yield preview, status, gr.skip(), gr.skip()
                continue
            self.last_job = job
            yield preview, status, [(str(self.services.file(job, item["file"])), caption(item))
                                    for item in job.result["images"]], gr.skip()

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
        for enabled, image, module, model, weight, start, end, mode, resize, res, region, perfect, *slots in units:
            if not enabled or image is None:
                continue
            unit = {"module": module, "image": data_uri(image), "weight": weight, "start": start, "end": end,
                    "mode": mode, "resize_mode": resize, "res": int(res)}
            if perfect:
                unit["pixel_perfect"] = True
            params = unit_panels.unit_params(module, slots, self.slot_counts)
            if params:
                unit["params"] = params
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

    @staticmethod
    def fast_fields(fast: bool, parts: list[str] | None, interval: float) -> dict[str, Any]:
        """Fast mode's fields, only when it is switched on (off: the exact result, nothing sent)."""
        if not fast:
            return {}
        return {"fast": True, "fast_parts": list(parts or []), "fast_interval": int(interval)}

    def collect(self, data: dict[Any, Any]) -> dict[str, Any]:
        """The request fields from the Generate tab's widget values (`data`: component → value)."""
        n = self.named
        value = {key: data.get(component) for key, component in n.items()}
        init = value["inpaint"]
        if not (init and init.get("background") is not None) and value["img2img"] is not None:
            init = {"background": value["img2img"], "layers": []}  # the inpaint tab's image wins when it has one
        prompt, negative = networks.styled(value["prompt"] or "", value["negative"] or "", value["styles"])
        shown = max(1, min(MAX_UNITS, int(value["unit_count"] or unit_panels.DEFAULT_UNITS)))
        units = [[data.get(c) for c in panel.inputs()] for panel in self.panels[:shown]]
        return {**self.fields(prompt, negative, value["sampler"], value["steps"], value["cfg"], value["seed"],
                              value["width"], value["height"], value["batch"], init, value["strength"], units),
                **self.extras(*(value[k] for k in ("enable_hr", "hr_scale", "hr_upscaler", "hr_steps",
                                                   "hr_strength", "refiner", "switch_at"))),
                **self.fast_fields(value["fast"], value["fast_parts"], value["fast_interval"]),
                **self.base(value["checkpoint"], value["vae"], value["scheduler"], value["batch_count"])}

    def inputs(self) -> set[Any]:
        return {*self.named.values(), *(c for panel in self.panels for c in panel.inputs())}

    def run_job(self, fields: dict[str, Any]) -> Iterator[tuple[Any, str, Any]]:
        """Queue one job and stream (preview, status, None) until it is done; the last yield carries the job."""
        import gradio as gr

        try:
            job, _ = self.services.submit(fields, "ui")
        except KekongError as error:
            raise gr.Error(str(error)) from None
        event = self.services.worker.finished_event(job.id)
        while not event.wait(0.3):
            running = self.services.worker.running_job(job.id)
            preview = self.services.preview(job.id)
            if preview is not None and running is not None:
                yield enlarged(preview), f"step {running.step} / {running.total}", None
            else:
                yield gr.skip(), "queued", None
        job = self.services.store.get(job.id)
        if job.status != "done":
            raise gr.Error(f"{job.status}: {job.error}")
        yield gr.skip(), f"done: job {job.id}", job

    def generate(self, data: dict[Any, Any]) -> Iterator[tuple[Any, str, Any]]:
        """Queue the job, then stream step previews until it is done; yields (preview, status, gallery)."""
        import gradio as gr

        try:
            fields = self.collect(data)
        except KekongError as error:
            raise gr.Error(str(error)) from None
        for preview, status, job in self.run_job(fields):
            if job is None:
                yield preview, status, gr.skip()
                continue
            self.last_job = job
            yield preview, status, [(str(self.services.file(job, item["file"])), caption(item))
                                    for item in job.result["images"]]

    def describe(self, gallery: list, evt: Any) -> str:
        """Parameters and the provenance check of the picked image."""
        from kekong.provenance.verify import describe, verify

        path = gallery_path(gallery, evt.index) if gallery else None
        if not path:
            return ""
        verdict = verify(path)
        parameters = (verdict.metadata or {}).get("parameters") or ""
        return f"{parameters}\n\n— provenance —\n{without_paths(describe(verdict), verdict)}"

    @staticmethod
    def picked_image(gallery: list, selected: Any) -> np.ndarray:
        """The picked (else the first) gallery image's pixels, for the send-to buttons."""
        import gradio as gr

        from kekong.io import load_image

        if not gallery:
            raise gr.Error("generate an image first")
        return load_image(gallery_path(gallery, int(selected or 0)))

    def send_to_unit(self, gallery: list, selected: Any, unit: Any) -> list[Any]:
        """The picked image into control unit `unit` (1-based): its image, enabled, and its tab shown."""
        import gradio as gr

        image = self.picked_image(gallery, selected)
        index = int(unit) - 1
        updates: list[Any] = []
        for panel in self.panels:
            mine = panel.index == index
            updates += [gr.update(value=image) if mine else gr.skip(), gr.update(value=True) if mine else gr.skip()]
        return [*updates, gr.update(selected=f"unit{index}")]

    def to_init(self, gallery: list, selected: Any, where: str) -> list[Any]:
        """The picked image as the img2img or the inpaint init image (the other one emptied)."""
        import gradio as gr

        image = self.picked_image(gallery, selected)
        editor = {"background": image, "layers": [], "composite": image} if where == "inpaint" else None
        return [image if where == "img2img" else None, editor, gr.update(open=True), gr.update(selected=where)]

    def pose_to_unit(self, pose: str, unit: Any) -> list[Any]:
        """The editor's pose, rendered, as unit `unit`'s map (detector none), enabled and shown."""
        import gradio as gr

        try:
            image = pose_editor.render(pose)
        except KekongError as error:
            raise gr.Error(str(error)) from None
        index = int(unit) - 1
        updates: list[Any] = []
        for panel in self.panels:
            if panel.index == index:
                updates += [image, True, "none", *unit_panels.slot_updates("none", self.slot_counts)]
            else:
                updates += [gr.skip()] * (3 + len(panel.slots))
        return [*updates, gr.update(selected=f"unit{index}")]

    @staticmethod
    def png_info(file: Any) -> tuple[Any, str, str, str]:
        """(image, parameters, recipe JSON, provenance in words) of a dropped file."""
        import gradio as gr

        from kekong.io import load_image

        if file is None:
            return None, "", "", ""
        path = file if isinstance(file, str) else file.name
        try:
            image = load_image(path)
        except KekongError as error:
            raise gr.Error(str(error)) from None
        parameters, recipe, words = pnginfo.read_info(path)
        return image, parameters or "(no A1111 parameters in this image)", recipe, words

    def png_to_img2img(self, parameters: str, image: Any) -> list[Any]:
        """PNG info's parameters into the fields and its image as the img2img init image."""
        import gradio as gr

        if image is None:
            raise gr.Error("drop an image first")
        return [*pnginfo.paste(self.paster, parameters), image, None, gr.update(open=True),
                gr.update(selected="img2img")]

    # -- layout -----------------------------------------------------------------------------
    def blocks(self) -> Any:
        import gradio as gr

        n: dict[str, Any] = {}
        with gr.Blocks(title="kekong") as demo:
            gr.Markdown("## kekong — controllable image generation")
            with gr.Tabs() as self.main_tabs:
                with gr.Tab("Generate", id="generate-tab"):
                    with gr.Row():
                        n["checkpoint"] = gr.Dropdown(checkpoint_titles(), value=default_checkpoint(),
                                                      label="Stable Diffusion checkpoint", elem_id="checkpoint")
                        n["vae"] = gr.Dropdown(vae_names(), value="Automatic", label="SD VAE", elem_id="vae")
                        refresh = gr.Button("↻ Refresh models", scale=0)
                    with gr.Row(equal_height=False):
                        with gr.Column(scale=1, elem_id="settings-column"):
                            self.settings(gr, n)
                        with gr.Column(scale=1, elem_id="results-column"):
                            results = self.results(gr)
                with gr.Tab("PNG info", id="pnginfo-tab"):
                    info = self.png_info_tab(gr)
                with gr.Tab("Pose editor", id="pose-tab"):
                    pose = self.pose_tab(gr)
                with gr.Tab("Verify", id="verify-tab"):
                    self.verify_tab(gr)
            self.wire(gr, n, results, info, pose, refresh)
        self.demo = demo
        return demo

    def settings(self, gr: Any, n: dict[str, Any]) -> None:
        """The left column: prompts, styles, sampling, size, img2img/inpaint, hires, networks, units, grid."""
        from kekong.generation.defaults import model_defaults
        from kekong.models.catalog import base_models

        w = self.widgets
        n["prompt"] = gr.Textbox(label="Prompt", lines=3, elem_id="prompt")
        n["negative"] = gr.Textbox(label="Negative prompt", lines=2, elem_id="negative")
        with gr.Row():
            n["styles"] = gr.Dropdown(list(networks.styles()), value=[], multiselect=True, label="Styles",
                                      info="from styles.csv in the data folder; merged in when generating",
                                      elem_id="styles")
            self.refresh_styles = gr.Button("↻", scale=0, min_width=40)
        with gr.Accordion("↙ Paste parameters (an A1111 infotext)", open=False):
            self.paste_text = gr.Textbox(label="Infotext", lines=3, elem_id="paste-text",
                                         placeholder="prompt\nNegative prompt: …\nSteps: 20, Sampler: Euler a, …")
            self.paste_button = gr.Button("↙ Apply to the fields", elem_id="paste-apply")
            self.paste_notes = gr.Markdown(elem_id="paste-notes")
        with gr.Row():
            n["sampler"] = w.choice(gr, "Dropdown", "sampler", "Sampler", elem_id="sampler")
            n["scheduler"] = w.choice(gr, "Dropdown", "scheduler", "Schedule type", elem_id="scheduler")
        with gr.Row():
            n["steps"] = w.slider(gr, "steps", "Steps", 1, elem_id="steps")
            n["cfg"] = w.slider(gr, "cfg_scale", "CFG scale", 0.5,  # the default model's recommendation
                                value=model_defaults(None).get("cfg_scale"), elem_id="cfg")
        with gr.Row():
            native = 64  # the default (shipped) model's native size
            n["width"] = w.slider(gr, "width", "Width", 8, value=native, elem_id="width")
            n["height"] = w.slider(gr, "height", "Height", 8, value=native, elem_id="height")
        with gr.Row():
            n["batch_count"] = w.slider(gr, "batch_count", "Batch count", 1)
            n["batch"] = w.slider(gr, "batch_size", "Batch size", 1)
            n["seed"] = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", elem_id="seed")
        with gr.Accordion("img2img / inpaint", open=False) as self.init_accordion:
            gr.Markdown("An image in **Inpaint** is used (with the mask drawn on it) when there is one, "
                        "else the **img2img** image.")
            with gr.Tabs() as self.init_tabs:
                with gr.Tab("img2img", id="img2img"):
                    n["img2img"] = gr.Image(label="Init image", type="numpy", elem_id="img2img-image")
                with gr.Tab("Inpaint", id="inpaint"):
                    n["inpaint"] = gr.ImageEditor(label="Init image (draw the mask: white = repaint)", type="numpy",
                                                  brush=gr.Brush(colors=["#ffffff"]), elem_id="inpaint-image")
            n["strength"] = w.slider(gr, "denoising_strength", "Denoising strength", 0.01)
        with gr.Accordion("Hires fix and refiner", open=False):
            with gr.Row():
                n["enable_hr"] = gr.Checkbox(value=False, label="Hires fix")
                n["hr_upscaler"] = gr.Dropdown(upscaler_names(), value="Latent", label="Upscaler")
            with gr.Row():
                n["hr_scale"] = w.slider(gr, "hr_scale", "Upscale by", 0.05)
                n["hr_steps"] = w.slider(gr, "hr_second_pass_steps", "Hires steps (0 = same)", 1)
                n["hr_strength"] = w.slider(gr, "denoising_strength", "Hires denoising strength", 0.01,
                                            value=0.7)  # A1111's hires default
            with gr.Row():
                n["refiner"] = gr.Dropdown(["None", *[m["title"] for m in base_models()]], value="None",
                                           label="Refiner")
                n["switch_at"] = w.slider(gr, "refiner_switch_at", "Refiner switch at", 0.01)
        with gr.Accordion("Fast mode", open=False):
            gr.Markdown(w.field("fast").help)
            n["fast"] = gr.Checkbox(value=w.field("fast").default, label="Fast mode", elem_id="fast")
            with gr.Row():
                n["fast_parts"] = w.choice(gr, "CheckboxGroup", "fast_parts", "Accelerations", elem_id="fast-parts")
                n["fast_interval"] = w.slider(gr, "fast_interval", "A full step every", 1, elem_id="fast-interval")
        with gr.Accordion("LoRA and embeddings", open=False):
            self.networks = gr.Dataset(components=[gr.Textbox(visible=False)], samples=networks.network_samples(),
                                       label="Click one to add it to the prompt", elem_id="networks",
                                       samples_per_page=24)
            self.refresh_networks = gr.Button("↻ Refresh list", scale=0)
        self.units(gr, n)
        with gr.Accordion("X/Y plot", open=False):
            self.grid = grid_panel.build(gr)

    def units(self, gr: Any, n: dict[str, Any]) -> None:
        """Control unit tabs: MAX_UNITS built, as many shown as the unit count setting says."""
        from kekong.detect import list_detectors
        from kekong.models.catalog import controlnet_models
        from kekong.models.ip_adapter import MODULES as IP_MODULES

        modules = ["none", *[d.name for d in list_detectors()], *IP_MODULES]
        models = ["Automatic", *controlnet_models()]
        n["unit_count"] = gr.Slider(1, MAX_UNITS, value=unit_panels.DEFAULT_UNITS, step=1,
                                    label="ControlNet units shown (Multi-ControlNet: max models)",
                                    elem_id="unit-count")
        with gr.Tabs() as self.unit_tabs:
            self.panels = [unit_panels.build_unit(gr, index, self.widgets, modules, models, self.slot_counts)
                           for index in range(MAX_UNITS)]
        for panel in self.panels:
            panel.preview.click(self.detect, [panel.parts["image"], panel.parts["module"], panel.parts["res"],
                                              *panel.slots], panel.detected)
        n["unit_count"].change(unit_panels.visible_units, n["unit_count"], [p.tab for p in self.panels])

    def results(self, gr: Any) -> dict[str, Any]:
        """The right column: generate, progress, step preview, gallery, send-to buttons, details."""
        parts: dict[str, Any] = {}
        with gr.Row():
            parts["go"] = gr.Button("Generate", variant="primary", elem_id="generate", scale=3)
            parts["stop"] = gr.Button("Interrupt", scale=1)
        parts["status"] = gr.Textbox(label="Progress", interactive=False, elem_id="status")
        parts["preview"] = gr.Image(label="Step preview", interactive=False, height=192)
        parts["gallery"] = gr.Gallery(label="Results", columns=4, elem_id="gallery", type="filepath",
                                      interactive=False)  # an output: nothing to drop here
        parts["selected"] = gr.Number(value=0, visible=False)
        with gr.Row():
            parts["to_img2img"] = gr.Button("Send to img2img", elem_id="send-img2img")
            parts["to_inpaint"] = gr.Button("Send to inpaint", elem_id="send-inpaint")
        with gr.Row():
            parts["unit"] = gr.Dropdown([str(i + 1) for i in range(MAX_UNITS)], value="1", label="ControlNet unit",
                                        scale=1, elem_id="send-unit-number")
            parts["to_unit"] = gr.Button("Send to ControlNet unit", elem_id="send-unit", scale=2)
        parts["details"] = gr.Textbox(label="Parameters and provenance", lines=8, interactive=False,
                                      elem_id="details")
        return parts

    def png_info_tab(self, gr: Any) -> dict[str, Any]:
        parts: dict[str, Any] = {}
        with gr.Row():
            with gr.Column():
                parts["file"] = gr.File(label="Drop an image (PNG, JPEG, WebP)", file_types=["image"],
                                        elem_id="pnginfo-file")
                parts["image"] = gr.Image(label="Image", interactive=False, type="numpy", height=256)
            with gr.Column():
                parts["parameters"] = gr.Textbox(label="Parameters (A1111 infotext)", lines=6, interactive=False,
                                                 elem_id="pnginfo-parameters")
                with gr.Row():
                    parts["to_txt2img"] = gr.Button("Send to txt2img", elem_id="pnginfo-to-txt2img")
                    parts["to_img2img"] = gr.Button("Send to img2img", elem_id="pnginfo-to-img2img")
                parts["provenance"] = gr.Textbox(label="Provenance", lines=6, interactive=False,
                                                 elem_id="pnginfo-provenance")
                with gr.Accordion("kekong recipe", open=False):
                    parts["recipe"] = gr.Code(label="Recipe", language="json")
        return parts

    def pose_tab(self, gr: Any) -> dict[str, Any]:
        parts: dict[str, Any] = {}
        with gr.Row():
            parts["editor"] = editor = pose_editor.component(gr)
            with gr.Column():
                pose_source = gr.Image(label="Photo to read a pose from", type="numpy", elem_id="pose-photo")
                detect_pose = gr.Button("Detect pose", elem_id="detect-pose")
                with gr.Row():
                    add = gr.Button("Add person", elem_id="add-person")
                    remove = gr.Button("Remove person")
                pose_file = gr.File(label="Import OpenPose JSON", file_types=[".json"])
                pose_json = gr.Code(label="OpenPose JSON (export)", language="json", elem_id="pose-json",
                                    value=pose_editor.empty_pose())
                with gr.Row():
                    parts["unit"] = gr.Dropdown([str(i + 1) for i in range(MAX_UNITS)], value="1",
                                                label="ControlNet unit", scale=1)
                    parts["send"] = gr.Button("Send pose to ControlNet unit", elem_id="pose-to-unit", scale=2)
            with gr.Column():
                parts["warped"] = gr.Image(label="Photo warped to the pose (white edge: repainted by re-pose)",
                                           type="numpy", interactive=False, elem_id="pose-warped")
                parts["warp_status"] = gr.Markdown(elem_id="pose-warp-status")
                parts["with_unit"] = gr.Checkbox(True, label="Re-pose with an openpose unit on the edited skeleton "
                                                 "(the checkpoint's openpose ControlNet)", elem_id="pose-with-unit")
                with gr.Row():
                    parts["warp"] = gr.Button("Warp photo to this pose", elem_id="pose-warp")
                    parts["repose"] = gr.Button("Re-pose", variant="primary", elem_id="pose-repose")
        parts["photo"], parts["original"] = pose_source, gr.State(None)  # the photo and its detected pose
        detect_pose.click(lambda image: (pose := self.detect_pose(image), pose), pose_source,
                          [editor, parts["original"]])
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
        return parts

    @staticmethod
    def verify_tab(gr: Any) -> None:
        to_check = gr.File(label="Image to check (PNG, JPEG, WebP)")
        words = gr.Textbox(label="Provenance", lines=10, interactive=False, elem_id="verify-words")
        with gr.Accordion("As JSON", open=False):
            verdict = gr.Code(label="Provenance (JSON)", language="json")

        def check(file: Any) -> tuple[str, str]:
            from kekong.provenance.verify import describe, verify

            if file is None:
                return "", ""
            path = file if isinstance(file, str) else file.name
            result = verify(path)
            return (without_paths(describe(result), result),
                    json.dumps(result.as_json(), indent=1, default=str))

        to_check.upload(check, to_check, [words, verdict])

    def wire(self, gr: Any, n: dict[str, Any], results: dict[str, Any], info: dict[str, Any],
             pose: dict[str, Any], refresh: Any) -> None:
        """The events that cross panels: generate, sends, paste, PNG info, networks, styles, grid."""
        w = self.widgets
        self.named, self.results_parts = n, results
        gallery, selected = results["gallery"], results["selected"]
        results["go"].click(self.generate, self.inputs(), [results["preview"], results["status"], gallery])
        results["stop"].click(lambda: self.services.worker.interrupt() and None, None, None)
        # picking a model shows its recommended settings (declared defaults where it has none)
        n["checkpoint"].change(lambda title: recommended_cfg(title, w), n["checkpoint"], n["cfg"])
        refresh.click(lambda: (gr.update(choices=checkpoint_titles()), gr.update(choices=vae_names())),
                      None, [n["checkpoint"], n["vae"]])

        def picked(gallery_value: list, evt: gr.SelectData) -> tuple[str, int]:
            return self.describe(gallery_value, evt), evt.index

        picked.__annotations__["evt"] = gr.SelectData  # Gradio finds the event argument by its type
        gallery.select(picked, gallery, [results["details"], selected])
        init_outputs = [n["img2img"], n["inpaint"], self.init_accordion, self.init_tabs]
        results["to_img2img"].click(lambda g, s: self.to_init(g, s, "img2img"), [gallery, selected], init_outputs)
        results["to_inpaint"].click(lambda g, s: self.to_init(g, s, "inpaint"), [gallery, selected], init_outputs)
        unit_outputs = [c for p in self.panels for c in (p.parts["image"], p.parts["enabled"])] + [self.unit_tabs]
        results["to_unit"].click(self.send_to_unit, [gallery, selected, results["unit"]], unit_outputs)
        module_outputs = [c for p in self.panels for c in (p.parts["image"], p.parts["enabled"], p.parts["module"],
                                                           *p.slots)]
        pose["send"].click(self.pose_to_unit, [pose["editor"], pose["unit"]], [*module_outputs, self.unit_tabs])
        self.pose_parts = pose
        pose["warp"].click(self.warp_to_pose, [pose["photo"], pose["editor"], pose["original"]],
                           [pose["warped"], pose["warp_status"]])
        pose["repose"].click(self.repose, {*self.inputs(), pose["photo"], pose["editor"], pose["original"],
                                           pose["with_unit"]}, [results["preview"], results["status"], gallery,
                                                                self.main_tabs])
        # paste parameters / PNG info → the fields
        self.paster = pnginfo.Paster(n, self.panels, self.slot_counts)
        targets = self.paster.outputs()
        self.paste_button.click(lambda text: pnginfo.paste(self.paster, text), self.paste_text,
                                [*targets, self.paste_notes])
        info["file"].upload(self.png_info, info["file"], [info["image"], info["parameters"], info["recipe"],
                                                          info["provenance"]])
        info["to_txt2img"].click(lambda text: [*pnginfo.paste(self.paster, text), gr.update(selected="generate-tab")],
                                 info["parameters"], [*targets, self.paste_notes, self.main_tabs])
        info["to_img2img"].click(self.png_to_img2img, [info["parameters"], info["image"]],
                                 [*targets, self.paste_notes, n["img2img"], n["inpaint"], self.init_accordion,
                                  self.init_tabs])
        self.networks.click(networks.insert_sample, [n["prompt"], self.networks], n["prompt"])
        self.refresh_networks.click(lambda: gr.Dataset(samples=networks.network_samples()), None, self.networks)
        self.refresh_styles.click(lambda: gr.update(choices=list(networks.styles())), None, n["styles"])
        grid_panel.wire(self, gr)


def mount_ui(app: Any, store_dir: Path) -> None:
    """Mount the UI at /ui; generated images are served from the job store at `store_dir`.

    The server passes what the UI needs (it mounts the UI, so the UI never imports the server)."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    ui = UI(app, getattr(app.state, "limits", None))
    gr.mount_gradio_app(app, ui.blocks(), path="/ui", allowed_paths=[str(store_dir)], ssr_mode=False,
                        footer_links=[])
