"""compose.yaml against the Compose specification, and against what the image expects.

``compose-spec.json`` is the Compose specification's JSON schema, vendored from
github.com/compose-spec/compose-spec (schema/compose-spec.json at commit 170098ba07d9,
Apache-2.0). No engine is needed: the file is parsed as compose parses it (YAML, merge keys,
``${VAR}`` interpolation from .env) and compared with the Containerfile, the settings'
``ENV_VARS``, ``.env.example`` and the Caddyfile it mounts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema_rs
import yaml

from agent.config.config_file import UpstreamConfig
from agent.config.settings import ENV_VARS, load_settings
from agent.http.serving import SHUTDOWN_DRAIN_SECONDS
from tests.support.required_servers import missing_test_server

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((Path(__file__).with_name("compose-spec.json")).read_text())
COMPOSE_TEXT = (REPO / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
CONTAINERFILE = (REPO / "Containerfile").read_text()
ENV_EXAMPLE = (REPO / ".env.example").read_text()
COMPOSE_CADDYFILE = REPO / "deploy" / "compose" / "Caddyfile"
SETTINGS_VARIABLES = {var.name for var in ENV_VARS}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::[?-][^}]*)?\}")
AGENTS = sorted(name for name, s in COMPOSE["services"].items() if "build" in s)


def instruction(name: str) -> list[str]:
    """The arguments of each ``NAME`` instruction of the Containerfile's last stage."""
    last_stage = CONTAINERFILE.rsplit("\nFROM ", 1)[1]
    return re.findall(rf"^{name} (.+)$", last_stage, flags=re.MULTILINE)


def env_example() -> dict[str, str]:
    """The variables .env.example sets (commented-out optional ones excluded)."""
    pairs = re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE, flags=re.MULTILINE)
    return dict(pairs)


def env_example_mentions() -> set[str]:
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, flags=re.MULTILINE))


def interpolate(value: str, env: dict[str, str]) -> str:
    return INTERPOLATION.sub(lambda m: env[m.group(1)], value)


