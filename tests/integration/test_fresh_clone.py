"""README's first command, pasted into a fresh clone with a fresh virtual environment.

This is what a newcomer does; it caught a dependency that only developers' machines had (uvloop).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]


def readme_bash_blocks(heading: str) -> list[str]:
    """The ```bash blocks of README's section that starts with ``## <heading>``."""
    readme = (REPO / "README.md").read_text()
    section = readme.split(f"\n## {heading}", 1)[1].split("\n## ", 1)[0]
    blocks = [b.strip() for b in re.findall(r"```bash\n(.*?)\n```", section, re.S)]
    assert blocks, f"README's {heading} section has no bash block"
    return blocks


def fresh_env() -> dict[str, str]:
    """This process's environment without its virtual environment or Tollgate settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TOLLGATE_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}  # fmt: skip
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        env["PATH"] = os.pathsep.join(
            p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(venv)
        )
    return env


def wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"README's first command exited with {proc.returncode}:\n"
                                 + log.read_text(errors="replace")[-3000:])  # fmt: skip
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"{url} did not answer 200 within {seconds:.0f} s")


@pytest.mark.slow
def test_readme_first_command_serves_on_a_fresh_clone(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout")
    command = readme_bash_blocks("Run it")[0]
    assert command.endswith("tollgate serve"), command
    clone = tmp_path / "tollgate"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    port = free_port()
    log = (tmp_path / "first-command.log").open("wb")
    proc = subprocess.Popen(
        ["bash", "-c", f"{command} --port {port}"],
        cwd=clone, env=fresh_env(), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc, 420, tmp_path / "first-command.log")
        assert (clone / ".venv" / "bin" / "tollgate").exists()
        assert (clone / ".tollgate" / "admin_token").exists()
        if shutil.which("jq") and shutil.which("curl"):  # scripts/test.sh installs both
            quickstart = "\n".join(readme_bash_blocks("Five lines with the SDK"))
            quickstart = quickstart.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", quickstart], cwd=clone, env=fresh_env(),
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            lines = done.stdout.strip().splitlines()
            # The OpenAI line ends with the cost header, the Anthropic one with output tokens.
            assert re.fullmatch(r".+ \d+\.\d+", lines[-2]), lines
            assert re.fullmatch(r".+ \d+", lines[-1]), lines
        elif os.environ.get("CI"):
            pytest.fail("jq and curl are missing: scripts/test.sh installs them")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the gateway stops its embedded Redis
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    assert proc.returncode == 0, (tmp_path / "first-command.log").read_text()
