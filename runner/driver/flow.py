"""A study from start to end, top to bottom: ``run_study``. Every step is a call to the module that owns it."""

from __future__ import annotations

import argparse
import logging
import shlex
import tempfile
import time
from pathlib import Path

from runner.driver import console, phases, record, results_dir
from runner.driver.cluster import RayCluster, check_shared_storage
from runner.driver.prepare import Prepared
from runner.errors import GONE, ConfigError, StorageFault, first_line, storage_fix
from runner.results import files, report, studyfile, summary, tables
from runner.results.summary import StudySummary
from runner.storage import Results
from runner.study.resources import amp_note


def run_study(prepared: Prepared, args: argparse.Namespace, address: tuple[str | None, str], t0: float,
              exiting: bool = False) -> int:  # fmt: skip
    """Plan -> phases -> summarize once -> tables, report, TensorBoard -> advise -> the exit code. ``address``: the
    cluster to join (None: start a local Ray) and how errors name it; ``exiting``: the process ends right after."""
    study, resuming = prepared.study, args.resume is not None
    results = Results(
        results_dir.resume_dir(prepared.storage, study.name, args.resume)
        if resuming
        else results_dir.new_results_dir(prepared.storage, study.name, explicit=bool(args.name))
    )
    ray_log = Path(tempfile.mkstemp(prefix="runner-", suffix=".log")[1])  # Ray's own logs; kept with the results
    identity = None
    try:
        with results_dir.Lock(results.uri), RayCluster(*address, args.verbose, ray_log) as ray:
            identity = results_dir.identity(results.uri)
            check_shared_storage(prepared.storage, ray.cluster)
            plan = prepared.plan(ray.cluster, args.max_concurrent)
            if resuming:
                _check_resumable(results, study, args.config)
            console.study_plan(plan, results, resuming)
            console.search(study)
            if note := amp_note(any(c.train.amp for _, _, c in prepared.trials), ray.cluster.gpus > 0):
                print(f"note   {note}")
            record.write_start(results, prepared, plan, args.config, resuming)
            t_fit = time.time()
            run = phases.Phases(prepared, plan, results, print, args.max_concurrent)
            if resuming:
                phases.resume(run, f"--resume {results}: {args.config} (with its --set values)")
            else:
                run.phase(plan.specs, record=False, looks=True)  # study.json holds them as its first phase
            phases.search_batches(run)
            phases.confirm(run)
            phases.sequential_seeds(run)
            record.write_hparams(results, run.prepared)  # the variants a search or sequential seeds added
            fit_seconds = time.time() - t_fit

            s, report_path = _write_outputs(results)
            code = console.end(args, results, s, report_path, time.time() - t0, fit_seconds)
            if exiting and code in (0, 1):
                ray.finish()  # every file is written: a local Ray is killed at once
            return code
    except StorageFault as fault:
        raise _stopped(fault, results, args, ray_log, identity) from None
    finally:
        if _keep_log(ray_log, results).parent == results.local and results.remote:
            try:
                results.push()  # a URI's runner.log goes with its tables
            except OSError:
                pass
        results.close()


def _write_outputs(results: Results) -> tuple[StudySummary, Path | None]:
    """The study summarized once, and every table and the report written from it (a study stopped by Ctrl-C or
    SIGTERM: tables marked partial, covering what finished)."""
    try:
        results.pull()
        s = summary.read(results.local)
        tables.write(s, partial=bool(s.unfinished))
        report_path = _write_report(s)
        results.push()
    except OSError as e:  # the trials' results are kept where they are; only the tables are missing
        raise ConfigError(
            f"{results}: the trials ran, but their summary could not be written ({first_line(e)}); "
            f"write it with python -m runner.summary {shlex.quote(results.uri)}"
        ) from None
    return s, report_path


def _write_report(s: StudySummary) -> Path | None:
    """The HTML report; a plotting failure must not fail a finished study (the tables are already written)."""
    try:
        return report.write_report(s)
    except Exception as e:  # noqa: BLE001
        logging.getLogger("runner").warning(
            "could not write report.html (%s: %s); rebuild it with python -m runner.report %s",
            type(e).__name__,
            e,
            s.results_dir,
        )
        return None


def _stopped(fault: StorageFault, results: Results, args: argparse.Namespace, ray_log: Path, identity) -> StorageFault:
    """The one line of a study its storage stopped, once what can be saved is: a vanished dir that Ray's last syncs
    made again is removed (Ray is down by now), Ray's log is kept, the tables of what finished are written."""
    gone = fault.line.startswith(GONE)
    if gone and identity is not None:  # a local dir (a URI has no identity)
        results_dir.remove_remake(results.uri)
    kept = _keep_log(ray_log, results, gone=gone)
    if not gone:  # a dir that is gone has nothing to sum up, and writing the tables would make it again
        _write_partial_summary(results)
    return StorageFault(
        f"{results}: the study stopped: {fault.line}; {storage_fix(fault.line)}, then finish it "
        f"with {console.resume_command(args, results)} (details in {kept})"
    )


def _keep_log(log_file: Path, results: Results, gone: bool = False) -> Path:
    """Ray's log of this run, appended to the results dir's runner.log (beside the dir when it is gone, also when
    a last sync of Ray's made it again; left where it is when neither can be written)."""
    if not log_file.exists():
        return results.local / files.LOG
    if log_file.stat().st_size == 0:  # Ray said nothing (or never started): no file to keep
        log_file.unlink()
        return results.local / files.LOG
    beside = results.local.parent / f"{results.local.name}.{files.LOG}"
    for target in (beside,) if gone else (results.local / files.LOG, beside):
        try:
            if target.parent.is_dir():
                with open(target, "ab") as out:
                    out.write(log_file.read_bytes())
                log_file.unlink()
                return target
        except OSError:
            continue
    return log_file


def _write_partial_summary(results: Results) -> None:
    """The tables of what finished, if the storage takes them now. Quietly: files the full disk left empty
    read as damaged rows, and the one line about the fault already says why."""
    quiet = logging.getLogger("runner")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        tables.write(summary.read(results.local), partial=True)
        results.push()
    except Exception:  # noqa: BLE001 - the storage just failed; the tables are rebuilt by runner summary
        pass
    finally:
        quiet.setLevel(level)


def _check_resumable(results: Results, study, config: str) -> None:
    """--resume needs the dir's study.json, of this study (its name or its study file's)."""
    results.pull()
    found = studyfile.read(results.local)
    if found is None:
        raise ConfigError(f"--resume {results}: no study.json there, so its plan is unknown; give the results dir "
                          "the study printed as 'output', or start the study without --resume")  # fmt: skip
    their_file = Path(found.doc.get("config_file", "")).name
    if found.name != study.name and their_file != Path(config).name:
        raise ConfigError(f"--resume {results}: holds study {found.name!r} (from {their_file or 'another file'}), not "
                          f"{study.name!r} of {config}; resume it with its own study file")  # fmt: skip
