"""Benchmark: runner against the course's own training loop, measured in one run on this machine.

    python bench/bench.py                 # the full regularization study, one seed (~15 min on 2 cores)
    python bench/bench.py --epochs 3      # quicker: every variant capped at 3 epochs, no early stopping

Prints, side by side:
  a. the course loop: PIL decode every epoch, per-sample albumentations, DataLoader(num_workers=0),
     batch 32, the same MLP and optimizer (all cores' threads, as the notebook ran) -- images/s
  b. the compute limit: the same model, batch size and thread count as one runner trial, on
     in-memory tensors, no augmentation -- images/s
  c. runner's steady-state images/s inside a trial (per-epoch timing after the first epoch)
  d. fixed cost per trial (trial entered -> first training step) and per study (command start ->
     first step; last step -> exit)
  e. wall time of configs/regularization_study.py (one seed) against the same trials, same epochs,
     one after another with the course loop
  f. peak memory (PSS) of the whole process tree per concurrent trial
and the ratios c/a, c/b and e(runner)/e(course loop), each against its target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.config import DataConfig, TrialConfig  # noqa: E402
from runner.data.source import load_images  # noqa: E402

TARGETS = {"c/b": 0.9, "fixed cost per trial (s)": 5.0, "e runner/course": 1.0, "peak GiB per trial": 1.5}


# --------------------------------------------------------------------------- data on disk, like the course's


def write_course_folder(root: Path) -> Path:
    """builtin:lesions as PNG files in ROOT/train/CLASS and ROOT/val/CLASS (the course's layout)."""
    from PIL import Image

    s = load_images(DataConfig())
    tx, ty, vx, vy, classes = s.train_x, s.train_y, s.val_x, s.val_y, s.classes
    for split, xs, ys in (("train", tx, ty), ("val", vx, vy)):
        for i, (x, y) in enumerate(zip(xs, ys)):
            d = root / split / classes[y]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x).save(d / f"{i:04d}.png")
    return root


# --------------------------------------------------------------------------- a. the course loop


