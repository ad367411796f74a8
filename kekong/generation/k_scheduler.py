"""A k-diffusion sampler (generation/k_samplers.py) behind the scheduler interface the generation
loop drives (diffusers': set_timesteps, timesteps, scale_model_input, step, add_noise,
init_noise_sigma, order), so the loop needs no second path.

What A1111's KDiffusionSampler does, here: σ from A1111's schedule types over the model's whole σ
table (generation/schedules.py), the starting noise × σ_0, the UNet called at t = σ→t(σ)
(continuous, CompVisDenoiser's) on x / √(σ² + 1), its output turned into the denoised latents
(ε: x − σ ε; v: x / (σ² + 1) − σ v / √(σ² + 1)), per-image Brownian trees for the SDE samplers.
`timesteps` lists one entry per model evaluation (a second-order step has two).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from kekong.generation import k_samplers
from kekong.generation.schedules import ModelSigmas, sigmas_for


class KDiffusionScheduler:
    """One sampling run of a k-diffusion sampler; make a new one per run (as with diffusers')."""

    def __init__(self, algorithm: str, schedule: str, config: dict[str, Any], discard_penultimate: bool = False,
                 seed: int | Sequence[int] | None = None, sdxl: bool = False):
        self.algorithm, self.schedule = algorithm, schedule
        self.model = ModelSigmas(config)
        self.prediction_type = config.get("prediction_type") or "epsilon"
        self.discard_penultimate, self.sdxl = discard_penultimate, sdxl
        self.seed = seed
        self.config = {"algorithm": algorithm, "schedule": schedule, "prediction_type": self.prediction_type,
                       "discard_penultimate": discard_penultimate,
                       "num_train_timesteps": len(self.model.sigmas)}
        self.order: float = 1
        self._generators: list[torch.Generator] | None = None
        self._chain: list[Any] | None = None  # each image's generator, continued (noise.initial_noise's)
        self._source: Any = None
        self._brownian: k_samplers.BrownianNoise | None = None

    def noise_from(self, source: Any, generators: Sequence[Any]) -> None:
        """Draw the sampler's fresh noise as A1111 does: each image's generator continued after the
        starting noise (`generators` from noise.initial_noise), the Brownian trees from `source`."""
        self._source, self._chain = source, list(generators)

    # --- the run's noise levels ---

    def set_timesteps(self, num_inference_steps: int, device: Any = None) -> None:
        self.steps = num_inference_steps
        self.full_sigmas = sigmas_for(self.schedule, num_inference_steps, self.model, self.discard_penultimate,
                                      self.sdxl)
        self._run(self.full_sigmas)

    def begin_at(self, index: int) -> torch.Tensor:
        """Start at the `index`-th noise level (img2img, hires fix): the timesteps left to run."""
        self._run(self.full_sigmas[index:])
        return self.timesteps

    def _run(self, sigmas: torch.Tensor) -> None:
        self.sigmas = sigmas
        if self.algorithm in k_samplers.ADAPTIVE:  # the levels come from the run itself
            first = k_samplers._sigma(k_samplers._t(sigmas[0])).to(torch.float32)
            self.timesteps = Unplanned(self.model, first, len(sigmas) - 1)
            self.eval_sigmas = first[None]
            self.order = 1
        else:
            self.eval_sigmas = _visited(self.algorithm, sigmas)
            self.timesteps = self.model.sigma_to_t(self.eval_sigmas)
            self.order = len(self.eval_sigmas) / max(len(sigmas) - 1, 1)  # evaluations per step
        self.init_noise_sigma = float(sigmas[0])
        self._sampler: k_samplers.Sampler | None = None
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def _sigma_at(self, timestep: Any) -> torch.Tensor:
        """The σ of a (visited) timestep."""
        t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1)[0]
        if isinstance(self.timesteps, Unplanned):
            return self.timesteps.sigma_at(t)
        return self.eval_sigmas[int(torch.argmin((self.timesteps - t).abs()))]

    def _current(self) -> torch.Tensor:
        return self._pending[1] if self._pending is not None else self.eval_sigmas[0]

    # --- one model evaluation ---

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        sigma = self._current() if self._pending is not None or timestep is None else self._sigma_at(timestep)
        return sample / ((sigma ** 2 + 1) ** 0.5).to(sample.dtype)

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: list[torch.Generator] | torch.Generator | None = None, return_dict: bool = True) -> Any:
        if generator is not None:
            self._generators = generator if isinstance(generator, list) else [generator]
        x = sample.float()
        if self._sampler is None:
            self._sampler = k_samplers.SAMPLERS[self.algorithm](x, self.sigmas, self._noise)
            self._pending = next(self._sampler)
        sigma = self._current()
        denoised = self._denoised(model_output.float(), x, sigma)
        try:
            self._pending = self._sampler.send((x, denoised))
            out = self._pending[0]
            if isinstance(self.timesteps, Unplanned):
                self.timesteps.add(self._pending[1])
        except StopIteration as stop:
            out = stop.value
        out, denoised = out.to(sample.dtype), denoised.to(sample.dtype)
        return (out, denoised) if not return_dict else _Output(out, denoised)

    def _denoised(self, output: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return x - sigma * output
        if self.prediction_type == "v_prediction":
            return x / (sigma ** 2 + 1) - output * sigma / (sigma ** 2 + 1) ** 0.5
        return output  # "sample": the model predicts the clean latents

    def add_noise(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return original + noise * self._sigma_at(timesteps).to(original.dtype)

    # --- the sampler's fresh noise ---

    def _noise(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        like = self._pending[0] if self._pending is not None else None
        if like is None:
            raise RuntimeError("noise asked for before the first model evaluation")
        if self.algorithm in k_samplers.BROWNIAN:
            if self._brownian is None:
                positive = self.full_sigmas[self.full_sigmas > 0]
                seeds = _seeds(self.seed, like.shape[0])
                draw = None
                if self._source is not None:
                    from kekong.generation.noise import randn

                    def draw(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
                        return randn(self._source, seed, shape)
                self._brownian = k_samplers.BrownianNoise(like, positive.min(), positive.max(), seeds, draw)
            return self._brownian(sigma, sigma_next).to(like.dtype)
        if self._chain is not None and len(self._chain) == like.shape[0]:
            from kekong.generation.noise import next_noise

            return next_noise(self._chain, tuple(like.shape[1:])).to(device=like.device, dtype=like.dtype)
        from diffusers.utils.torch_utils import randn_tensor

        generator = self._generators if self._generators is None or len(self._generators) > 1 else \
            self._generators[0]
        return randn_tensor(like.shape, generator=generator, device=like.device, dtype=like.dtype)


class Unplanned:
    """The timesteps of a sampler that picks its noise levels as it runs (DPM adaptive): one per model
    evaluation, each known once the evaluation before it is done (so the loop's iteration ends when
    the sampler does). Its length is the run's planned steps: as in A1111, prompt edits, the refiner
    switch and progress count model evaluations against them. A control unit's window counts tries
    (three evaluations each) against them, as sd-webui-controlnet's does: it reads A1111's step
    counter, which the sampler's callback sets once a try."""

    evaluations_per_step = 3  # DPM-Solver-23: one try evaluates at s, s + h/3 and s + 2h/3

    def __init__(self, model: ModelSigmas, first_sigma: torch.Tensor, planned: int):
        self.model, self.planned = model, max(planned, 1)
        self.sigmas: list[torch.Tensor] = []
        self.ts: list[torch.Tensor] = []
        self.add(first_sigma)

    def add(self, sigma: torch.Tensor) -> None:
        sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(())
        self.sigmas.append(sigma)
        self.ts.append(self.model.sigma_to_t(sigma))

    def sigma_at(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigmas[int(torch.argmin((torch.stack(self.ts) - t).abs()))]

    def __len__(self) -> int:
        return self.planned

    def __iter__(self) -> Iterator[torch.Tensor]:
        index = 0
        while index < len(self.ts):  # grows as the scheduler steps
            yield self.ts[index]
            index += 1

    def __getitem__(self, key: Any) -> torch.Tensor:
        return torch.stack(self.ts)[key]

    @property
    def evaluations(self) -> int:
        """Model evaluations asked for so far (the last one may still be pending)."""
        return len(self.ts)


class _Output:
    def __init__(self, prev_sample: torch.Tensor, pred_original_sample: torch.Tensor):
        self.prev_sample, self.pred_original_sample = prev_sample, pred_original_sample


def _seeds(seed: int | Sequence[int] | None, batch: int) -> int | list[int]:
    """A Brownian tree per image seed (A1111); one int seeds one tree over the batch (diffusers')."""
    if seed is None:
        return 0
    if isinstance(seed, int):
        return seed
    seeds = list(seed)
    return seeds if len(seeds) == batch else seeds[0]


def _visited(algorithm: str, sigmas: torch.Tensor) -> torch.Tensor:
    """The σ of each model evaluation, from a dry run (no sampler here picks its levels from x)."""
    sampler = k_samplers.SAMPLERS[algorithm](torch.zeros(()), sigmas, lambda s, n: torch.zeros(()))
    visited = []
    try:
        x, sigma = next(sampler)
        while True:
            visited.append(sigma)
            x, sigma = sampler.send((x, x))
    except StopIteration:
        pass
    return torch.stack(visited).to(torch.float32) if visited else sigmas[:0]
