"""docker-compose.yml, the Dockerfile, deploy/keyward.env.example and docs/deployment.md, checked without Docker.

There is no Docker engine in CI and PyYAML is not a dependency, so :func:`load_compose` reads the small YAML subset
the compose file is written in (block mappings, flow sequences and mappings, quoted and plain scalars, anchors,
aliases and ``<<`` merge keys) and refuses anything else, so the file cannot drift into syntax this test would
misread.
"""

from __future__ import annotations

import ast
import re
import secrets
import shlex
from pathlib import Path
from typing import Any

import pytest

from verifier.config import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "api", "worker", "beat")
SETTINGS_VARS = {f"KEYWARD_{name.upper()}" for name in Settings.model_fields}
PRODUCTION_SECRETS = (
    "KEYWARD_CHALLENGE_SECRET",
    "KEYWARD_CREDENTIAL_PEPPER",
    "KEYWARD_KEK_HEX",
    "KEYWARD_RESULT_SIGNING_KEY_PEM",
)


# -- a strict reader for the compose file's YAML subset ----------------------------------------------------------------


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _split_flow(text: str) -> list[str]:
    parts, depth, quote, current = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += ch
    if current.strip():
        parts.append(current.strip())
    return parts


def _scalar(text: str, anchors: dict[str, Any]) -> Any:
    text = text.strip()
    if text.startswith("*"):
        return anchors[text[1:]]
    if text.startswith("[") and text.endswith("]"):
        return [_scalar(p, anchors) for p in _split_flow(text[1:-1])]
    if text.startswith("{") and text.endswith("}"):
        return dict(_key_value(p, anchors) for p in _split_flow(text[1:-1]))
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        body = text[1:-1]
        assert "\\" not in body, f"escapes are outside the subset: {text}"
        return body
    assert text, "empty value"
    assert text[0] not in "&!|>%@`", f"outside the subset: {text!r}"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return {"true": True, "false": False, "null": None}.get(text, text)


def _key_value(text: str, anchors: dict[str, Any]) -> tuple[str, Any]:
    key, sep, value = text.partition(": ")
    assert sep, f"not a key: value pair: {text!r}"
    return key.strip(), _scalar(value, anchors)


def load_compose(text: str) -> dict[str, Any]:
    lines = [(len(raw) - len(raw.lstrip(" ")), raw.strip()) for raw in map(_strip_comment, text.splitlines()) if raw]
    assert all("\t" not in line for _, line in lines)
    anchors: dict[str, Any] = {}

    def block(i: int, indent: int) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}  # from ``<<: *alias``: keys written out in the block win
        while i < len(lines) and lines[i][0] >= indent:
            level, line = lines[i]
            assert level == indent, f"unexpected indentation at {line!r}"
            assert not line.startswith("- "), f"block sequences are outside the subset: {line!r}"
            key, _, rest = line.partition(":")
            rest = rest.strip()
            anchor = None
            if rest.startswith("&"):
                anchor, _, rest = rest.partition(" ")
                anchor = anchor[1:]
            if rest:
                value = _scalar(rest, anchors)
                i += 1
            else:
                value, i = (
                    block(i + 1, lines[i + 1][0]) if i + 1 < len(lines) and lines[i + 1][0] > indent else ({}, i + 1)
                )
            if anchor:
                anchors[anchor] = value
            if key == "<<":
                merged.update(value)
            else:
                assert key not in out, f"duplicate key {key!r}"
                out[key] = value
        return {**merged, **out}, i

    document, end = block(0, 0)
    assert end == len(lines)
    return document


def test_load_compose_subset() -> None:
    doc = load_compose('x: &a\n  k: 1\n  l: ["q", p]  # note\ny:\n  <<: *a\n  k: 2\n  m: {}\n  n: "#not a comment"\n')
    assert doc["y"] == {"k": 2, "l": ["q", "p"], "m": {}, "n": "#not a comment"}
    with pytest.raises(AssertionError):
        load_compose("a:\n  - item\n")


# -- docker-compose.yml ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose((ROOT / "docker-compose.yml").read_text())


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def test_compose_services(compose: dict[str, Any]) -> None:
    assert set(_services(compose)) == {"postgres", "redis", *APP_SERVICES}


