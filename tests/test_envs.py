"""The conda environments of envs/: one per kind of stage, each complete against pyproject."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from conftest import REPO

# conda-forge names of the PyPI distributions readrace depends on.
CONDA_NAMES = {"torch": {"cpu": "pytorch-cpu", "gpu": "pytorch-gpu"}, "matplotlib": "matplotlib-base", "simpleitk": "simpleitk"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].strip().lower()


def _env_packages(kind: str) -> set[str]:
    env = yaml.safe_load((REPO / "envs" / f"{kind}.yaml").read_text())
    names = set()
    for item in env["dependencies"]:
        if isinstance(item, dict):
            names |= {_name(r) for r in item["pip"] if not r.startswith("-")}
        else:
            names.add(_name(item))
    return names


def _rule_blocks() -> dict[str, str]:
    blocks = {}
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        for match in re.finditer(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", path.read_text(), flags=re.S | re.M):
            blocks[match[1]] = match[2]
    return blocks


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_environment_holds_every_dependency_of_the_package(kind):
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = _env_packages(kind)
    missing = []
    for requirement in pyproject["project"]["dependencies"]:
        name = _name(requirement)
        conda = CONDA_NAMES.get(name, name)
        conda = conda[kind] if isinstance(conda, dict) else conda
        if conda not in packages:
            missing.append(name)
    assert not missing, f"envs/{kind}.yaml lacks {missing}"
    # The other build of torch would be pulled in by pip if it were absent.
    other = "pytorch-gpu" if kind == "cpu" else "pytorch-cpu"
    assert other not in packages and "torch" not in packages


def test_gpu_rules_use_the_gpu_environment_and_the_others_the_cpu_one():
    blocks = _rule_blocks()
    assert {"train_model", "predict", "ingest_shard", "score"} <= set(blocks)
    for rule, body in blocks.items():
        if rule == "all":
            continue
        env = re.search(r'conda:\s*\n\s*"\.\./\.\./envs/(\w+)\.yaml"', body)
        assert env, f"rule {rule} has no conda environment"
        assert (REPO / "envs" / f"{env[1]}.yaml").is_file()
        wants_gpu = "gpu=" in body
        assert env[1] == ("gpu" if wants_gpu else "cpu"), rule
    assert "gpu=" in blocks["train_model"] and "gpu=" in blocks["predict"]
