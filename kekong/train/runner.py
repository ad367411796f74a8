"""The training loop every kekong trainer shares: seeded steps, gradient accumulation, warm-up and
cosine learning-rate decay, a progress bar with the loss, a JSON-lines log, checkpoints with
optimizer state written atomically, and resume from the last checkpoint after a kill (SIGKILL
loses at most `checkpoint_every` steps; Ctrl-C and SIGTERM save first: after the step in progress,
or at once during a validation, which keeps the progress bar ticking while it samples)."""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kekong.errors import KekongError


@dataclass
class RunSettings:
    out: Path
    steps: int
    batch_size: int = 32
    lr: float = 3e-4
    seed: int = 0
    grad_accum: int = 1
    checkpoint_every: int = 200
    validate_every: int = 500
    warmup: int = 100
    progress: bool = True


def lr_factor(step: int, settings: RunSettings) -> float:
    """Linear warm-up, then cosine decay to zero at the last step. Without the decay the last
    weights land wherever the noise of a constant rate leaves them (seen: a VAE whose held-out
    shape colours fell from 0.96 to 0.80 in its last 100 steps)."""
    warmup = min(1.0, (step + 1) / max(1, settings.warmup))
    return warmup * 0.5 * (1 + math.cos(math.pi * min(step, settings.steps) / max(1, settings.steps)))


class Stopped(Exception):
    """Training stopped by Ctrl-C or SIGTERM after saving a checkpoint; `exit_code` is the shell's
    convention for the signal (130, 143). Not a KekongError: nothing went wrong."""

    def __init__(self, message: str, checkpoint: Path, exit_code: int) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.exit_code = exit_code


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _stopped(name: str, step: int, checkpoint: Path) -> str:
    return (f"{name}: stopped at step {step}; checkpoint saved at {checkpoint} "
            f"(run the same command again to resume)")


def run_training(
    settings: RunSettings, name: str, modules: dict[str, torch.nn.Module],
    loss_fn: Callable[[int, int], torch.Tensor],
    validate: Callable[[int], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Train the parameters of `modules` for settings.steps; resumes from out/checkpoint.pt.

    loss_fn(step, micro_batch) returns the loss of one micro-batch; it must draw its data from
    RNGs seeded by (seed, step, micro) so a resumed run sees the data an unbroken one would.
    """
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, settings))
    checkpoint = out / "checkpoint.pt"
    start = 0
    if checkpoint.is_file():
        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:  # a checkpoint we wrote is plain tensors and dicts
            raise KekongError(f"{checkpoint}: cannot resume ({exc}); delete it to start over") from None
        for key, module in modules.items():
            module.load_state_dict(state["modules"][key])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start = state["step"]
    log = out / "log.jsonl"

    def save(step: int) -> None:
        _save_atomic({"step": step, "modules": {k: m.state_dict() for k, m in modules.items()},
                      "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}, checkpoint)

    signals = _Signals()
    bar = _bar(settings, name, start)
    smoothed = math.nan
    completed = start  # steps whose update is in the weights: what a checkpoint written now holds
    unlogged: dict[str, Any] | None = None  # a finished step's record not yet in the log

    def write_log(entry: dict[str, Any]) -> None:
        with open(log, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(entry) + "\n")

    try:
        signals.install()
        for module in modules.values():
            module.train()
        for step in range(start, settings.steps):
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for micro in range(settings.grad_accum):
                loss = loss_fn(step, micro) / settings.grad_accum
                loss.backward()
                total += float(loss.detach())
            if not math.isfinite(total):
                raise KekongError(f"{name}: loss became {total} at step {step}; lower the learning rate")
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            with signals.deferred():  # an update is applied whole or not at all
                optimizer.step()
                schedule.step()
                completed = step + 1
            smoothed = total if math.isnan(smoothed) else 0.98 * smoothed + 0.02 * total
            record: dict[str, Any] = {"step": completed, "loss": round(total, 6), "time": round(time.time(), 1)}
            unlogged = record
            if validate is not None and (completed % settings.validate_every == 0 or completed == settings.steps):
                record.update(_validated(validate, completed, modules, signals, bar))
            with signals.deferred():
                if completed % settings.checkpoint_every == 0 or completed == settings.steps:
                    save(completed)
                write_log(record)
                unlogged = None
            if bar is not None:
                bar.update(1, loss=f"{smoothed:.4f}", **{k: f"{v:.3f}" for k, v in record.items()
                                                          if k not in ("step", "loss", "time")})
            signals.check()
    except (KeyboardInterrupt, Interrupted) as exc:
        signals.restore()  # a second Ctrl-C while the checkpoint is written stops Python, as usual
        save(completed)
        if unlogged is not None:  # stopped in its validation: the step's loss is still logged
            write_log(unlogged)
        code = exc.exit_code if isinstance(exc, Interrupted) else 130
        raise Stopped(_stopped(name, completed, checkpoint), checkpoint, code) from None
    finally:
        signals.restore()
        if bar is not None:
            bar.close()
        for module in modules.values():
            module.eval()
    return {"steps": settings.steps, "loss": smoothed}


class Interrupted(BaseException):
    """Raised inside a validation (or a step, on a second signal) to stop at once. A BaseException,
    as KeyboardInterrupt is, so generation code that catches Exception does not swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


class _Signals:
    """Ctrl-C (SIGINT) and SIGTERM during training. The first signal asks for a stop after the step
    in progress (a step takes seconds); during a validation, which can take minutes, it stops at
    once, as does a second signal. Weight updates and checkpoint writes are never cut in half."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self.in_validation = False
        self.defer = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers live in the main thread; elsewhere Python's defaults stay
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        self.signum, self.count = signum, self.count + 1
        if self.defer == 0 and (self.in_validation or self.count > 1):
            raise Interrupted(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self.defer += 1
        try:
            yield
        finally:
            self.defer -= 1
        if self.count > 1 or (self.count and self.in_validation):
            self.check()

    def check(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)


def _validated(validate: Callable[[int], dict[str, float]], step: int, modules: dict[str, torch.nn.Module],
               signals: _Signals, bar: _Bar | None) -> dict[str, float]:
    """Run a validation with the modules in eval mode; the progress bar keeps ticking ('validating
    12 s') and a signal stops it at once. Its time is logged as validation_s."""
    for module in modules.values():
        module.eval()
    began = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(1.0):
            if bar is not None:
                bar.note(f"validating at step {step}: {time.monotonic() - began:.0f} s")

    ticker = threading.Thread(target=tick, name="validation-ticker", daemon=True)
    ticker.start()
    signals.in_validation = True
    try:
        signals.check()  # a signal that came during the step: do not start minutes of sampling
        metrics = dict(validate(step))
    finally:
        signals.in_validation = False
        done.set()
        ticker.join()
        for module in modules.values():
            module.train()
    metrics["validation_s"] = round(time.monotonic() - began, 1)
    return metrics


class _Bar:
    def __init__(self, total: int, done: int, name: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=done, desc=name, dynamic_ncols=True)

    def update(self, n: int, **fields: str) -> None:
        self.bar.set_postfix(fields, refresh=False)
        self.bar.update(n)

    def note(self, text: str) -> None:
        """Show what is happening between steps (refreshes the bar, from any thread)."""
        self.bar.set_postfix_str(text, refresh=True)

    def close(self) -> None:
        self.bar.close()


def _bar(settings: RunSettings, name: str, done: int) -> _Bar | None:
    return _Bar(settings.steps, done, name) if settings.progress else None
