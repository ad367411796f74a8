"""`generate(request)`: txt2img, img2img and inpaint with 0..N control units.

Order of work: load the base and every ControlNet and check they fit (a mismatch is refused
before any detector runs), read the init image and mask, run detectors, then one batch at a
time: encode prompts, draw starting noise per image seed, denoise, decode.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import numpy as np
import torch

from kekong.detect.resolution import ResizeMode
from kekong.errors import ParameterError
from kekong.generation import inpaint as inpaint_inputs
from kekong.generation import repose
from kekong.generation.checks import check_compatible
from kekong.generation.control import detect_units, load_units
from kekong.generation.defaults import with_model_defaults
from kekong.generation.detailer import check as check_detail
from kekong.generation.detailer import detail_all
from kekong.generation.fast import FastPlan
from kekong.generation.fill_noise import fill_noise
from kekong.generation.loop import Guidance, InpaintBlend, InpaintChannels, OnStep, Stop, Stopped, denoise
from kekong.generation.samplers import SAMPLERS, ddim_evaluations, image_steps, make_scheduler
from kekong.generation.text import encode_schedules
from kekong.generation.units.base import Sampling, Unit, applied
from kekong.io import image_source, load_image
from kekong.prompt.syntax import extract_loras, resolve_dynamic
from kekong.request import GenerationRequest, InpaintFill


@dataclass
class Generated:
    """One generated image and what it takes to describe and replay it."""

    image: np.ndarray  # uint8 HxWx3
    seed: int  # this image's seed
    index: int  # position among all images of the request
    batch_seed: int  # first seed of its batch (replay re-runs the batch)
    batch_position: int
    request: GenerationRequest  # with the seed resolved
    base: object
    units: list[Unit] = field(default_factory=list)
    prompt_used: str = ""  # after dynamic choices and <lora:…> tags are resolved
    negative_used: str = ""
    subseed: int | None = None  # this image's variation seed, when variation is on
    vae: object | None = None  # the ModelRef of a VAE chosen apart from the base model
    fidelity: list[dict] | None = None  # per unit, once scored (kekong.fidelity.score_generated)
    stopped: dict | None = None  # skipped / interrupted: Stopped.record() (the step it stopped at)


def resolve_seed(seed: int) -> int:
    return secrets.randbelow(2**32) if seed == -1 else seed


def generate(request: GenerationRequest, on_step: OnStep | None = None) -> list[Generated]:
    """Every image the request asks for (batch_size × batch_count), in order."""
    from kekong.models.load import load_base
    from kekong.models.patch import patched
    from kekong.models.vae import load_vae

    request = with_model_defaults(request)  # what the user left unset takes the model's recommendation
    base = load_base(request.model)
    native = base.unet.config.sample_size * base.vae_scale  # 512 for SD 1.5, 1024 for SDXL, 64 for kekong-shapes
    request = request.model_copy(update={"seed": resolve_seed(request.seed), "width": request.width or native,
                                         "height": request.height or native,
                                         "subseed": resolve_seed(request.subseed) if request.subseed_strength else
                                         request.subseed})
    check_compatible(request, base)  # sizes derived from the native size, files, text encoder, schedulers
    check_detail(request)
    recorded, request = request, repose.expand(request, base)  # a re-pose runs as the inpaint of its warped photo
    loras = [*request.loras, *prompt_loras(request)]
    units = load_units(base, request.active_units)
    if request.vae is not None:
        load_vae(request.vae, base)  # a missing or misfitting VAE is refused before any work
    if request.refiner is not None:
        from kekong.generation.refiner import check

        check(base, request.refiner)
    size = (request.height, request.width)
    prepared = _prepare_init(request, size)
    detect_units(units, size, request.init_image, crop=prepared.crop if prepared else None,
                 inpaint_mask=prepared.unit_mask if prepared else None)
    hires_units, described = None, units  # `described`: every unit, for the infotext and recipe
    if request.enable_hr:  # each unit acts in the passes its hr_option names; its map is made per pass size
        from kekong.generation.hires import target_size
        from kekong.request import HrOption

        hires_units = [u for u in load_units(base, request.active_units) if u.unit.hr_option != HrOption.LOW_RES_ONLY]
        detect_units(hires_units, target_size(request), None)
        units = [u for u in units if u.unit.hr_option != HrOption.HIGH_RES_ONLY]
    results = []
    readers = [load_base(request.refiner)] if request.refiner is not None else []  # its UNet is read: held too
    with patched(base, loras, request.vae, also=readers) as model, applied(model.unet, units):  # IP-Adapters
        for batch in range(request.batch_count):
            # As A1111: with a variation seed every image keeps the seed and only the subseed counts on.
            varied = bool(request.subseed_strength)
            first = request.seed if varied else (request.seed + batch * request.batch_size) % 2**32
            seeds = [first if varied else (first + k) % 2**32 for k in range(request.batch_size)]
            subseeds = [(request.subseed + batch * request.batch_size + k) % 2**32 for k in range(request.batch_size)] \
                if request.subseed_strength else None
            stopped, record = None, None
            try:
                images = run_batch(model, request, units, seeds, prepared, on_step, subseeds, hires_units)
            except Stopped as stop:  # skip / interrupt: this batch as far as it got
                images, stopped, record = stop.images, stop.stop, stop.record()
            for k, image in enumerate(images):
                prompt, negative = prompts_for(request, seeds[k])
                results.append(Generated(image, seeds[k], batch * request.batch_size + k, first, k, recorded,
                                         model, described, prompt, negative, subseeds[k] if subseeds else None,
                                         model.vae_ref, stopped=record))
            if stopped is Stop.ALL:
                break
    if request.detail:  # the detailer (ADetailer): faces / hands repainted, each region a request of its own
        detail_all(results, generate)
    return results


def prompts_for(request: GenerationRequest, seed: int) -> tuple[str, str]:
    """The prompt and negative prompt an image's seed gives: dynamic choices made, LoRA tags out."""
    return (extract_loras(resolve_dynamic(request.prompt, seed))[0],
            extract_loras(resolve_dynamic(request.negative_prompt, seed))[0])


