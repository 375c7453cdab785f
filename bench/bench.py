"""Benchmark: runner against its limits and against the course's own loop, measured in one run on this machine.

    python bench/bench.py                       # configs/init_study.py, 3 seeds (12 trials; ~6 min on 2 cores)
    python bench/bench.py --epochs 3 --seeds 0  # quicker
    python bench/bench.py --study configs/regularization_study.py --seeds 0

Prints, side by side:
  a. the course loop: PIL decode every epoch, per-sample albumentations, DataLoader(num_workers=0),
     batch 32, the same MLP, torch's default (unfused) optimizer, all cores' threads -- images/s
  b. the limit: the same model, batch size and thread count as one runner trial, on in-memory tensors,
     no augmentation, fused optimizer, fp32 -- images/s; and the same with bf16 autocast where the CPU
     has native bf16 (train.amp)
  c. runner's steady-state images/s inside a trial (per-epoch timing after the first epoch)
  d. fixed costs: per trial (trial entered -> first training step) and per study, piece by piece
     (command start -> first step; last step -> exit), and the CPU time all the study's processes used
     before its first step: divided by the cores, the shortest start this machine allows
  e. the study's wall time against the same trials, same epochs, one after another with the course loop
  f. per-epoch overhead: the share of an epoch's wall time (report to report) spent outside training
  g. peak memory (PSS) of the whole process tree per concurrent trial
and the ratios against the targets of issue #15.
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

from runner.config import DataConfig, TrialConfig, parse_seeds  # noqa: E402
from runner.data.source import load_images  # noqa: E402

TRAIN_IMAGES = 702  # builtin:lesions' train split, as the course folder holds it
# issue #15: (value, ">=" or "<=")
TARGETS = {
    "c/b": (0.9, ">="),
    "e runner / e course loop": (0.5, "<="),
    "study start -> first step, s": (5.0, "<="),
    "last step -> exit, s": (2.0, "<="),
    "per-epoch overhead, share": (0.10, "<="),
    "peak GiB per concurrent trial": (1.2, "<="),
}


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

    from runner.trial.engine import build_optimizer
    from runner.trial.model import build_model

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
    opt = build_optimizer(cfg.optim, model.parameters(), fused=False)  # torch's default kernel, as the notebook
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


def compute_limit(cfg: TrialConfig, n: int, threads: int, epochs: int = 3, amp: bool = False) -> float:
    """Train images/s of the same model, batch size and threads on in-memory tensors, no augmentation, fused
    optimizer; ``amp``: bf16 autocast (on a CPU with native bf16)."""
    import torch
    from torch.nn import functional as F

    from runner.trial.engine import build_optimizer
    from runner.trial.model import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(n, 64 * 64 * 3)
    y = torch.randint(0, 9, (n,))
    model = build_model(cfg.model, 64 * 64 * 3, 9)
    opt = build_optimizer(cfg.optim, model.parameters(), fused=True)
    rates, bs = [], cfg.train.batch_size
    for _ in range(epochs):
        t0 = time.perf_counter()
        for i in range(0, n, bs):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(model(x[i : i + bs]).float(), y[i : i + bs])
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


# --------------------------------------------------------------------------- d, g. CPU and memory of a process tree


class TreeSampler(threading.Thread):
    """Samples a driver and every process of its Ray cluster (marked RUNNER_DRIVER_PID): the peak of their summed
    PSS, and each process's CPU time (user + system) over time, so the CPU work done before a moment is known."""

    def __init__(self, driver_pid: int, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.driver, self.every, self.peak, self.stop = driver_pid, every_s, 0, False
        self.cpu: dict[int, list[tuple[float, float]]] = {}  # pid -> [(time, CPU seconds so far)]
        self.tick = os.sysconf("SC_CLK_TCK")

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

    def cpu_s(self, pid: int) -> float | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime

    def run(self):
        while not self.stop:
            pids, now = self.pids(), time.time()
            self.peak = max(self.peak, sum(self.pss_kib(p) for p in pids))
            for p in pids:
                if (c := self.cpu_s(p)) is not None:
                    self.cpu.setdefault(p, []).append((now, c))
            time.sleep(self.every)

    def cpu_before(self, t: float) -> float:
        """CPU seconds all sampled processes had used by time ``t`` (each process's last sample before it)."""
        return sum(([c for when, c in h if when <= t] or [0.0])[-1] for h in self.cpu.values())


# --------------------------------------------------------------------------- c, d, e, f, g: runner itself

# the pieces of a study's fixed time: (label, module, function) wrapped in the child that runs the study
PIECES = (  # those before TUNE happen before it, those after it after; "- " ones are part of the piece above
    ("prepare (study file, storage, decode, audit)", "runner.driver.prepare", "prepare"),
    ("- decode, audit", "runner.driver.prepare", "_load_data"),
    ("ray.init", "runner.driver.cluster", "init_ray"),
    ("Ray Data (datasets on the driver)", "runner.data.ray_data", "to_ray_datasets"),
    ("Tune (all trials)", "runner.driver.tuner", "run_trials"),
    ("summary tables", "runner.results.tables", "write"),
    ("report.html", "runner.driver.flow", "_write_report"),
    (
        "ray.shutdown",
        "ray",
        "shutdown",
    ),  # not called when a study ran to its end: RayCluster.finish kills the local Ray instead
)
TUNE = 4  # PIECES[TUNE] is the Tune run


def child(marks_file: str, argv: list[str]) -> int:
    """Run ``python -m runner.tune ARGV`` in this process with PIECES timed; their (start, end) go to marks_file."""
    import functools
    import importlib

    marks: dict = {"imports_done": time.time()}
    for label, module, name in PIECES:
        mod = importlib.import_module(module)

        def timed(*a, _f=getattr(mod, name), _label=label, **k):
            start = time.time()
            try:
                return _f(*a, **k)
            finally:
                marks.setdefault(_label, (start, time.time()))  # the first call: what the study waits for

        setattr(mod, name, functools.wraps(getattr(mod, name))(timed))
    from runner.driver import cli

    try:
        return cli.main(argv, exiting=True)
    finally:
        marks["exit"] = time.time()
        Path(marks_file).write_text(json.dumps(marks))


def study_file(out: Path, study: str, seeds: str | None) -> Path:
    f = out / "bench_study.py"
    seeds_line = "" if seeds is None else f", seeds={tuple(parse_seeds(seeds))!r}"
    f.write_text(
        "import dataclasses\nfrom runner.config import load_study\n"
        f"study = dataclasses.replace(load_study({str(ROOT / study)!r}), name='bench'{seeds_line})\n"
    )
    return f


def run_runner(folder: Path, study: str, seeds: str | None, epochs: int | None, out: Path) -> dict:
    marks_file = out / "marks.json"
    args = [sys.executable, str(Path(__file__).resolve()), "--child", str(marks_file), str(study_file(out, study, seeds)),
            "--storage", str(out), "--set", f"data.path={folder}"]  # fmt: skip
    if epochs:
        args += ["--set", f"train.epochs={epochs}", "--set", "train.patience=0"]
    env = {**os.environ, "RUNNER_CACHE_DIR": str(out / "cache")}
    t0 = time.time()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mem = TreeSampler(proc.pid)
    mem.start()
    stdout, stderr = proc.communicate()
    t_exit = time.time()
    mem.stop = True
    if proc.returncode != 0:
        sys.exit(f"runner failed ({proc.returncode}):\n{stdout[-2000:]}\n{stderr[-2000:]}")
    trials = [_trial(rj) for rj in sorted((out / "bench").glob("*/result.json"))]
    concurrent = json.loads((out / "bench" / "study.json").read_text())["max_concurrent"]
    cpu_to_first_step = mem.cpu_before(min(t["first_step"] for t in trials))
    return {"t0": t0, "exit": t_exit, "wall": t_exit - t0, "trials": trials, "concurrent": concurrent,
            "peak_gib": mem.peak / 2**20, "marks": json.loads(marks_file.read_text()),
            "cpu_to_first_step": cpu_to_first_step}  # fmt: skip


def _trial(rj: Path) -> dict:
    """One trial's result.json: steady-state images/s, fixed cost, first/last step times, per-epoch overhead."""
    rows = [json.loads(line) for line in rj.read_text().splitlines() if '"epoch"' in line]
    params = json.loads((rj.parent / "params.json").read_text())["spec"]
    cfg = TrialConfig.from_dict(params["trial"])
    return {
        "variant": params["variant"],
        "epochs": len(rows),
        "cfg": cfg,
        "ips": [r["images_per_second"] for r in rows[1:]] or [rows[0]["images_per_second"]],
        "setup": rows[0]["setup_seconds"],
        "entered": rows[0]["first_step_time"] - rows[0]["setup_seconds"],
        "first_step": rows[0]["first_step_time"],
        "last": rows[-1]["time"],
        # per epoch after the first: (wall since the previous epoch's result, that result row)
        "cycles": [(b["time"] - a["time"], b) for a, b in zip(rows, rows[1:])],
    }


def fixed_costs(r: dict) -> list[tuple[str, float, str]]:
    """The study's fixed time, piece by piece, in the order they happen: (label, value, unit); the unit is seconds
    but for the CPU time spent before the first step."""
    m, t0 = r["marks"], r["t0"]
    first_entered = min(t["entered"] for t in r["trials"])
    first_step = min(t["first_step"] for t in r["trials"])
    last_step = max(t["last"] for t in r["trials"])
    tune_start, tune_end = m[PIECES[TUNE][0]]
    rows = [("interpreter + imports", m["imports_done"] - t0)]
    rows += [(label, m[label][1] - m[label][0]) for label, *_ in PIECES[:TUNE] if label in m]
    rows += [
        ("Tune start -> first trial process entered", first_entered - tune_start),
        ("first trial entered -> its first step", first_step - first_entered),
        ("= study start -> first step", first_step - t0),
    ]
    cpu = [
        ("  CPU time of the study's processes by then", r["cpu_to_first_step"], "core-s"),
        ("  the same / cores: start -> first step if no core were ever idle", r["cpu_to_first_step"] / os.cpu_count(), "s"),
    ]  # fmt: skip
    end = [("last step -> Tune returns", tune_end - last_step)]
    end += [(label, m[label][1] - m[label][0]) for label, *_ in PIECES[TUNE + 1 :] if label in m]
    end += [("stopping the local Ray, exit (after the CLI returned)", r["exit"] - m["exit"])]
    end += [("= last step -> exit", r["exit"] - last_step)]
    return [(k, v, "s") for k, v in rows] + cpu + [(k, v, "s") for k, v in end]


def epoch_overhead(trials: list[dict], n_train: int) -> tuple[float, float]:
    """Median share of an epoch's wall time (one report to the next) outside the training steps, and outside
    training and validation (checkpoint, TensorBoard, the report to Tune)."""
    outside_train, outside_both = [], []
    for t in trials:
        for dt, row in t["cycles"]:
            outside_train.append(1 - n_train / row["images_per_second"] / dt)
            outside_both.append(1 - row["epoch_seconds"] / dt)
    return statistics.median(outside_train), statistics.median(outside_both)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        from runner.driver.cli import exit_process

        exit_process(child(sys.argv[2], sys.argv[3:]))  # as python -m runner.tune ends
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", default="configs/init_study.py", help="study file (default configs/init_study.py)")
    ap.add_argument("--seeds", help="the study's seeds instead of the file's, e.g. 0 or 0-2")
    ap.add_argument("--epochs", type=int, help="cap every variant at N epochs, no early stopping (quicker)")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="runner-bench-") as tmp:
        tmp = Path(tmp)
        folder = write_course_folder(tmp / "lesions")
        print(f"machine: {cores} cores; data: builtin:lesions as 882 PNG files (702 train / 180 val) in {folder}",
              flush=True)  # fmt: skip
        print(f"running runner on {args.study} ...", flush=True)
        r = run_runner(folder, args.study, args.seeds, args.epochs, tmp)
        print("running the course loop on the same trials, one after another ...", flush=True)
        course_wall, course_rates = 0.0, []
        for t in r["trials"]:
            rate, wall = course_loop(folder, t["cfg"], t["epochs"], threads=cores)
            course_wall += wall
            course_rates.append(rate)
        limits = measure_limits(r["trials"][0]["cfg"], r["concurrent"])
    print_table(r, limits, statistics.median(course_rates), course_wall, cores)


