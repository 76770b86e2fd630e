"""``tollgate pricing check FILE``: the table on success (exit 0), one line on stderr (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.cli.pricing import pricing_command
from gateway.prices.loading import load_pricing
from pricing import parse_pricing

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


SCHEDULED = """\
version: 7
models:
  gpt-4o-mini:
    - {effective_from: "2027-01-01T09:30:00+01:00", input: 0.25}
    - {input: 0.15, output: 0.60}
    - {effective_from: 2026-12-01, input: 0.20, output: 0.80}
  gpt-5: {effective_from: 2026-12-10, input: 1.25}
"""


def test_check_prints_scheduled_prices_in_time_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, SCHEDULED)
    assert pricing_command(["check", path]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: version 7, 2 model(s), 3 scheduled price(s), prices in USD",
        "gpt-4o-mini: per 1M tokens: input 0.15, output 0.60",
        "gpt-4o-mini from 2026-12-01T00:00:00Z: per 1M tokens: input 0.20, output 0.80",
        "gpt-4o-mini from 2027-01-01T08:30:00Z: per 1M tokens: input 0.25",
        "gpt-5 from 2026-12-10T00:00:00Z: per 1M tokens: input 1.25",
    ]


EXCERPT = REPO / "tests" / "data" / "litellm_excerpt.json"


def test_import_litellm_writes_a_file_that_check_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "litellm.yaml"
    assert pricing_command(["import-litellm", str(EXCERPT), "-o", str(out)]) == 0
    stdout, err = capsys.readouterr()
    assert stdout == ""
    assert err == (
        f"tollgate: {EXCERPT}: 14 model(s) converted, 6 skipped (reasons in the file's header); "
        f"wrote {out}\n"
    )
    table = load_pricing(out)
    price = table.lookup("gpt-4o-mini")
    assert price is not None
    assert price.input == 150_000_000
    assert pricing_command(["check", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{out}: version sha256:")
    assert "whisper-1: per audio minute: 0.006" in lines


def test_import_litellm_without_output_prints_the_yaml(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["pricing", "import-litellm", str(EXCERPT)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# Tollgate prices converted from LiteLLM's model price map")
    assert '  "text-embedding-3-small": {input: 0.02, output: 0}\n' in out
    assert "14 model(s) converted" in err
    assert parse_pricing(out, source="stdout").lookup("whisper-1") is not None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "invalid JSON: "),
        ('["a list"]', "expected a JSON object mapping model names to prices"),
        (None, "cannot read: No such file or directory"),
    ],
)
def test_import_litellm_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, problem: str
) -> None:
    source = tmp_path / "prices.json"
    if content is not None:
        source.write_text(content, encoding="utf-8")
    out = tmp_path / "out.yaml"
    assert pricing_command(["import-litellm", str(source), "-o", str(out)]) == 2
    stdout, err = capsys.readouterr()
    assert stdout == ""
    assert err.count("\n") == 1
    assert err.startswith(f"tollgate: {source}: {problem}")
    assert not out.exists()


def test_import_litellm_unwritable_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing-dir" / "out.yaml"
    assert pricing_command(["import-litellm", str(EXCERPT), "-o", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"tollgate: {out}: cannot write: ")
