# Two commands matter: `make demo` and `make test`. Both set up .venv when needed.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTHON ?= python3

.PHONY: setup demo test lint bench shipped-model clean browser

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch first and pinned: the CPU build on disk; anything unpinned would pull a CUDA build.
	$(VENV)/bin/pip install -q torch==2.13.0
	# [ray]: `kekong batch --ray` (optional for users; installed here so the tests cover it).
	$(VENV)/bin/pip install -q -e ".[dev,ray]"
	# invisible-watermark without its dependencies: they would add a second OpenCV distribution.
	$(VENV)/bin/pip install -q --no-deps invisible-watermark==0.2.0
	# geffnet (NormalBAE's EfficientNet-B5) without its dependencies: it lists torchvision, never imports it.
	$(VENV)/bin/pip install -q --no-deps geffnet==1.0.2
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/kekong demo --out demo-output

lint: setup
	$(VENV)/bin/ruff check .
	# The package map (pyproject's [tool.importlinter]): no cycles; the core never imports cli/server/ui.
	$(VENV)/bin/lint-imports --no-cache --no-logo

# The browser test drives Debian's chromium headless; installed here when missing (needs root, as in CI).
browser:
	@command -v chromium >/dev/null || (apt-get install -y -q chromium >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) || \
		echo "chromium could not be installed: the browser test will be skipped"

test: setup lint browser
	$(PY) -m pytest -q

# Detector timings on one pinned core (mediapipe's own thread count can't be set).
bench: setup
	taskset -c 0 $(PY) benchmarks/detectors.py
	# OpenPose vs mediapipe alone on the same pixels (issue 28 item 5: goal ≤ mediapipe's own model time + 15%).
	taskset -c 0 $(PY) benchmarks/openpose.py
	taskset -c 0 $(PY) benchmarks/warp.py
	$(PY) benchmarks/prompt_expand.py
	$(PY) benchmarks/generation.py
	# Issue 28's table: stock vs exact vs fast, fp32 vs fp16/bf16 storage, FLOP efficiency, then start-up
	# (benchmarks/startup.py); exact mode's headroom (channels_last, jit.freeze + oneDNN, torch.compile); fast mode's IoU.
	$(PY) benchmarks/speed.py --sizes 256 512 --units 1 2 --ends 1.0 0.5 --startup
	# fp32 vs fp16/bf16 storage vs bf16 arithmetic, one UNet call at SD 1.5 and SDXL size, 256² and 512².
	$(PY) benchmarks/precision.py --latent 32
	$(PY) benchmarks/precision.py --latent 64 --calls 1
	$(PY) benchmarks/headroom.py --size 512
	$(PY) benchmarks/fast_fidelity.py --count 60
	# The fidelity score separates followed from ignored controls (AUC) and tracks the shapes IoU (Spearman).
	$(PY) benchmarks/fidelity.py
	# Video: warp error of the temporal switches vs per-frame generation, shapes IoU kept (issue 27).
	$(PY) benchmarks/video.py --strip docs/video-strip.gif
	# rivaGan, invisible-watermark's learned method, runs on onnxruntime (its models are in the wheel).
	$(VENV)/bin/pip install -q onnxruntime
	$(PY) benchmarks/watermark.py
	# Detect load, queue overhead and the issue-20 probes (flood, half-open bodies, 70 MB chunked, reused key,
	# Origin: null, fair queue, --max-disk-gb); then schemathesis over every route at 50 examples.
	$(PY) benchmarks/server.py --probes
	KEKONG_SCHEMATHESIS_EXAMPLES=50 $(PY) -m pytest -q tests/test_server_openapi.py -k schemathesis
	# kekong batch on Ray: the 20-line byte-identity and SIGKILL tests, then 1 vs 2 local workers (batch and
	# serve --ray); Ray Serve replicas when the ray-serve extra is installed (skipped otherwise).
	KEKONG_SLOW=1 $(PY) -m pytest -q tests/test_scale_ray.py tests/test_ray_serve.py
	$(PY) benchmarks/scale.py
	# Real-size SD 1.5 / SDXL memory (random weights, built once into ~/.cache/kekong/bench-models, ≈ 13 GB).
	$(PY) benchmarks/memory.py

# Retrain the shipped kekong-shapes model from nothing (< 60 min on 2 CPU cores; resumable).
shipped-model: setup
	$(PY) -m kekong.train.shipped --run runs/kekong-shapes

clean:
	rm -rf $(VENV) demo-output .pytest_cache
