"""A search study's tables and report.html, from a results dir written here (no Ray): the sampled values as
columns, the ranked samples and importance in summary.md, and the page in a real headless Chromium."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from runner.config import ModelConfig, TrialConfig
from runner.results import report, summary, tables


def _search_dir(root: Path, samples: int = 8, seeds=(0, 1)) -> Path:
    """Results of a search over optim.lr (log) and model.hidden: accuracy peaks at lr 1e-3; one sample's
    second seed was pruned at epoch 2."""
    trials = []
    variants = {"base": {}}
    for k in range(samples + 1):
        name = "base" if k == 0 else f"s{k - 1:03d}"
        lr = 1e-3 if k == 0 else 10 ** (-5 + 4 * (k - 1) / max(samples - 1, 1))
        hidden = (32,) if k % 2 else (16, 8)
        if k:
            variants[name] = {"optim.lr": lr, "model.hidden": list(hidden)}
        cfg = TrialConfig(model=ModelConfig(hidden=hidden))
        cfg = replace(cfg, optim=replace(cfg.optim, lr=lr))
        for seed in seeds:
            spec = {"variant": name, "seed": seed, "order": k, "trial": cfg.to_dict()}
            trials.append(spec)
            pruned = name == "s001" and seed == 1
            d = root / f"{name}_seed{seed}_abc12_{len(trials):05d}"
            d.mkdir(parents=True)
            (d / "params.json").write_text(json.dumps({"spec": spec}))
            top = 0.8 - abs(math.log10(lr) + 3) / 8 + 0.01 * seed
            epochs = 2 if pruned else 4
            rows = [{"epoch": e, "val_accuracy": top * e / 4, "best_val_accuracy": top * e / 4, "best_epoch": e,
                     "train_accuracy": top * e / 4 + 0.05, "status": "running" if pruned or e < 4 else "completed",
                     "images_per_second": 1000.0, "time_total_s": 3.0 * e} for e in range(1, epochs + 1)]  # fmt: skip
            (d / "result.json").write_text("\n".join(map(json.dumps, rows)) + "\n")
            if pruned:
                (d / "pruned.json").write_text(json.dumps({"epoch": 2}))
    doc = {
        "study": "search",
        "variants": variants,
        "reference": "base",
        "seeds": list(seeds),
        "trials": trials,
        "search": {
            "space": {"optim.lr": "loguniform(1e-05, 0.1)", "model.hidden": "choice([(32,), (16, 8)])"},
            "log": ["optim.lr"],
            "samples": samples,
            "algorithm": "random",
            "seed": 0,
            "batches": [[f"s{k:03d}" for k in range(samples)]],
        },  # fmt: skip
    }
    (root / "study.json").write_text(json.dumps(doc))
    return root


def test_search_tables(tmp_path):
    results = _search_dir(tmp_path / "search")
    s = summary.read(results)
    tables.write(s)
    variants = s.variants
    rows = list(csv.DictReader(open(results / "summary.csv")))
    assert list(rows[0])[:4] == ["variant", "seed", "optim.lr", "model.hidden"]
    s001 = [r for r in rows if r["variant"] == "s001"]
    assert [r["status"] for r in s001] == ["completed", "pruned"] and s001[0]["model.hidden"] == "16-8"
    by_name = {v.variant: v for v in variants}
    assert by_name["s001"].pruned == 1 and by_name["s001"].n == 1  # the pruned seed is out of the mean
    md = (results / "summary.md").read_text()
    search = md.split("## Search")[1]
    assert "| sample | optim.lr | model.hidden | n | mean |" in search
    first = search.split("|---|")[1].splitlines()[1]
    assert first.startswith("| s003 | 0.0005179 | 16-8 |")  # lr nearest 1e-3 ranks first
    assert "| optim.lr |" in search.split("importance")[-1]
    assert "1 trials were pruned" in md and "- s001 seed 1: pruned" not in md
    import pyarrow.parquet as pq

    table = pq.read_table(results / "summary.parquet")
    assert (
        str(table.schema.field("optim.lr").type) == "double"
        and str(table.schema.field("model.hidden").type) == "string"
    )


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
@pytest.mark.e2e
def test_search_report_in_a_real_browser(tmp_path):
    from PIL import Image

    results = _search_dir(tmp_path / "search", samples=10)
    s = summary.read(results)
    tables.write(s)
    page = report.write_report(s)
    html = page.read_text()
    assert "<h2>Search</h2>" in html and "sampled values against the score" in html
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         f"--screenshot={shot}", "--window-size=1200,9000", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shot.exists(), run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # the parallel-coordinates lines are viridis colours: saturated pixels no table or text has
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    coloured = (np.abs(r - g) > 60) | (np.abs(g - b) > 60)
    assert coloured.mean() > 0.002, coloured.mean()