def test_compose_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        if name == "migrate":
            assert "healthcheck" not in service
            continue
        check = service["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert {"interval", "timeout", "retries"} <= set(check), name


def test_compose_start_order(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert services["migrate"]["command"] == ["keyward", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker", "beat"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
        }, name


def test_compose_app_services_share_image_env_file_and_production_profile(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        service = _services(compose)[name]
        assert service["build"] == "."
        assert service["image"] == "keyward:local"
        assert service["env_file"] == [".env"]
        assert service["environment"]["KEYWARD_ENVIRONMENT"] == "production"


def test_compose_keyward_variables_are_settings_fields(compose: dict[str, Any]) -> None:
    used = {key for service in _services(compose).values() for key in service.get("environment", {})}
    keyward = {key for key in used if key.startswith("KEYWARD_")}
    assert keyward
    assert keyward <= SETTINGS_VARS, keyward - SETTINGS_VARS


def test_compose_production_environment_passes_settings_validation(compose: dict[str, Any]) -> None:
    """The compose URLs plus the example's secrets, filled in, make a valid production profile."""
    password = secrets.token_hex(16)
    env = {
        key.removeprefix("KEYWARD_").lower(): str(value).replace("${POSTGRES_PASSWORD}", password)
        for key, value in _services(compose)["api"]["environment"].items()
    }
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    settings = Settings.model_validate(
        {
            **env,
            "challenge_secret": secrets.token_urlsafe(32),
            "credential_pepper": secrets.token_urlsafe(32),
            "kek_hex": secrets.token_hex(32),
            "result_signing_key_pem": pem.decode(),
        }
    )
    assert settings.environment == "production"
    assert password in settings.database_url
    with pytest.raises(ValueError, match="refusing to start in production"):
        Settings.model_validate(env)  # the development secrets are refused


def test_compose_commands_name_real_entry_points(compose: dict[str, Any]) -> None:
    import importlib

    from verifier.app import create_app

    services = _services(compose)
    api = services["api"]["command"]
    assert api[:3] == ["uvicorn", "--factory", "verifier.app:create_server_app"]
    module, _, attr = api[2].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    assert "http://127.0.0.1:8000/readyz" in services["api"]["healthcheck"]["test"][-1]
    assert "/readyz" in create_app().openapi()["paths"]
    for name in ("worker", "beat"):
        command = services[name]["command"]
        assert command[:3] == ["celery", "-A", "verifier.worker.celery_app:celery_app"]
        assert name in command
        module, _, attr = command[2].partition(":")
        assert getattr(importlib.import_module(module), attr).main == "keyward"
        assert services[name]["healthcheck"]["test"] == ["CMD", "python", "-m", "verifier.observability.health", name]
    assert any(arg.startswith("--schedule=/tmp/") for arg in services["beat"]["command"])


# -- Dockerfile --------------------------------------------------------------------------------------------------------


def test_dockerfile_slim_non_root_and_complete() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:3.11-slim", "python:3.11-slim"]
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in shlex.split(source):
            assert (ROOT / path).exists(), path
    env_vars = set(re.findall(r"\b(KEYWARD_[A-Z0-9_]+)=", text))
    assert env_vars <= SETTINGS_VARS, env_vars - SETTINGS_VARS
    cmd = re.search(r'^CMD \["uvicorn", "--factory", "verifier\.app:create_server_app"', text, re.M)
    assert cmd is not None


def test_dockerfile_copies_everything_the_wheel_ships() -> None:
    """setup.py ships migrations/, vendor_roots/ and web/ inside the wheel: the build stage must have each of them
    (web/ was once missing, and the image's dashboard had no templates)."""
    text = (ROOT / "Dockerfile").read_text()
    copied = {path for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M) for path in shlex.split(source)}
    shipped = re.search(r"^SHIPPED = (\{.*\})$", (ROOT / "setup.py").read_text(), re.M)
    assert shipped is not None
    assert set(ast.literal_eval(shipped.group(1)).values()) <= copied


def test_dockerfile_installs_the_wheel_alone_from_the_lock() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-deps --only-binary=:all: --require-hashes -r requirements/uv.txt" in text
    assert "uv export --frozen --no-dev --no-emit-project -o /wheels/requirements.txt" in text
    assert "uv export --frozen --only-group build" in text  # the build backend from the lock as well
    assert "pip install --no-deps --require-hashes -r /wheels/requirements.txt" in text
    assert "pip install --no-deps /wheels/keyward-*.whl" in text
    assert "alembic.ini" not in text  # migrations ship in the wheel: nothing is read from a source tree


# -- deploy/keyward.env.example ----------------------------------------------------------------------------------------


def _example_assignments() -> dict[str, tuple[bool, str]]:
    """Variable -> (commented out, value) for every assignment line of the example."""
    out = {}
    for line in (ROOT / "deploy" / "keyward.env.example").read_text().splitlines():
        m = re.fullmatch(r"(#?)([A-Z][A-Z0-9_]*)=(.*)", line)
        if m:
            out[m.group(2)] = (m.group(1) == "#", m.group(3))
    return out


def test_env_example_variables_are_settings_fields() -> None:
    keyward = {k for k in _example_assignments() if k.startswith("KEYWARD_")}
    assert keyward <= SETTINGS_VARS, keyward - SETTINGS_VARS
    assert set(_example_assignments()) - keyward == {"POSTGRES_PASSWORD"}


def test_env_example_lists_every_production_secret_and_sets_none() -> None:
    """Fail-closed: a copied example leaves every secret unset, so production refuses to start until they are."""
    assignments = _example_assignments()
    for name in PRODUCTION_SECRETS:
        commented, _ = assignments[name]
        assert commented, f"{name} must stay commented out in the example"
    assert assignments["POSTGRES_PASSWORD"] == (False, "")


# -- docs/deployment.md ------------------------------------------------------------------------------------------------


def test_deployment_docs_describe_every_setting() -> None:
    text = (ROOT / "docs" / "deployment.md").read_text()
    documented = set(re.findall(r"^\| `(KEYWARD_[A-Z0-9_]+)` \|", text, re.M))
    assert documented == SETTINGS_VARS, {
        "undocumented": SETTINGS_VARS - documented,
        "stale": documented - SETTINGS_VARS,
    }


def test_api_server_runs_on_uvloop_and_httptools() -> None:
    """uvicorn's ``auto`` choices: the C HTTP parser and event loop are installed, so the API does not fall back to
    the pure-Python h11 parser (~20 % of service throughput)."""
    from uvicorn.config import Config

    config = Config(app="verifier.app:create_server_app", factory=True)
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__ == "uvloop"
    finally:
        loop.close()
