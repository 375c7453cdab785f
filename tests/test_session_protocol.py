"""The type checker holds both Session implementations, Ray's and the in-memory one, to the loop's protocol."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# runner's own modules are checked; the big libraries they import are taken as Any (checking torch takes minutes)
MYPY_INI = """
[mypy]
ignore_missing_imports = True
follow_imports = silent
[mypy-torch.*,ray.*,numpy.*,scipy.*,sklearn.*,albumentations.*,pyarrow.*,matplotlib.*,tensorboard.*,PIL.*,cv2.*]
follow_imports = skip
"""


def _mypy(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    (tmp_path / "mypy.ini").write_text(MYPY_INI)
    check = tmp_path / "check.py"
    check.write_text(textwrap.dedent(body))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(tmp_path / "mypy.ini"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            str(check),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ray_and_memory_sessions_satisfy_the_protocol(tmp_path):
    r = _mypy(
        tmp_path,
        """
        from runner.trial.loop import MemorySession, Session
        from runner.trial.session import RaySession

        def use(s: Session) -> None: ...

        def check(memory: MemorySession, ray: RaySession) -> None:
            use(memory)
            use(ray)
    """,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_session_without_collectives_is_rejected(tmp_path):
    r = _mypy(
        tmp_path,
        """
        import numpy as np
        from runner.trial.loop import Session

        class NoCollectives:
            rank: int = 0
            world: int = 1

            def shard(self, name: str) -> tuple[np.ndarray, np.ndarray]: ...

        def use(s: Session) -> None: ...

        use(NoCollectives())
    """,
    )
    assert r.returncode == 1 and 'incompatible type "NoCollectives"' in r.stdout, r.stdout + r.stderr