def prompt_loras(request: GenerationRequest) -> list:
    """`<lora:name:weight>` tags of the prompt, as the request's LoRA entries (as A1111's API clients send)."""
    from kekong.request import LoraSpec

    _, tags = extract_loras(request.prompt)
    return [LoraSpec(path=name, weight=weight) for name, weight in tags]


def _prepare_init(request: GenerationRequest, size: tuple[int, int]) -> inpaint_inputs.InpaintInputs | None:
    if request.init_image is None:
        return None
    original = load_image(image_source(request.init_image))
    if request.mask is None:
        resized = inpaint_inputs.fit_init(original, size, request.resize_mode)
        return inpaint_inputs.InpaintInputs(resized, np.zeros(size, np.uint8), resized, np.zeros(size, np.uint8), None)
    mask = load_image(image_source(request.mask))
    if request.resize_mode != ResizeMode.JUST_RESIZE:  # A1111 fits the image and its mask the same way first
        mask = inpaint_inputs.fit_init(mask, size, request.resize_mode)
        original = inpaint_inputs.fit_init(original, size, request.resize_mode)
    return inpaint_inputs.prepare(
        original, mask, size, invert=request.mask_invert, blur=request.mask_blur,
        only_masked=request.inpaint_only_masked, padding=request.only_masked_padding,
        fill=request.inpainting_fill == InpaintFill.FILL)


def _timesteps(scheduler, request: GenerationRequest, from_image: bool, hires: bool = False) -> torch.Tensor:
    if not from_image:
        scheduler.set_timesteps(request.steps)
        return scheduler.timesteps
    levels, run = image_steps(request.sampler, request.steps, request.denoising_strength, hires)
    if run < 1:
        raise ParameterError(f"denoising strength {request.denoising_strength} with {request.steps} steps "
                             "leaves no step to run; raise one of them")
    scheduler.set_timesteps(levels)
    if hasattr(scheduler, "begin_at"):  # a k-diffusion sampler: from the (levels - run)-th noise level
        return scheduler.begin_at(levels - run)
    start = (levels - run) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:]


@torch.no_grad()
def run_batch(base, request: GenerationRequest, units: list[Unit], seeds: list[int],
              prepared: inpaint_inputs.InpaintInputs | None, on_step: OnStep | None,
              subseeds: list[int] | None = None, hires_units: list[Unit] | None = None) -> list[np.ndarray]:
    """One batch: sample (and, with hires fix, upscale and sample again), decode, paste back.
    A step callback's Stop raises Stopped with the batch decoded as far as it got."""
    stopped, in_hires = None, False
    try:
        latents = sample(base, request, units, seeds, prepared, on_step, subseeds)
        if request.enable_hr:
            from kekong.generation import hires

            in_hires = True  # a Stop from here on is in the hires pass
            second = hires.second_pass(request)
            start = hires.upscale(base, latents, (second.height, second.width), request.hr_upscaler,
                                  lambda lat: _decode(base, lat), lambda image: _encode_image(base, image, None))
            latents = sample(base, second, hires_units or [], seeds, None, on_step, subseeds, start,
                             base_steps=request.steps * SAMPLERS[request.sampler].step_multiplier)
            # (prompt edits count on from the first pass, in A1111's total steps)
    except Stopped as stop:
        latents, stopped = stop.latents, stop
        stop.hires = in_hires
    images = _decode(base, latents)
    if prepared is not None and request.mask is not None:
        images = [inpaint_inputs.paste(image, prepared) for image in images]
    if stopped is not None:
        stopped.images = images
        raise stopped
    return images


