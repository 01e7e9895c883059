"""The deployment files agree with the code: the image carries every package, compose configures only
settings that exist, and compose runs the Kafka the tests run."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from imagegen.config import Settings
from imagegen.devstack import maven

ROOT = Path(__file__).resolve().parents[2]


def _packages() -> set[str]:
    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    patterns = [p.removesuffix("*") for p in found["include"]]
    return {
        d.name
        for d in ROOT.iterdir()
        if (d / "__init__.py").is_file() and any(d.name.startswith(p) for p in patterns) and d.name != "tests"
    }


def _copied() -> set[str]:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    return {word for line in lines if line.startswith("COPY ") for word in line.split()[1:-1]}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_image_copies_every_package_the_project_installs() -> None:
    packages = _packages()
    assert {"imagegen", "streams", "api", "projections", "inference", "webhooks"} <= packages
    assert packages - _copied() == set(), "packages the Dockerfile does not copy"


def test_compose_names_only_settings_the_code_has() -> None:
    compose = _compose()
    ours = {name for name, service in compose["services"].items() if service.get("image") == "imagegen:latest"}
    assert {"api", "worker", "projector", "webhooks", "topics"} <= ours
    names = {key for name in ours for key in (compose["services"][name].get("environment") or {})}
    known = {field.upper() for field in Settings.model_fields}
    assert names and names - known == set(), "variables compose sets that Settings does not read"


def test_compose_runs_the_kafka_version_the_pom_pins() -> None:
    image = _compose()["services"]["kafka"]["image"]
    match = re.fullmatch(r"apache/kafka:(\S+)", image)
    assert match, image
    assert match.group(1) == maven.version()