def course_loop(folder: Path, cfg: TrialConfig, epochs: int, threads: int) -> tuple[float, float]:
    """The notebook's loop: (train images/s, wall seconds for ``epochs`` epochs incl. one validation pass each)."""
    import albumentations as A
    import torch
    from albumentations.pytorch import ToTensorV2
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    from runner.engine import build_optimizer
    from runner.model import build_model

    torch.set_num_threads(threads)
    classes = sorted(p.name for p in (folder / "train").iterdir())
    norm = A.Normalize(mean=cfg.augment.mean, std=cfg.augment.std)
    train_tf = A.Compose(
        [A.Resize(64, 64), A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=0.2), norm, ToTensorV2()]
    )
    val_tf = A.Compose([A.Resize(64, 64), norm, ToTensorV2()])

    class Folder(Dataset):
        def __init__(self, split, tf):
            self.items = [(p, classes.index(p.parent.name)) for p in sorted((folder / split).glob("*/*.png"))]
            self.tf = tf

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            path, label = self.items[i]
            img = np.array(Image.open(path).convert("RGB"))  # decoded again every epoch, as the notebook did
            return self.tf(image=img)["image"], label

    train = DataLoader(Folder("train", train_tf), batch_size=cfg.train.batch_size, shuffle=True, num_workers=0)
    val = DataLoader(Folder("val", val_tf), batch_size=cfg.train.batch_size, num_workers=0)
    torch.manual_seed(0)
    model = build_model(cfg.model, 64 * 64 * 3, len(classes))
    opt = build_optimizer(cfg.optim, model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    t0, train_s, seen = time.perf_counter(), 0.0, 0
    for _ in range(epochs):
        model.train()
        te = time.perf_counter()
        for x, y in train:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            seen += len(y)
        train_s += time.perf_counter() - te
        model.eval()
        with torch.no_grad():
            for x, _y in val:
                model(x)
    return seen / train_s, time.perf_counter() - t0


# --------------------------------------------------------------------------- b. the compute limit


def compute_limit(cfg: TrialConfig, n: int, threads: int, epochs: int = 3) -> float:
    """Train images/s of the same model, batch size and threads on in-memory tensors, no augmentation."""
    import torch
    from torch.nn import functional as F

    from runner.engine import build_optimizer
    from runner.model import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(n, 64 * 64 * 3)
    y = torch.randint(0, 9, (n,))
    model = build_model(cfg.model, 64 * 64 * 3, 9)
    opt = build_optimizer(cfg.optim, model.parameters())
    rates = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for i in range(0, n, cfg.train.batch_size):
            loss = F.cross_entropy(model(x[i : i + cfg.train.batch_size]), y[i : i + cfg.train.batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates[1:])  # the first epoch warms up allocators and caches


def _compute_limit_worker(args) -> float:
    cfg_dict, n, threads = args
    return compute_limit(TrialConfig.from_dict(cfg_dict), n, threads)


def compute_limit_concurrent(cfg: TrialConfig, n: int, threads: int, copies: int) -> float:
    """b measured with ``copies`` processes at once, as runner runs that many trials: per-process images/s.
    Separates what concurrency costs (shared cores, memory bandwidth of Adam over 6 M weights) from data loading."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(copies) as pool:
        return statistics.median(pool.map(_compute_limit_worker, [(cfg.to_dict(), n, threads)] * copies))


# --------------------------------------------------------------------------- f. memory of a process tree


class TreeMemory(threading.Thread):
    """Samples the PSS of a driver and every process of its Ray cluster (marked RUNNER_DRIVER_PID)."""

    def __init__(self, driver_pid: int, every_s: float = 0.5):
        super().__init__(daemon=True)
        self.driver, self.every, self.peak, self.stop = driver_pid, every_s, 0, False

    def pids(self) -> list[int]:
        marker = f"RUNNER_DRIVER_PID={self.driver}\0".encode()
        out = [self.driver]
        for p in Path("/proc").glob("[0-9]*"):
            try:
                if marker in (p / "environ").read_bytes():
                    out.append(int(p.name))
            except OSError:
                pass
        return out

    @staticmethod
    def pss_kib(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, sum(self.pss_kib(p) for p in self.pids()))
            time.sleep(self.every)


# --------------------------------------------------------------------------- c, d, e, f: runner itself


def run_runner(folder: Path, epochs: int | None, out: Path) -> dict:
    study_file = out / "bench_study.py"
    study_file.write_text(
        "import dataclasses\nfrom runner.config import load_study\n"
        f"study = dataclasses.replace(load_study({str(ROOT / 'configs/regularization_study.py')!r}), seeds=(0,), name='bench')\n"
    )
    args = [sys.executable, "-m", "runner.tune", str(study_file), "--storage", str(out), "--set", f"data.path={folder}"]
    if epochs:
        args += ["--set", f"train.epochs={epochs}", "--set", "train.patience=0"]
    env = {**os.environ, "RUNNER_CACHE_DIR": str(out / "cache")}
    t0 = time.time()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mem = TreeMemory(proc.pid)
    mem.start()
    stdout, stderr = proc.communicate()
    t_exit = time.time()
    mem.stop = True
    if proc.returncode != 0:
        sys.exit(f"runner failed ({proc.returncode}):\n{stdout[-2000:]}\n{stderr[-2000:]}")
    results = out / "bench"
    trials = []
    for rj in sorted(results.glob("*/result.json")):
        rows = [json.loads(line) for line in rj.read_text().splitlines() if '"epoch"' in line]
        params = json.loads((rj.parent / "params.json").read_text())["spec"]
        trials.append(
            {
                "variant": params["variant"],
                "epochs": len(rows),
                "cfg": TrialConfig.from_dict(params["trial"]),
                "ips": [r["images_per_second"] for r in rows[1:]] or [rows[0]["images_per_second"]],
                "setup": rows[0]["setup_seconds"],
                "first_step": rows[0]["first_step_time"],
                "last": rows[-1]["time"],
            }
        )
    concurrent = json.loads((results / "study.json").read_text())["max_concurrent"]
    return {
        "wall": t_exit - t0,
        "trials": trials,
        "concurrent": concurrent,
        "peak_gib": mem.peak / 2**20,
        "start_to_first_step": min(t["first_step"] for t in trials) - t0,
        "last_step_to_exit": t_exit - max(t["last"] for t in trials),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, help="cap every variant at N epochs, no early stopping (quicker)")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="runner-bench-") as tmp:
        tmp = Path(tmp)
        folder = write_course_folder(tmp / "lesions")
        print(
            f"machine: {cores} cores; data: builtin:lesions as 882 PNG files (702 train / 180 val) in {folder}",
            flush=True,
        )
        print("running runner on configs/regularization_study.py (one seed) ...", flush=True)
        r = run_runner(folder, args.epochs, tmp)
        trials = r["trials"]
        per_trial_threads = max(1, round(trials[0]["cfg"].resources.cpus_per_worker))
        base = trials[0]["cfg"]
        print("running the course loop on the same trials, one after another ...", flush=True)
        course_wall, course_rates = 0.0, []
        for t in trials:
            rate, wall = course_loop(folder, t["cfg"], t["epochs"], threads=cores)
            course_wall += wall
            course_rates.append(rate)
        a = statistics.median(course_rates)
        b = compute_limit(base, 702, threads=per_trial_threads)
        b_conc = compute_limit_concurrent(base, 702, per_trial_threads, r["concurrent"])
        c = statistics.median(statistics.median(t["ips"]) for t in trials)
        setup = statistics.median(t["setup"] for t in trials)
        peak_per_trial = r["peak_gib"] / r["concurrent"]

    rows = [
        ("a. course loop, train images/s", f"{a:8.0f}", f"({cores} threads, decode + augment every epoch)"),
        ("b. compute limit, train images/s", f"{b:8.0f}", f"({per_trial_threads} thread(s), as one runner trial)"),
        (
            "   compute limit, copies at once, images/s",
            f"{b_conc:8.0f}",
            f"(b with {r['concurrent']} processes at once, per process)",
        ),
        ("c. runner in a trial, images/s", f"{c:8.0f}", "(median over trials of the median epoch after the first)"),
        ("d. fixed cost per trial, median s", f"{setup:8.2f}", "(trial entered -> first training step)"),
        (
            "   study start -> first step, s",
            f"{r['start_to_first_step']:8.1f}",
            "(command start, incl. Ray start and decode)",
        ),
        ("   last step -> exit, s", f"{r['last_step_to_exit']:8.1f}", "(summary, report, Ray shutdown)"),
        (
            "e. runner study wall, s",
            f"{r['wall']:8.1f}",
            f"({len(trials)} trials, {r['concurrent']} at a time, {sum(t['epochs'] for t in trials)} epochs in all)",
        ),
        ("   course loop, same trials in a row, s", f"{course_wall:8.1f}", ""),
        (
            "f. peak memory (PSS) per concurrent trial, GiB",
            f"{peak_per_trial:8.2f}",
            f"({r['peak_gib']:.2f} GiB in all)",
        ),
    ]
    w = max(len(k) for k, _, _ in rows)
    print()
    for k, v, note in rows:
        print(f"{k:<{w}}  {v}  {note}")
    print()
    checks = [
        ("c/a  (runner vs course loop, per trial)", c / a, None),
        ("c/b  (data loading hidden when >= 0.9)", c / b, TARGETS["c/b"]),
        ("c/b' (the same, b with as many trials at once)", c / b_conc, TARGETS["c/b"]),
        ("e runner / e course loop (<= 1.0)", r["wall"] / course_wall, TARGETS["e runner/course"]),
        ("fixed cost per trial, s (<= 5)", setup, TARGETS["fixed cost per trial (s)"]),
        ("peak GiB per concurrent trial (<= 1.5)", peak_per_trial, TARGETS["peak GiB per trial"]),
    ]
    for k, v, target in checks:
        verdict = (
            "" if target is None else ("  met" if (v >= target if k.startswith("c/") else v <= target) else "  MISSED")
        )
        print(f"{k:<{w}}  {v:8.2f}{verdict}")


if __name__ == "__main__":
    main()
