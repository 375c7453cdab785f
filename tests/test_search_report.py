"""A search study's tables and report.html, from a results dir written here (no Ray): the sampled values as
columns, the ranked samples and importance in summary.md, and the page in a real headless Chromium."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runner.config import ModelConfig, TrialConfig
from runner.results import answer, report, summary, tables


def _search_dir(root: Path, samples: int = 8, seeds=(0, 1), confirmed=(), one_epoch=(), test=False, peak=0.8) -> Path:
    """Results of a search over optim.lr (log) and model.hidden: accuracy peaks at lr 1e-3; one sample's
    second seed was pruned at epoch 2. ``confirmed``: samples a Search(confirm=k) ran over every epoch and seed
    afterwards (study.json's search.confirm and search.confirmed); ``one_epoch``: samples ASHA stopped after their
    first epoch on every seed; ``test``: the trials' last rows carry a test accuracy; ``peak``: seed 0's best val
    accuracy at lr 1e-3 (near 1, the 95 % CI of 2 seeds reaches past 1)."""
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
            pruned = (name == "s001" and seed == 1 and name not in confirmed) or name in one_epoch
            d = root / f"{name}_seed{seed}_abc12_{len(trials):05d}"
            d.mkdir(parents=True)
            (d / "params.json").write_text(json.dumps({"spec": spec}))
            top = peak - abs(math.log10(lr) + 3) / 8 + 0.01 * seed
            epochs = (1 if name in one_epoch else 2) if pruned else 4
            rows = [{"epoch": e, "val_accuracy": top * e / 4, "best_val_accuracy": top * e / 4, "best_epoch": e,
                     "train_accuracy": min(top * e / 4 + 0.05, 1.0), "status": "running" if pruned or e < 4 else "completed",
                     "images_per_second": 1000.0, "time_total_s": 3.0 * e} for e in range(1, epochs + 1)]  # fmt: skip
            if test and not pruned:
                rows[-1]["test_accuracy"] = top - 0.03
            (d / "result.json").write_text("\n".join(map(json.dumps, rows)) + "\n")
            if pruned:
                (d / "pruned.json").write_text(json.dumps({"epoch": epochs}))
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
            **({"confirm": len(confirmed), "confirmed": list(confirmed)} if confirmed else {}),
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


CONFIRMED = {"confirmed": ("s004", "s005"), "one_epoch": ("s008", "s009"), "test": True, "peak": 0.97}


def _pngs(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in re.findall(r"base64,([A-Za-z0-9+/=]+)", page)]


def test_search_report_answers_with_the_confirmed_best(tmp_path):
    s = summary.read(_search_dir(tmp_path / "search", samples=10, **CONFIRMED))
    a = answer.of(s)
    assert a is not None and a.confirmed and a.sample in ("s004", "s005")
    page = report.write_report(s).read_text()
    assert page.index("<h2>Answer</h2>") < page.index("<h2>Summary</h2>")
    assert html.escape(a.verdict_line()) in page and "vs base:" in page and "test accuracy" in page
    assert html.escape(answer.OPTIMISTIC) in page and "the test accuracy, which no choice saw, is not" in page
    assert f"<pre><code>{html.escape(a.set_line())}</code></pre>" in page and "--set=optim.lr=0.00" in page
    assert f"<pre><code>{html.escape(a.variant())}</code></pre>" in page and "{&quot;optim.lr&quot;: 0.00" in page
    assert ">s004 ✓<" in page and ">s005 ✓<" in page and ">s006<" in page and page.count(" ✓<") == 2
    assert "✓ confirmed: after the search" in page
    # the summary compares the fixed variant and the confirmed samples only; the curves draw those
    assert [v.variant for v in s.variants] == ["base", "s004", "s005"]
    caveat = "Confirmed samples (s004, s005): picked as the search's best on these seeds' val scores"
    assert html.escape(caveat) in page and "optimistic (the winner&#x27;s curse)" in page
    tables.write(s)
    md = (s.results_dir / "summary.md").read_text()
    assert md.index(caveat) < md.index("## Effect sizes")  # under the variant table, in summary.md too
    images = _pngs(page)
    assert len(images) == 3  # parallel coordinates, val overview, panels (no confusion matrices here)
    assert images[0].size[0] >= 900  # the parallel coordinates: 10 inches at 90 dpi


def test_search_report_without_confirmation_says_how_to_confirm(tmp_path):
    results = _search_dir(tmp_path / "search", samples=10, one_epoch=("s008", "s009"))
    s = summary.read(results)
    a = answer.of(s)
    page = report.write_report(s).read_text()
    assert "<h2>Answer</h2>" not in page and "✓" not in page
    assert page.index("<h2>Best sample (not confirmed)</h2>") < page.index("<h2>Summary</h2>")
    assert f"<b>{a.sample}</b> is the search's best of 10 samples" in page and "not confirmed" in page
    assert f"<pre><code>{html.escape(a.set_line())}</code></pre>" in page
    assert "Search(confirm=k)" in page and f"--resume {results} --confirm K" in page
    assert len(_pngs(page)) == 3


def test_report_of_a_study_without_a_search_has_no_answer(tmp_path):
    s = summary.read(_search_dir(tmp_path / "search", samples=3))
    plain = replace(s, study=replace(s.study, search=None), search=None)
    page = report.write_report(plain).read_text()
    assert "<h2>Answer</h2>" not in page and "Best sample" not in page and "<h2>Search</h2>" not in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
@pytest.mark.e2e
@pytest.mark.parametrize("confirm", [True, False], ids=["confirmed", "unconfirmed"])
def test_search_report_in_a_real_browser(tmp_path, confirm):
    """The page as a reader sees it: a confirmed search (its answer, ✓ samples, CI bands at 1) and an unconfirmed
    one whose worst samples ASHA stopped after one epoch (panels with a single point). Look at shot.png by eye when
    the figures change."""
    results = _search_dir(
        tmp_path / "search", samples=10, **(CONFIRMED if confirm else {"one_epoch": ("s008", "s009")})
    )
    s = summary.read(results)
    tables.write(s)
    page = report.write_report(s)
    text = page.read_text()
    assert "<h2>Search</h2>" in text and "sampled values against the score" in text
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         f"--screenshot={shot}", "--window-size=1400,4000", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shot.exists(), run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # the parallel-coordinates lines, colour bar and curves are saturated colours no table or text has
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    coloured = (np.abs(r - g) > 60) | (np.abs(g - b) > 60)
    assert coloured.mean() > 0.002, coloured.mean()
    # the colour bar: a column of viridis from yellow (top) to purple, right of the parallel coordinates' lines
    cols = np.where(coloured.sum(axis=0) > 250)[0]
    assert len(cols) >= 10, "no colour bar (a tall band of colour) on the page"
