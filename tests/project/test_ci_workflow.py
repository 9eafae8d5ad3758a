"""The GitHub Actions workflow: it runs what CI runs here, every make target it calls
exists, and AWS credentials come only from OIDC, never from stored keys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def _workflow() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return found


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_the_test_job_runs_ci_and_builds_the_package() -> None:
    test = _workflow()["jobs"]["test"]
    assert ".ci/run" in _runs(test)
    assert "make package" in _runs(test)
    assert "make tf-validate" in _runs(test)


def test_every_make_target_it_calls_exists() -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    called = set(re.findall(r"\bmake ([a-z][a-z-]*)", WORKFLOW.read_text()))
    assert called
    assert called <= targets, sorted(called - targets)


def test_aws_credentials_come_from_oidc_only() -> None:
    text = WORKFLOW.read_text()
    assert "aws-access-key-id" not in text
    assert "secrets.AWS" not in text
    jobs = _workflow()["jobs"]
    for name in ("plan", "deploy"):
        assert jobs[name]["permissions"]["id-token"] == "write"
        assume = [
            s for s in jobs[name]["steps"] if "configure-aws-credentials" in s.get("uses", "")
        ]
        assert assume[0]["with"]["role-to-assume"].startswith("${{ vars.")
    assert "refs/heads/main" in jobs["deploy"]["if"]
    assert _workflow()["permissions"] == {"contents": "read"}


def test_the_deploy_pushes_the_pipeline_image_before_the_apply_that_names_it() -> None:
    deploy = _runs(_workflow()["jobs"]["deploy"])
    repository = deploy.index("-target=aws_ecr_repository.pipeline")
    push = deploy.index("--push")
    named = deploy.index("pipeline_image_tag=${GITHUB_SHA}")
    assert repository < push < named  # the repository exists, then the image, then its use
    assert "glue_artifacts=../../dist/glue" in deploy


def test_the_tests_run_on_the_python_the_lambdas_and_the_image_run() -> None:
    """The API zip and the pipeline image target CPython 3.12 (Amazon Linux 2023); the tests
    must run there too, not only on the 3.11 of a developer's machine."""
    from orchestration.package import PYTHON_VERSION as IMAGE_PYTHON
    from serving.package import PYTHON_VERSION as LAMBDA_PYTHON

    dockerfile = (ROOT / "infra" / "docker" / "pipeline.Dockerfile").read_text()
    base = re.search(r"^FROM \S+/lambda/python:(\d+\.\d+)", dockerfile, re.M)
    assert base is not None
    assert base.group(1) == IMAGE_PYTHON == LAMBDA_PYTHON
    test = _workflow()["jobs"]["test"]
    versions = test["strategy"]["matrix"]["python"]
    assert LAMBDA_PYTHON in versions
    assert "3.11" in versions  # the Makefile's, and the one a newcomer's machine has
    setup = next(s for s in test["steps"] if "setup-python" in str(s.get("uses", "")))
    assert setup["with"]["python-version"] == "${{ matrix.python }}"