def measure_limits(cfg: TrialConfig, concurrent: int) -> dict:
    from runner.study.resources import cpu_bf16

    threads = max(1, round(cfg.resources.cpus_per_worker))
    return {
        "threads": threads,
        "b": compute_limit(cfg, TRAIN_IMAGES, threads),
        "b_conc": compute_limit_concurrent(cfg, TRAIN_IMAGES, threads, concurrent),
        "b_bf16": compute_limit(cfg, TRAIN_IMAGES, threads, amp=True) if cpu_bf16() else None,
    }


def print_table(r: dict, lim: dict, a: float, course_wall: float, cores: int) -> None:
    trials = r["trials"]
    c = statistics.median(statistics.median(t["ips"]) for t in trials)
    setup = statistics.median(t["setup"] for t in trials)
    peak = r["peak_gib"] / r["concurrent"]
    outside_train, outside_both = epoch_overhead(trials, TRAIN_IMAGES)
    costs = fixed_costs(r)
    bf16 = "not native on this CPU" if lim["b_bf16"] is None else f"{lim['b_bf16']:.0f}"
    rows = [
        ("a. course loop, train images/s", f"{a:8.0f}", f"({cores} threads, decode + augment every epoch)"),
        ("b. limit: fused fp32, in-memory, images/s", f"{lim['b']:8.0f}", f"({lim['threads']} thread(s), as one trial)"),
        ("   the same, copies at once, images/s", f"{lim['b_conc']:8.0f}", f"({r['concurrent']} processes at once)"),
        ("   the same with bf16 autocast, images/s", f"{bf16:>8}", "(train.amp; opt-in)"),
        ("c. runner in a trial, images/s", f"{c:8.0f}", "(median over trials of the median epoch after the first)"),
        ("d. fixed cost per trial, median s", f"{setup:8.2f}", "(trial entered -> first training step)"),
        *[(f"   {k}, {unit}", f"{v:8.2f}", "") for k, v, unit in costs],
        ("e. runner study wall, s", f"{r['wall']:8.1f}",
         f"({len(trials)} trials, {r['concurrent']} at a time, {sum(t['epochs'] for t in trials)} epochs in all)"),
        ("   course loop, same trials in a row, s", f"{course_wall:8.1f}", ""),
        ("f. per-epoch time outside training steps", f"{outside_train:8.1%}", "(validation included)"),
        ("   outside training and validation", f"{outside_both:8.1%}", "(checkpoint, TensorBoard, report)"),
        ("g. peak memory (PSS) per concurrent trial, GiB", f"{peak:8.2f}", f"({r['peak_gib']:.2f} GiB in all)"),
    ]  # fmt: skip
    w = max(len(k) for k, _, _ in rows)
    print()
    for k, v, note in rows:
        print(f"{k:<{w}}  {v}  {note}")
    print()
    costs = {k: v for k, v, _ in costs}
    checks = [
        ("c/a  (runner vs course loop, per trial)", c / a, None),
        ("c/b", c / lim["b"], "c/b"),
        ("c/b' (b with as many trials at once)", c / lim["b_conc"], "c/b"),
        ("e runner / e course loop", r["wall"] / course_wall, "e runner / e course loop"),
        ("study start -> first step, s", costs["= study start -> first step"], "study start -> first step, s"),
        ("last step -> exit, s", costs["= last step -> exit"], "last step -> exit, s"),
        ("per-epoch overhead, share", outside_both, "per-epoch overhead, share"),
        ("peak GiB per concurrent trial", peak, "peak GiB per concurrent trial"),
    ]
    for k, v, target in checks:
        print(f"{k:<{w}}  {v:8.2f}{_verdict(v, target)}")


def _verdict(v: float, target: str | None) -> str:
    if target is None:
        return ""
    bound, op = TARGETS[target]
    met = v >= bound if op == ">=" else v <= bound
    return f"  {'met' if met else 'MISSED'} (target {op} {bound:g})"


if __name__ == "__main__":
    main()