def test_compose_yaml_is_valid_against_the_compose_specification():
    validator = jsonschema_rs.validator_for(SCHEMA)
    errors = [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert errors == []


def test_the_schema_check_refuses_what_compose_would_refuse():
    """The vendored schema is really applied: a misspelt key and a bad value are errors."""
    validator = jsonschema_rs.validator_for(SCHEMA)
    broken = yaml.safe_load(COMPOSE_TEXT)
    broken["services"]["redis"]["restrat"] = "always"
    assert not validator.is_valid(broken)
    broken = yaml.safe_load(COMPOSE_TEXT)
    broken["services"]["caddy"]["depends_on"]["agent-a"]["condition"] = "service_ready"
    assert not validator.is_valid(broken)


def test_two_agent_replicas_build_the_shipped_containerfile():
    assert AGENTS == ["agent-a", "agent-b"]
    for name in AGENTS:
        service = COMPOSE["services"][name]
        assert service["build"] == {"context": ".", "dockerfile": "Containerfile"}
        assert service["image"] == COMPOSE["services"][AGENTS[0]]["image"]


def test_every_service_waited_for_as_healthy_has_its_own_health_check():
    """``condition: service_healthy`` on a service without a compose ``healthcheck`` waits on
    the image's HEALTHCHECK, which an OCI image (podman's default format) does not carry:
    Caddy would never start under podman-compose. Each such service states one here."""
    waited = {
        name
        for service in COMPOSE["services"].values()
        for name, how in (service.get("depends_on") or {}).items()
        if how.get("condition") == "service_healthy"
    }
    assert set(AGENTS) | {"redis"} <= waited
    for name in waited:
        assert "test" in COMPOSE["services"][name].get("healthcheck", {}), name


def test_the_agents_health_check_is_the_images():
    joined = CONTAINERFILE.rsplit("\nFROM ", 1)[1].replace("\\\n", " ")
    (healthcheck,) = re.findall(r"^HEALTHCHECK (.+)$", joined, flags=re.MULTILINE)
    options = dict(re.findall(r"--([a-z-]+)=(\S+)", healthcheck))
    command = json.loads(re.search(r"CMD (\[.*\])", healthcheck).group(1))  # type: ignore[union-attr]
    for agent in AGENTS:
        check = COMPOSE["services"][agent]["healthcheck"]
        assert check["test"] == ["CMD", *command]
        assert {
            "interval": check["interval"],
            "timeout": check["timeout"],
            "start-period": check["start_period"],
            "retries": str(check["retries"]),
        } == options


def test_the_supported_compose_tools_are_named():
    """docker-compose 1.x refuses the top-level ``name``; the file says which tools run it."""
    assert "name" in COMPOSE
    assert "Supported: Docker Compose v2 (`docker compose`) and podman-compose" in COMPOSE_TEXT
    assert "Not the Python\n# docker-compose 1.x" in COMPOSE_TEXT


def test_ports_match_what_the_image_exposes_and_caddy_proxies_to():
    exposed = instruction("EXPOSE")
    assert exposed == ["3000"]
    assert re.search(r"^\s+PORT=3000", CONTAINERFILE, flags=re.MULTILINE)
    for name in AGENTS:
        service = COMPOSE["services"][name]
        assert service["expose"] == exposed
        assert "ports" not in service, "only Caddy is reachable from outside"
        assert "PORT" not in service.get("environment", {})
    caddyfile = COMPOSE_CADDYFILE.read_text()
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", caddyfile).group(1).split()  # type: ignore[union-attr]
    assert upstreams == [f"{name}:{exposed[0]}" for name in AGENTS]
    assert "ports" not in COMPOSE["services"]["redis"]
    assert COMPOSE["services"]["caddy"]["ports"] == ["80:80", "443:443"]


def test_each_replica_keeps_its_data_in_the_image_volume():
    (volume,) = instruction("VOLUME")
    (data_dir,) = json.loads(volume)
    declared = set(COMPOSE["volumes"])
    named = []
    for name in AGENTS:
        mounts = [m.split(":") for m in COMPOSE["services"][name]["volumes"]]
        assert [target for _, target in mounts] == [data_dir]
        named += [source for source, _ in mounts]
    assert len(set(named)) == len(AGENTS), "one volume per replica (SQLite files are not shared)"
    assert set(named) <= declared
    # The default settings' relative sandbox_db_path lands in that volume.
    (workdir,) = instruction("WORKDIR")
    defaults = yaml.safe_load((REPO / "agent" / "config.yaml").read_text())
    assert str(Path(workdir) / defaults["sandbox_db_path"]).startswith(data_dir + "/")
    for service in COMPOSE["services"].values():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source in declared or (REPO / source).exists(), mount


def test_every_variable_the_agents_get_is_one_the_settings_read():
    for name in AGENTS:
        service = COMPOSE["services"][name]
        assert service["env_file"] == ".env"
        assert set(service["environment"]) <= SETTINGS_VARIABLES
        assert "SIGNALWIRE_SWAIG_SECRET" in service["environment"], "replicas share it"
        redis_host = service["environment"]["REDIS_URL"].split("//")[1].split(":")[0]
        assert redis_host in COMPOSE["services"]
    caddy_reads = set(re.findall(r"\{\$(\w+)\}", COMPOSE_CADDYFILE.read_text()))
    assert caddy_reads == set(COMPOSE["services"]["caddy"]["environment"])


def test_env_example_names_every_variable_compose_needs_and_nothing_unknown():
    interpolated = {m.group(1) for m in INTERPOLATION.finditer(COMPOSE_TEXT)}
    assert interpolated <= set(env_example())
    assert env_example_mentions() <= SETTINGS_VARIABLES | interpolated
    # Each variable has a line above it saying what it is or where to find it.
    for name in env_example_mentions():
        before = ENV_EXAMPLE.split(f"{name}=", 1)[0].rstrip("# \n").splitlines()
        assert before and before[-1].lstrip().startswith("#"), f"{name} is not explained"


def test_env_example_filled_in_starts_the_agents_as_compose_runs_them(tmp_path):
    """.env.example with its blanks filled (as the operator does) plus what compose.yaml
    sets: the agent's settings load, with the account and the public URL."""
    filled = {
        name: value or f"operator-value-{name.lower()}-0123456789"
        for name, value in env_example().items()
    }
    filled["SIGNALWIRE_PROJECT_ID"] = "11111111-2222-3333-4444-555555555555"
    compose_env = COMPOSE["services"]["agent-a"]["environment"]
    environ = {**filled, **{k: interpolate(v, filled) for k, v in compose_env.items()}}
    settings = load_settings(environ)
    assert settings.provider == "signalwire"
    assert settings.proxy_url_base == "https://agent.example.com"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.signing_key is not None


def test_the_stop_grace_period_covers_the_drain_and_the_drain_covers_any_request():
    deadline_bound = UpstreamConfig.model_fields["deadline_seconds"].metadata
    longest_request = max(m.le for m in deadline_bound if hasattr(m, "le"))
    assert longest_request < SHUTDOWN_DRAIN_SECONDS
    for name in AGENTS:
        grace = COMPOSE["services"][name]["stop_grace_period"]
        assert grace.endswith("s") and int(grace[:-1]) >= SHUTDOWN_DRAIN_SECONDS + 10
    assert instruction("STOPSIGNAL") == ["SIGTERM"]


def test_redis_runs_with_the_persistence_the_readme_states():
    command = COMPOSE["services"]["redis"]["command"]
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options == {
        "--appendonly": "yes",
        "--appendfsync": "everysec",
        "--save": "",
        "--maxmemory-policy": "noeviction",
    }
    assert COMPOSE["services"]["redis"]["volumes"] == ["redis-data:/data"]


def caddy_servers(caddyfile: Path) -> dict:
    caddy = shutil.which("caddy")
    if caddy is None:
        missing_test_server("Caddy is not installed (apt-get install caddy)")
    env = {"MFA_PUBLIC_HOST": "agent.example.com", "MFA_TLS": "ops@example.com"}
    adapted = subprocess.run(
        [caddy, "adapt", "--config", str(caddyfile)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    )
    return json.loads(adapted.stdout)["apps"]["http"]["servers"]


def reverse_proxy_of(servers: dict) -> dict:
    routes = servers["srv0"]["routes"][0]["handle"][0]["routes"]
    return next(h for r in routes for h in r["handle"] if h["handler"] == "reverse_proxy")


def test_the_compose_caddyfile_is_deploy_caddyfile_but_for_the_upstreams():
    """Timeouts, body limit, TLS, headers, load balancing and health checks stay those of
    the tested deploy/Caddyfile (tests/deploy): only the upstreams differ."""
    single = caddy_servers(REPO / "deploy" / "Caddyfile")
    compose = caddy_servers(COMPOSE_CADDYFILE)
    added = reverse_proxy_of(compose).pop("upstreams")
    reverse_proxy_of(single).pop("upstreams")
    assert added == [{"dial": "agent-a:3000"}, {"dial": "agent-b:3000"}]
    assert compose == single


def test_the_containerfile_reaches_python_through_path_on_either_base():
    """python:3.13-slim has Python in /usr/local/bin, Debian's python3 is in /usr/bin."""
    assert "/usr/bin/python" not in CONTAINERFILE
    assert "/usr/local/bin/python" not in CONTAINERFILE
    assert re.search(r"^ARG BASE=python:3\.13-slim$", CONTAINERFILE, flags=re.MULTILINE)
    assert CONTAINERFILE.count("FROM ${BASE}") == 2


def test_the_build_context_admits_the_sources_and_never_the_operators_secrets():
    """.dockerignore is an allow-list: .env (secrets), .venv and .git stay out of images."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    admitted = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert admitted == {"pyproject.toml", "README.md", "agent", "skills", "prompts", "wheels"}
