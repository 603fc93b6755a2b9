"""Ctrl-C on the command line (fault: two SIGINTs in a row, as ``timeout -s INT`` and an impatient user send,
aborted the process with ``terminate called without an active exception``): whenever the interrupts arrive,
the process ends with one line, exit code 130, no traceback and nothing written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="watches /proc/PID/maps (Linux)")


def _started_importing_torch(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _run(tmp_path: Path, when: str, count: int) -> tuple[int, str, Path]:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ignn_lab.cli", "evaluate", "--model", "graphagg-star", "--sets", "skimage",
           "--scales", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        # "import": torch's library is being loaded (the command's handler is in place by then: the CLI imports
        # torch only inside the command); "work": the progress bar of the evaluation is up
        if (when == "import" and _started_importing_torch(proc.pid)) or (
                when == "work" and "graphagg-star skimage" in "".join(err)):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the command ended before it could be interrupted"
    for i in range(count):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.1)
    proc.wait(timeout=300)
    reader.join(timeout=10)
    return proc.returncode, "".join(err), out


@pytest.mark.parametrize("when,count", [("import", 2), ("work", 2), ("work", 1)])
def test_interrupts_end_the_command_cleanly(tmp_path, when, count):
    code, err, out = _run(tmp_path, when, count)
    last = [line for line in err.replace("\r", "\n").splitlines() if line.strip()][-1]
    assert code == 130, err[-2000:]
    assert last == "ignn-lab evaluate: interrupted"
    assert "Traceback" not in err and "terminate" not in err
    written = sorted(p.name for p in out.rglob("*")) if out.exists() else []
    assert not [name for name in written if name.endswith((".json", ".md", ".png", ".tmp"))], written
