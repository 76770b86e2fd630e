"""``config/grafana-dashboard.json``: an importable dashboard whose every panel queries Tollgate."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

DASHBOARD = Path(__file__).resolve().parents[2] / "config" / "grafana-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# Each panel the dashboard must have (issue 5), by the metric it reads.
REQUIRED_EXPRESSIONS = [
    "sum by (model) (rate(tollgate_cost_usd_total[5m]))",
    "tollgate_tokens_total",
    "tollgate_requests_total",
    "tollgate_rejections_total",
    "histogram_quantile(0.5, sum by (le) (rate(tollgate_overhead_seconds_bucket[5m])))",
    "histogram_quantile(0.99, sum by (le) (rate(tollgate_overhead_seconds_bucket[5m])))",
    "histogram_quantile(0.5, sum by (le) (rate(tollgate_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.99, sum by (le) (rate(tollgate_request_duration_seconds_bucket[5m])))",
    "tollgate_in_flight_requests",
    "tollgate_holds_outstanding_usd",
    "tollgate_redis_seconds_bucket",
    "sum by (le, provider) (rate(tollgate_upstream_seconds_bucket[5m]))",
    'tollgate_pricing_reloads_total{result="error"}',
    "tollgate_pricing_info",
]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return document


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_it_is_an_importable_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] == "Tollgate"
    assert dashboard["uid"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "The Prometheus that scrapes Tollgate's /metrics",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_it_finds_its_prometheus_when_provisioned_too(dashboard: dict[str, Any]) -> None:
    # An import fills ${DS_PROMETHEUS} from __inputs; a provisioned file (compose.yaml) is not
    # imported, so a datasource variable of that name resolves it to the default Prometheus.
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"


def test_every_panel_queries_a_tollgate_metric(dashboard: dict[str, Any]) -> None:
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        title = panel["title"]
        assert panel["type"] in ("timeseries", "stat"), title
        assert panel["datasource"] == DATASOURCE, title
        assert panel["targets"], title
        assert any("tollgate_" in target["expr"] for target in panel["targets"]), title
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, title
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), title
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0, title


def test_the_panels_the_issue_asks_for_are_there(dashboard: dict[str, Any]) -> None:
    expressions = _expressions(dashboard)
    for wanted in REQUIRED_EXPRESSIONS:
        assert any(wanted in expr for expr in expressions), wanted


def test_every_expression_is_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:expr_{index}", "expr": expr}
                    for index, expr in enumerate(_expressions(dashboard))
                ],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules), encoding="utf-8")  # JSON is YAML
    done = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
