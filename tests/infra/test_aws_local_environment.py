"""`make aws-local` runs each Lambda handler and Glue job in its own process environment:
only what Terraform declared for it and what the runtime gives (credentials, region), so a
setting Terraform forgot fails on the emulator as it would on AWS."""

from __future__ import annotations

import os

import pytest

from infra.aws_local import environment


def test_a_handler_sees_only_its_declared_variables_and_the_runtimes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECS_STORE", "dynamodb://the-runners-own")
    monkeypatch.setenv("RECS_GLUE_DATABASE", "runners_db")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "role-credentials")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with environment({"RECS_HISTORY": "dynamodb://history"}):
        assert os.environ["RECS_HISTORY"] == "dynamodb://history"
        assert "RECS_STORE" not in os.environ  # the pipeline ran without it before
        assert "RECS_GLUE_DATABASE" not in os.environ
        assert os.environ["AWS_ACCESS_KEY_ID"] == "role-credentials"
        assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    assert os.environ["RECS_STORE"] == "dynamodb://the-runners-own"
    assert "RECS_HISTORY" not in os.environ
