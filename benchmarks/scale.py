"""`kekong batch` throughput: one process vs a local Ray pool of 1 and 2 workers (issue 29 item 5).

The same manifest (the shipped kekong-shapes model, 64 px) runs warm — each executor first runs a
warm-up manifest, so actors hold the model and torch is loaded — into fresh folders, and:
- images/s of each, and the 2-worker / 1-worker ratio (this machine's cores are shared);
- where the time goes: the lines' own seconds (inside `run_task`) vs the batch's wall time, the
  rest being scheduling, transfer and the driver's bookkeeping, per line;
- Ray's own round trip for an actor call that does nothing;
- a start-up line: Ray's start, the actors' start and their first line (torch import, model load
  from the shared path);
- a paper estimate at 100 workers from the measured per-image seconds;
- `kekong serve --ray`: as many jobs as lines posted at once to a server with 1 and 2 actors (jobs run
  side by side, one per actor, the rest queued), jobs/s from the first post to the last job done.

`python benchmarks/scale.py [--lines 12] [--steps 8] [--json out.json]`; prints a Markdown table."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from kekong.scale.run import Local, Options, run_batch

LAYERS = {"metadata": True, "watermark": False, "c2pa": False}
CPU_HOUR_USD = 0.04  # an on-demand vCPU-hour, roughly (assumed, not measured)


def manifest(path: Path, lines: int, steps: int, first_seed: int) -> Path:
    colours = ["red", "blue", "green", "yellow", "purple", "orange"]
    rows = [{"prompt": f"a {colours[i % 6]} star", "seed": first_seed + i, "width": 64, "height": 64,
             "steps": steps} for i in range(lines)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def timed(manifest_path: Path, out: Path, executor) -> dict:
    started = time.perf_counter()
    summary = run_batch(manifest_path, Options(out, layers=LAYERS), executor)
    wall = time.perf_counter() - started
    inside = sum(entry["seconds"] for entry in summary["lines"])
    done = summary["counts"]["done"]
    assert done == len(summary["lines"]), summary["counts"]
    return {"wall_s": round(wall, 2), "images_per_s": round(done / wall, 3), "line_s": round(inside / done, 3),
            "lines": done}


def run(lines: int, steps: int) -> dict:
    import ray

    from kekong.scale.bounds import WorkerBounds
    from kekong.scale.ray_pool import RayPool, connect

    root = Path(tempfile.mkdtemp(prefix="kekong-scale-bench-"))
    warm = manifest(root / "warm.jsonl", 2, steps, 1000)
    work = manifest(root / "work.jsonl", lines, steps, 1)
    results: dict = {"lines": lines, "steps": steps, "cpus": os.cpu_count(), "load": os.getloadavg()[0]}
    local = Local(threads=1)
    run_batch(warm, Options(root / "warm-local", layers=LAYERS), local)
    results["one process"] = timed(work, root / "local", local)
    started = time.perf_counter()
    connect(None, cpus=2)
    results["ray_start_s"] = round(time.perf_counter() - started, 2)
    try:
        for workers in (1, 2):
            pool = RayPool(WorkerBounds(workers, 1.0))
            started = time.perf_counter()
            pool.start()
            warmed = run_batch(warm, Options(root / f"warm-{workers}", layers=LAYERS), pool)
            first = time.perf_counter() - started
            # a fresh actor's first line: the model read from the shared path and loaded, then the line
            first_line = max(entry["seconds"] for entry in warmed["lines"])
            results[f"ray {workers} worker(s)"] = {**timed(work, root / f"ray{workers}", pool),
                                                  "start_and_warm_up_s": round(first, 2),
                                                  "first_line_s": round(first_line, 2)}
            if workers == 1:
                handle = pool.slots[0].handle
                ray.get(handle.stats.remote())
                calls = 200
                started = time.perf_counter()
                for _ in range(calls):
                    ray.get(handle.stats.remote())
                results["ray_call_ms"] = round((time.perf_counter() - started) / calls * 1000, 2)
            pool.close()
        for workers in (1, 2):
            results[f"serve {workers} worker(s)"] = serve_jobs(root / f"serve{workers}", workers, lines, steps)
    finally:
        ray.shutdown()
    one, two = results["ray 1 worker(s)"], results["ray 2 worker(s)"]
    results["ratio_2_vs_1"] = round(two["images_per_s"] / one["images_per_s"], 2)
    results["serve_ratio_2_vs_1"] = round(results["serve 2 worker(s)"]["jobs_per_s"]
                                          / results["serve 1 worker(s)"]["jobs_per_s"], 2)
    results["overhead_per_line_ms"] = round((one["wall_s"] / one["lines"] - one["line_s"]) * 1000, 1)
    # one core's seconds per image: the least disturbed of the three measurements of the same lines
    per_image = min(results[name]["line_s"] for name in ("one process", "ray 1 worker(s)", "ray 2 worker(s)"))
    results["per_image_s"] = per_image
    results["estimate_100"] = {"images_per_s": round(100 / per_image, 1),
                               "usd_per_1000_images": round(1000 * per_image / 3600 * CPU_HOUR_USD, 4),
                               "driver_bound_images_per_s": round(1000 / max(results["overhead_per_line_ms"], 0.1), 1)}
    return results


def serve_jobs(folder: Path, workers: int, jobs: int, steps: int) -> dict:
    """`kekong serve --ray --workers N` in this process (the API's services, no HTTP): warm each
    actor with a job, then post `jobs` at once and time them to the last one done."""
    from kekong.scale.bounds import WorkerBounds
    from kekong.server.config import ServerConfig
    from kekong.server.services import Services

    services = Services.start(ServerConfig(data_dir=folder, ui=False, ray="local",
                                           ray_pool=WorkerBounds(workers, 1.0)))
    try:
        request = {"prompt": "a red star", "width": 64, "height": 64, "steps": steps}

        def run_all(count: int, first_seed: int) -> float:
            started = time.perf_counter()
            ids = [services.submit({**request, "seed": first_seed + i}, "generate")[0].id for i in range(count)]
            for job_id in ids:
                assert services.worker.finished_event(job_id).wait(900), job_id
                assert services.store.get(job_id).status == "done", services.store.get(job_id).error
            return time.perf_counter() - started

        run_all(workers, 5000)  # each actor loads torch and the model once
        wall = run_all(jobs, 1)
        return {"jobs": jobs, "wall_s": round(wall, 2), "jobs_per_s": round(jobs / wall, 3)}
    finally:
        services.stop()


def table(r: dict) -> str:
    rows = ["| executor | images/s | seconds per line (inside) | wall s | start + warm-up s | fresh actor's first "
            "line s |", "|---|---|---|---|---|---|"]
    for name in ("one process", "ray 1 worker(s)", "ray 2 worker(s)"):
        e = r[name]
        rows.append(f"| {name} | {e['images_per_s']} | {e['line_s']} | {e['wall_s']} | "
                    f"{e.get('start_and_warm_up_s', '—')} | {e.get('first_line_s', '—')} |")
    est = r["estimate_100"]
    rows += ["", f"2 vs 1 worker: {r['ratio_2_vs_1']}×; overhead per line (1 worker, wall − inside): "
             f"{r['overhead_per_line_ms']} ms; Ray actor call round trip {r['ray_call_ms']} ms; Ray start "
             f"{r['ray_start_s']} s; load average at start {r['load']:.1f} on {r['cpus']} CPUs",
             f"100 workers (paper): {est['images_per_s']} images/s at the measured {r['per_image_s']} s per image, "
             f"${est['usd_per_1000_images']} per 1000 images at ${CPU_HOUR_USD}/vCPU-hour; one driver "
             f"dispatches at most ≈ {est['driver_bound_images_per_s']} lines/s at this overhead",
             "", "| kekong serve --ray | jobs | jobs/s | wall s |", "|---|---|---|---|"]
    for name in ("serve 1 worker(s)", "serve 2 worker(s)"):
        e = r[name]
        rows.append(f"| {name.removeprefix('serve ')} | {e['jobs']} | {e['jobs_per_s']} | {e['wall_s']} |")
    rows += ["", f"serve, 2 vs 1 worker: {r['serve_ratio_2_vs_1']}× (jobs posted at once; one job per actor)"]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=12)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = run(args.lines, args.steps)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
