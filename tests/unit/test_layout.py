"""The package layout stays readable: rooms that say their job, small modules, a pure pricing."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GATEWAY, PRICING = REPO / "gateway", REPO / "pricing"
MAX_LINES = 400
# What pricing/ must never import: it takes values and returns values.
IO_MODULES = {
    "os",
    "io",
    "pathlib",
    "socket",
    "asyncio",
    "aiohttp",
    "redis",
    "subprocess",
    "shutil",
}


def modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_gateway_top_level_holds_at_most_a_dozen_modules() -> None:
    top = [p.name for p in GATEWAY.glob("*.py")]
    assert len(top) <= 12, top


def test_every_sub_package_says_its_job() -> None:
    for init in GATEWAY.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.relative_to(REPO)} has no docstring saying what the package is for"


def test_no_module_over_400_lines() -> None:
    long = {str(p.relative_to(REPO)): n for p in modules(GATEWAY) + modules(PRICING)
            if (n := len(p.read_text().splitlines())) > MAX_LINES}  # fmt: skip
    assert not long


def test_no_two_modules_share_a_name() -> None:
    names = Counter(p.name for p in modules(GATEWAY) + modules(PRICING) if p.name != "__init__.py")
    assert [name for name, n in names.items() if n > 1] == []


def test_pricing_does_no_io() -> None:
    for path in modules(PRICING):
        assert not imported(path) & IO_MODULES, path.name
        calls = {node.func.id for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}  # fmt: skip
        assert "open" not in calls, path.name


def test_billing_core_loads_no_http_server() -> None:
    """What importing the billing core actually loads, not only its own import lines."""
    probe = ("import sys, gateway.billing.settler, gateway.billing.wallet, "
             "gateway.billing.journal; print('aiohttp' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=REPO, check=True)  # fmt: skip
    assert out.stdout.strip() == "False"