def steps_per_batch(request: GenerationRequest) -> int:
    """Denoising steps one batch runs (a progress bar's total)."""
    from kekong.generation.hires import second_pass

    from_image = request.init_image or request.repose
    steps = max(1, image_steps(request.sampler, request.steps, request.denoising_strength)[1]) if from_image \
        else request.steps
    if SAMPLERS[request.sampler].a1111_timesteps:  # A1111's DDIM evaluates all its timesteps but the lowest
        steps = ddim_evaluations(request.steps) if not from_image else max(steps - 1, 0)
    if request.enable_hr:
        second = second_pass(request)
        run = max(1, image_steps(second.sampler, second.steps, request.denoising_strength, True)[1])
        steps += run - 1 if SAMPLERS[second.sampler].a1111_timesteps else run
    return steps


def sample(base, request: GenerationRequest, units: list[Unit], seeds: list[int],
           prepared: inpaint_inputs.InpaintInputs | None, on_step: OnStep | None,
           subseeds: list[int] | None = None, start: torch.Tensor | None = None,
           base_steps: int | None = None) -> torch.Tensor:
    """Denoised latents for one batch: from noise (txt2img), from the init image (img2img,
    inpaint) or from `start` latents (hires fix's second pass; `base_steps`: the first pass's)."""
    from kekong.generation.noise import initial_noise

    count = len(seeds)
    config = base.scheduler_config
    if request.prediction_type is not None:
        config = {**config, "prediction_type": request.prediction_type.value}
    sdxl = getattr(base, "family", "") == "sdxl"  # Align Your Steps has an SDXL table
    scheduler = make_scheduler(request.sampler, request.scheduler, config, seeds, sdxl=sdxl)
    timesteps = _timesteps(scheduler, request, from_image=prepared is not None or start is not None,
                           hires=start is not None)
    run_steps = max(1, round(len(timesteps) / scheduler.order)) if hasattr(scheduler, "order") else len(timesteps)
    texts = [prompts_for(request, seed) for seed in seeds]
    # A1111 schedules an img2img pass's prompt edits over all its steps, from the pass's first step, and
    # counts a second-order sampler's in model evaluations (total_steps = 2 × steps)
    multiplier = SAMPLERS[request.sampler].step_multiplier
    own_timesteps = SAMPLERS[request.sampler].a1111_timesteps  # A1111's DDIM: edits over `steps`, it runs fewer
    scheduled = (request.steps if (prepared is not None and start is None) or own_timesteps else run_steps) \
        * multiplier
    run_steps *= multiplier
    guidance = _guidance(base, request, texts, run_steps, base_steps, scheduled)
    first = guidance.parts[0][1][0][1]
    refiner = None
    if request.refiner is not None:
        from kekong.generation.refiner import refiner_for

        refiner = refiner_for(request, len(timesteps), lambda model: _guidance(model, request, texts, run_steps,
                                                                                 base_steps, scheduled))
    channels = base.vae.config.latent_channels
    shape = (count, channels, request.height // base.vae_scale, request.width // base.vae_scale)
    resize_from = (max(request.seed_resize_from_h, 0) // base.vae_scale, max(request.seed_resize_from_w, 0) //
                   base.vae_scale)
    ensd = request.eta_noise_seed_delta
    noise, generators = initial_noise(request.rng, seeds, shape[1:], subseeds, request.subseed_strength, resize_from,
                                      ensd)
    noise = noise.to(first.embeds.dtype)
    if start is None:  # an inpaint_only+lama unit: the extension's starting noise, leaning to the LaMa fill
        noise = fill_noise(base, units, noise, lambda image: _encode_image(base, image, None))
    if hasattr(scheduler, "noise_from"):  # a k-diffusion sampler's later noise continues each image's generator
        scheduler.noise_from(request.rng, generators)
    generators = [g if isinstance(g, torch.Generator) else torch.Generator().manual_seed(seed + ensd)  # diffusers'
                  for g, seed in zip(generators, seeds, strict=True)]
    blend = inpaint_channels = None
    if start is not None:
        latents = scheduler.add_noise(start.to(noise.dtype), noise, _noise_level(scheduler, timesteps))
    elif prepared is None:
        latents = noise * scheduler.init_noise_sigma
    else:
        # the VAE's sample and latent noise draw apart from the images' generators (A1111's do not touch them)
        init = _encode_image(base, prepared.image, [torch.Generator().manual_seed(seed) for seed in seeds])
        latent_mask = _latent_mask(prepared.mask, shape) if request.mask is not None else None
        if latent_mask is not None and request.inpainting_fill == InpaintFill.LATENT_NOISE:
            fill = initial_noise(request.rng, seeds, shape[1:])[0].to(init.dtype)  # A1111: create_random_tensors
            init = init * (1 - latent_mask) + fill * latent_mask
        elif latent_mask is not None and request.inpainting_fill == InpaintFill.LATENT_NOTHING:
            init = init * (1 - latent_mask)
        latents = scheduler.add_noise(init, noise, _noise_level(scheduler, timesteps))
        if latent_mask is not None:
            if base.unet.config.in_channels == 2 * channels + 1:
                masked = _encode_image(base, prepared.image * (prepared.mask[..., None] < 128), None)
                inpaint_channels = InpaintChannels(latent_mask, masked)
            else:
                blend = InpaintBlend(init, noise, latent_mask)
    run = Sampling(seeds[0], shape, lambda image: _encode_image(base, image, None))  # what reference-only reads
    return denoise(base.unet, scheduler, latents, timesteps, guidance, units, generators, on_step,
                   blend, inpaint_channels, refiner, run, FastPlan.of(request))


def _noise_level(scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    """The timestep a pass from an image noises its latents to: the first one run, or (A1111's DDIM)
    the one above it."""
    level = getattr(scheduler, "noise_timestep", None)
    return timesteps[:1] if level is None else level.reshape(1)


def _guidance(base, request: GenerationRequest, texts: list[tuple[str, str]], run_steps: int,
              base_steps: int | None = None, scheduled: int | None = None) -> Guidance:
    """The prompt's conditioning for `base` (the refiner encodes with its own text encoders); prompt
    edits scheduled over `scheduled` steps (default: the `run_steps` the pass runs)."""
    from kekong.generation.refiner import micro_conditioning

    parts, uncond = encode_schedules(base, [t[0] for t in texts], [t[1] for t in texts], scheduled or run_steps,
                                     request.clip_skip, base_steps)
    guidance = Guidance(parts, uncond if request.cfg_scale > 1 else None, request.cfg_scale, run_steps)
    first = parts[0][1][0][1]
    if first.pooled is not None:
        guidance.time_ids, guidance.uncond_time_ids = micro_conditioning(
            base, request.height, request.width, len(texts), first.pooled.shape[-1], first.embeds.dtype)
    return guidance


WIDE_POSTERIOR = 0.5  # mean posterior std above which a VAE's latents are read by their mean (SD's is far narrower)


def _encode_image(base, image: np.ndarray, generators: list[torch.Generator] | None) -> torch.Tensor:
    pixels = torch.from_numpy(image.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    dist = base.vae.encode(pixels).latent_dist
    # A posterior as wide as the prior (kekong-shapes' VAE: a negligible KL term; its UNet was trained on
    # means) is no distribution to sample: a sample is the mean plus unit noise, which img2img never removes.
    if generators is None or float(dist.std.mean()) > WIDE_POSTERIOR:
        latents = dist.mode()
    else:
        latents = torch.cat([dist.sample(generator=g) for g in generators])
    shift = getattr(base.vae.config, "shift_factor", None) or 0.0
    return (latents - shift) * base.vae.config.scaling_factor


def _latent_mask(mask: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """A1111: the blurred mask scaled to latent size and rounded to 0/1."""
    import cv2

    small = cv2.resize(mask, (shape[3], shape[2]), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return torch.from_numpy(np.round(small))[None, None].repeat(shape[0], 1, 1, 1)


def _decode(base, latents: torch.Tensor) -> list[np.ndarray]:
    shift = getattr(base.vae.config, "shift_factor", None) or 0.0
    pixels = base.vae.decode(latents / base.vae.config.scaling_factor + shift, return_dict=False)[0]
    pixels = (pixels / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return [(p * 255).round().astype(np.uint8) for p in pixels]
