"""GPU check: several small trials packed on one GPU against one trial alone (needs a CUDA machine).

    python bench/gpu_check.py                # k = 1, 2, 4, 8 trials per GPU, ~5 min on one GPU
    python bench/gpu_check.py --k 1 4 --epochs 3

For each k it runs a study of k identical course-MLP trials on builtin:lesions with
resources.gpus_per_worker = 1/k (so Tune packs all k on the GPU at once), and prints each trial's
steady-state images/s, the aggregate over the k trials, and that aggregate against k = 1. It also
runs one trial with train.amp=true (bf16 autocast) and one as a 1-worker DDP group (the nccl path), and
first, in this process, the limit on the GPU: the course MLP on in-memory tensors with torch's default
Adam, with the fused Adam runner builds (runner.trial.engine.build_optimizer), and fused + bf16 autocast.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def study_file(tmp: Path, k: int, epochs: int) -> Path:
    p = tmp / f"gpu_k{k}.py"
    p.write_text(
        "from runner.config import *\n"
        f"study = Study(name='gpu_k{k}', base=TrialConfig(train=TrainConfig(epochs={epochs})),\n"
        f"              variants={{f'copy{{i}}': {{}} for i in range({k})}})\n"
    )
    return p


def run(tmp: Path, k: int, epochs: int, extra: list[str], name: str) -> dict:
    cpus = max(1, (os.cpu_count() or 1) // k)
    args = [
        sys.executable,
        "-m",
        "runner.tune",
        str(study_file(tmp, k, epochs)),
        "--storage",
        str(tmp),
        "--name",
        name,
        "--set",
        f"resources.gpus_per_worker={1 / k:.4f}",
        "--set",
        f"resources.cpus_per_worker={cpus}",
        *extra,
    ]
    t0 = time.time()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    rates = []
    for rj in (tmp / name).glob("*/result.json"):
        rows = [json.loads(line) for line in rj.read_text().splitlines() if '"epoch"' in line]
        rates.append(statistics.median(r["images_per_second"] for r in rows[1:] or rows))
    return {"per_trial": statistics.median(rates), "aggregate": sum(rates), "wall": wall, "trials": len(rates)}


def kernel_limits(steps: int = 200, batch: int = 32) -> dict:
    """images/s of the course MLP on the GPU, in-memory tensors: default Adam, fused Adam, fused + bf16."""
    import torch
    from torch.nn import functional as F

    sys.path.insert(0, str(ROOT))
    from runner.config import ModelConfig, OptimConfig
    from runner.trial.engine import build_optimizer
    from runner.trial.model import build_model

    dev = torch.device("cuda")
    x, y = torch.randn(steps * batch, 12288, device=dev), torch.randint(0, 9, (steps * batch,), device=dev)
    out = {}
    for label, fused, amp in (
        ("default Adam", False, False),
        ("fused Adam", True, False),
        ("fused + bf16", True, True),
    ):
        torch.manual_seed(0)
        model = build_model(ModelConfig(hidden=(512, 128)), 12288, 9).to(dev)
        opt = build_optimizer(OptimConfig(), model.parameters(), fused=fused)
        assert not fused or opt.param_groups[0]["fused"], "runner's optimizer on CUDA is the fused kernel"
        for _ in range(2):  # the first pass warms up kernels and the allocator
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for i in range(0, len(y), batch):
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    loss = F.cross_entropy(model(x[i : i + batch]).float(), y[i : i + batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            torch.cuda.synchronize()
        out[label] = len(y) / (time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8], help="trials per GPU")
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible to torch; run it on a GPU machine")
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}, {os.cpu_count()} CPUs"
    )
    for label, rate in kernel_limits().items():
        print(f"limit, {label:<12}  {rate:8.0f} images/s (course MLP, batch 32, in-memory tensors on the GPU)")
    missing = [m for m in ("ray", "albumentations") if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"studies skipped: {', '.join(missing)} not installed here; `pip install -e .` first to compare k trials per GPU"
        )
        return
    with tempfile.TemporaryDirectory(prefix="runner-gpu-") as tmp:
        tmp = Path(tmp)
        results = {k: run(tmp, k, args.epochs, [], f"k{k}") for k in args.k}
        amp = run(tmp, 1, args.epochs, ["--set", "train.amp=true"], "amp")
        ddp = run(tmp, 1, args.epochs, ["--set", "resources.workers_per_trial=1"], "ddp")
    base = results.get(1, {}).get("aggregate")
    print(f"\n{'trials/GPU':>10}  {'images/s per trial':>18}  {'aggregate':>9}  {'vs k=1':>6}  {'study wall s':>12}")
    for k, r in results.items():
        if "error" in r:
            print(f"{k:>10}  error: {r['error']}")
            continue
        ratio = f"{r['aggregate'] / base:6.2f}" if base else "     -"
        print(f"{k:>10}  {r['per_trial']:>18.0f}  {r['aggregate']:>9.0f}  {ratio}  {r['wall']:>12.1f}")
    for label, r in (("bf16 autocast (train.amp)", amp), ("1-worker DDP group (nccl)", ddp)):
        print(
            f"{label}: "
            + (f"error: {r['error']}" if "error" in r else f"{r['per_trial']:.0f} images/s, study {r['wall']:.1f} s")
        )


if __name__ == "__main__":
    main()
