"""A phase rebuilt from its trial dirs, when Tune's saved state cannot carry it on.

Tune saves a phase's state (experiment_state-*.json) beside its trials. A disk that fills up as Tune writes it
leaves it cut short; a disk that turns read-only (or a sync that fails) leaves it behind the trial dirs, so trials
that finished since show there as running, and restoring it would run them again. ``problem`` says why the newest
state cannot be restored as it is (None when it can); ``plan`` then rebuilds the phase from what the trial dirs
hold: a finished trial stays as it is, an unfinished one carries on in its own dir from its last good checkpoint
(one that loads, of an epoch its result.json reaches), one without such a checkpoint starts over there, and one
never started starts. The rebuilt trials run as a new Tune run of the phase (runner.driver.phases).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from runner import checkpoints
from runner.errors import ConfigError, first_line
from runner.results import files, studyfile
from runner.results.files import read_results
from runner.results.records import TrialRecord, read_records
from runner.results.status import Status, TuneState
from runner.study.plan import CARRY_ON

SET_ASIDE = ".r"  # checkpoint_000004 -> checkpoint_000004.r1: out of the way of the new run's own checkpoint_000000


@dataclass
class Rebuilt:
    """The rebuilt phase: the trials to run (each with ``CARRY_ON`` when it has a dir) and what happens to each."""

    params: list[dict] = field(default_factory=list)
    kept: int = 0  # finished trials, left as they are
    carried: list[str] = field(default_factory=list)  # "a seed 1 from epoch 4"
    over: list[str] = field(default_factory=list)  # "a seed 2 (no checkpoint that loads)": run again from epoch 1
    fresh: list[str] = field(default_factory=list)  # never started

    def lines(self, why: str) -> list[str]:
        """What the console says: why, then which trials carry on, start over (and why), or start."""
        kept = f"{self.kept} finished trial{'' if self.kept == 1 else 's'} kept as {'it is' if self.kept == 1 else 'they are'}"
        out = [f"state  {why}: the phase is rebuilt from its trial dirs ({kept})"]
        if self.carried:
            out.append(f"state  carrying on from their last good checkpoints: {', '.join(self.carried)}")
        if self.over:
            out.append(f"state  starting over (their epochs run again): {', '.join(self.over)}")
        if self.fresh:
            out.append(f"state  never started: {', '.join(self.fresh)}")
        return out


def problem(results_dir: Path, phase: list[dict], weights: bool = True) -> str | None:
    """Why Tune's newest saved state in ``results_dir`` cannot carry on the phase ``phase`` (its trials'
    params), or None when it can: unreadable files, or a trial whose dir is further on (or behind). Without
    ``weights`` (a URI's local copy holds no model.pt) checkpoints are not checked."""
    states = sorted(Path(results_dir).glob("experiment_state-*.json"))
    if not states:
        return "no experiment_state-*.json"
    newest = states[-1]
    try:
        state = json.loads(newest.read_text())
        trials = [(json.loads(t), json.loads(m)) for t, m in state["trial_data"]]
        _check_pickle(Path(results_dir) / "tuner.pkl")
        for searcher in Path(results_dir).glob(f"*-state-{newest.stem.removeprefix('experiment_state-')}.*"):
            _check_pickle(searcher)  # the searcher's state: a pickle, whatever its name says
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"Tune's saved state ({newest.name} or a file beside it) is unreadable ({first_line(e, 120)})"
    return _behind(Path(results_dir), trials, phase, newest.name, weights)


def started(results_dir: Path, phase: list[dict]) -> bool:
    """Whether Tune's newest saved state in ``results_dir`` is of the phase ``phase`` (its trials' params): it holds
    one of its trials. A trial that carries on in an earlier trial's dir (a confirmed sample) is this phase's only
    when the state's trial carries on too: the earlier phase's state holds the same variant and seed."""
    states = sorted(Path(results_dir).glob("experiment_state-*.json"))
    if not states:
        return False
    try:
        specs = [json.loads(t)["config"]["spec"] for t, _ in json.loads(states[-1].read_text())["trial_data"]]
    except (OSError, ValueError, KeyError, TypeError):
        return True  # unreadable: ``problem`` says so, and the phase is rebuilt
    in_state = {(s["variant"], s["seed"]): CARRY_ON in s for s in specs}
    return any((p["variant"], p["seed"]) in in_state and (CARRY_ON not in p or in_state[(p["variant"], p["seed"])])
               for p in phase)  # fmt: skip


def _check_pickle(path: Path) -> None:
    """A pickle ends with its STOP opcode; one cut short does not."""
    data = path.read_bytes()
    if not data.endswith(b"."):
        raise ValueError(f"{path.name} is cut short ({len(data)} bytes)")


def _behind(results_dir: Path, trials: list, phase: list[dict], name: str, weights: bool) -> str | None:
    """The first unfinished trial of ``phase`` whose dir disagrees with the state: another epoch, finished in
    one and not the other, missing from the state, the checkpoint the state carries it on from gone, or its newest
    checkpoint cut short."""
    in_state = {t["relative_logdir"]: (t["status"], _epoch(m)) for t, m in trials}
    named = {
        t["relative_logdir"]: _named(m, t["relative_logdir"]) for t, m in trials if t["status"] != TuneState.TERMINATED
    }
    planned = {(p["variant"], p["seed"]) for p in phase}
    for r in read_records(results_dir):
        if (r.variant, r.seed) not in planned or not r.trial_dir:
            continue
        if r.status == Status.DAMAGED:
            return f"{r.variant} seed {r.seed}'s files are damaged"
        status, epoch = in_state.get(r.trial_dir, (None, None))
        if status is None:
            if r.status.finished:
                continue  # a trial finished in an earlier run of the phase
            return f"{name} does not know {r.variant} seed {r.seed}"
        if r.status.finished != (status == TuneState.TERMINATED) or epoch != r.epochs_run:
            return (f"{name} is behind the trial dirs ({r.variant} seed {r.seed}: epoch {epoch} "
                    f"{'finished' if status == TuneState.TERMINATED else 'unfinished'} there, epoch {r.epochs_run} "
                    f"{'finished' if r.status.finished else 'unfinished'} in its dir)")  # fmt: skip
        gone = named.get(r.trial_dir)
        if weights and not r.status.finished and gone and not (results_dir / r.trial_dir / gone).is_dir():
            return f"{name} names {r.variant} seed {r.seed}'s {gone}, which its dir no longer holds"
        newest = checkpoints.kept(results_dir / r.trial_dir)[-1:]
        if weights and not r.status.finished and newest and not checkpoints.loads(newest[0][1]):
            return f"{r.variant} seed {r.seed}'s last checkpoint ({newest[0][1].name}) is cut short"
    return None


def _named(metadata: dict, trial_dir: str) -> str | None:
    """The name of the checkpoint Tune would carry a trial on from (``checkpoint_NNNNNN``), when it is one of the
    trial dir's own (a worker group's are Ray Train's); None when there is none or it cannot be read."""
    from ray import cloudpickle

    try:
        latest = cloudpickle.loads(bytes.fromhex(metadata["checkpoint_manager"]["value"])).latest_checkpoint_result
        path = Path(latest.checkpoint.path)
    except Exception:  # noqa: BLE001 - no checkpoint yet, or a state of another Ray: not checked
        return None
    return path.name if path.parent.name == trial_dir and checkpoints.index(path.name) is not None else None


def _epoch(metadata: dict) -> int:
    """The last epoch Tune saw from a trial (its last result may be a fault report without one)."""
    return int(metadata.get("metric_analysis", {}).get("epoch", {}).get("last", 0) or 0)


def plan(results_dir: Path, phase: list[dict]) -> Rebuilt:
    """The phase's trials rebuilt from their dirs (local results dirs only: checkpoints are read and renamed). A
    confirmed sample's trial still marked pruned has yet to carry on (its confirmation stopped before it started)."""
    records = {(r.variant, r.seed): r for r in read_records(results_dir) if r.trial_dir}
    found = studyfile.read(results_dir)
    confirmed = set(found.confirmed) if found else set()
    out = Rebuilt()
    for p in phase:
        r, name = records.get((p["variant"], p["seed"])), f"{p['variant']} seed {p['seed']}"
        if r is not None and r.status.finished and not (r.status == Status.PRUNED and r.variant in confirmed):
            out.kept += 1
            continue
        if r is None:
            out.fresh.append(name)
            out.params.append(p)
            continue
        out.params.append({**p, CARRY_ON: carry(Path(results_dir), r, name, out)})
    return out


def carry(results_dir: Path, r: TrialRecord, name: str, out: Rebuilt, move: bool = True) -> dict:
    """Where trial ``r`` goes on: its last good checkpoint (set aside from the new run's), else epoch 1. Without
    ``move`` the checkpoints are left where they are and the path is where ``set_aside`` will put it."""
    reached = max((row["epoch"] for row in read_results(results_dir / r.trial_dir / files.RESULT)), default=0)
    good = [(e, d) for e, d in checkpoints.kept(results_dir / r.trial_dir) if e <= reached and checkpoints.loads(d)]
    kept = set_aside(results_dir / r.trial_dir) if move else set_aside_names(results_dir / r.trial_dir)
    if good:
        epoch, d = good[-1]
        out.carried.append(f"{name} from epoch {epoch}")
        return {"dir": r.trial_dir, "checkpoint": str(kept[d]), "epoch": epoch}
    if reached:
        out.over.append(f"{name} (no checkpoint that loads, of its {reached} epochs)")
    else:
        out.fresh.append(name)
    return {"dir": r.trial_dir, "checkpoint": "", "epoch": 0}


def set_aside(trial_dir: Path) -> dict[Path, Path]:
    """Rename the trial's checkpoint dirs out of the way of the new run's (which numbers from 0 again);
    returns old -> new. They stay checkpoints (checkpoints.best still finds them)."""
    moved = set_aside_names(trial_dir)
    for old, new in moved.items():
        if old != new:
            old.rename(new)
    return moved


def set_aside_names(trial_dir: Path) -> dict[Path, Path]:
    """old -> new name of each checkpoint dir ``set_aside`` renames (one set aside before keeps its name)."""
    names = {}
    for d in sorted(p.parent for p in trial_dir.glob(f"**/checkpoint_*/{checkpoints.META}")):
        n = 1
        while SET_ASIDE not in d.name and d.with_name(f"{d.name}{SET_ASIDE}{n}").exists():
            n += 1
        names[d] = d if SET_ASIDE in d.name else d.with_name(f"{d.name}{SET_ASIDE}{n}")
    return names


def refuse_remote(uri: str, why: str) -> ConfigError:
    return ConfigError(f"--resume {uri}: {why}, and a phase is rebuilt from its trial dirs only in a directory; "
                       "copy the results dir to a disk and --resume it there")  # fmt: skip
