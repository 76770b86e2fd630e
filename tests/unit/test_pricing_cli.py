"""``tollgate pricing check FILE``: the table on success (exit 0), one line on stderr (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.pricing_cli import pricing_command

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
version: 2026-11-01
models:
  whisper-1: {per_audio_minute: 0.006}
  claude-sonnet-4-5:
    input: 3
    output: 15.00
    cache_read: 0.3
    cache_write: 3.75
    cache_write_1h: 6.00
    max_output_tokens: 64000
    tiers:
      - {above: 200000, input: 6.00, output: 22.50, cache_read: 0.60, cache_write: 7.50,
         cache_write_1h: 12.00}
  dall-e-3: {per_image: {"1024x1024": 0.04, "1024x1024/hd": 0.08}}
  some-flat-model: {per_request: 0.000000001}
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "pricing.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_check_prints_every_price_exactly_and_the_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD)
    assert pricing_command(["check", path]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == [
        f"{path}: version 2026-11-01, 4 model(s), prices in USD",
        "claude-sonnet-4-5: per 1M tokens: input 3.00, output 15.00, cache_read 0.30, "
        "cache_write 3.75, cache_write_1h 6.00; above 200000 prompt tokens, per 1M tokens: "
        "input 6.00, output 22.50, cache_read 0.60, cache_write 7.50, cache_write_1h 12.00; "
        "max_output_tokens: 64000",
        "dall-e-3: per image: 1024x1024 0.04, 1024x1024/hd 0.08",
        "some-flat-model: per request: 0.000000001",
        "whisper-1: per audio minute: 0.006",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("models:\n  m: {input: 1, ouptut: 2}\n", "models.m.ouptut: unknown field;"),
        ("models:\n  m: {input: -1}\n", "models.m.input: must not be negative"),
        ("models:\n  m: {per_audio_minute: x}\n", "models.m.per_audio_minute: must be a number"),
        (
            "models:\n  m: {input: 1, tiers: [{above: 9, input: 2, foo: 1}]}\n",
            "models.m.tiers[0].foo: unknown field;",
        ),
    ],
)
def test_check_reports_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    path = write(tmp_path, text)
    assert pricing_command(["check", path]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"tollgate: {path}: {problem}")


def test_check_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pricing_command(["check", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read: No such file or directory" in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert pricing_command([]) == 2
    assert pricing_command(["check"]) == 2
    assert pricing_command(["lint", "x.yaml"]) == 2
    assert "usage: tollgate pricing" in capsys.readouterr().err


def test_tollgate_main_dispatches_to_pricing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pricing", "check", write(tmp_path, GOOD)]) == 0
    assert "whisper-1: per audio minute: 0.006" in capsys.readouterr().out


def test_python_m_gateway_checks_the_shipped_pricing_file() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "pricing", "check", "config/pricing.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("config/pricing.yaml: version ")
    sonnet = next(line for line in lines if line.startswith("claude-sonnet-4-5: "))
    assert "above 200000 prompt tokens, per 1M tokens: input 6.00, output 22.50" in sonnet
    assert "cache_write_1h 6.00" in sonnet
