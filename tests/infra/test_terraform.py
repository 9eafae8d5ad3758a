"""The Terraform: formatted, valid against the AWS provider, clean under checkov, and true to
the code it deploys (the files it reads exist; the RECS_* settings it names are real)."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from common.settings import RecsSettings

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "infra" / "terraform"
PLUGINS = Path(os.environ.get("TF_PLUGIN_DIR", "/opt/tf-plugins"))
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
#: Every module that declares settings.
STAGES = (
    "ingestion.settings",
    "ingestion.consumer",
    "etl.settings",
    "training.settings",
    "serving.settings",
    "orchestration.settings",
)


def _tf_files() -> str:
    return "\n".join(p.read_text() for p in sorted(TERRAFORM.glob("*.tf")))


def _terraform() -> str:
    found = shutil.which("terraform")
    if found is None:
        pytest.skip("terraform is not installed here; `make tf-validate` runs where it is")
    if not (PLUGINS / "registry.terraform.io").is_dir():
        pytest.skip(f"no AWS provider mirror at {PLUGINS} (set TF_PLUGIN_DIR to the folder)")
    return found


def _run(*args: str, cwd: Path = TERRAFORM) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_terraform_is_formatted_and_valid(tmp_path: Path) -> None:
    terraform = _terraform()
    fmt = _run(terraform, "fmt", "-check", "-recursive")
    assert fmt.returncode == 0, f"run `terraform fmt` in infra/terraform: {fmt.stdout}"
    # A copy, so the test leaves no .terraform folder or lock file in the tree.
    work = tmp_path / "infra" / "terraform"
    shutil.copytree(TERRAFORM, work, ignore=shutil.ignore_patterns(".terraform*"))
    shutil.copytree(ROOT / "orchestration", tmp_path / "orchestration")  # templatefile reads it
    init = _run(
        terraform, "init", "-backend=false", "-input=false", f"-plugin-dir={PLUGINS}", cwd=work
    )
    assert init.returncode == 0, init.stderr
    validate = _run(terraform, "validate", "-json", cwd=work)
    report = json.loads(validate.stdout)
    assert report["valid"], report["diagnostics"]


def test_checkov_finds_nothing_and_every_skip_says_why() -> None:
    skips = re.findall(r"#checkov:skip=([A-Z0-9_]+)(?::(.*))?", _tf_files())
    assert skips, "the skips are read from the files; none found means the pattern broke"
    for check, reason in skips:
        assert len(reason.strip()) > 20, f"checkov skip {check} needs a reason"
    if not CHECKOV.exists():
        pytest.skip("checkov is not installed: `make checkov` (make test installs it)")
    scan = _run(
        str(CHECKOV), "-d", ".", "--framework", "terraform", "--compact", "--quiet", "-o", "json"
    )
    report = json.loads(scan.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["skipped"] == len(skips)


def test_the_files_terraform_reads_exist() -> None:
    for path in re.findall(r'\$\{path\.module\}/([^"]+)"', _tf_files()):
        assert (TERRAFORM / path).resolve().exists(), path


def test_every_recs_setting_terraform_names_is_one_the_code_reads() -> None:
    for stage in STAGES:
        importlib.import_module(stage)
    known: set[str] = set()
    classes: list[type] = [RecsSettings]
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        known |= {f"RECS_{name.upper()}" for name in getattr(cls, "model_fields", {})}
    named = set(re.findall(r"\bRECS_[A-Z_]+[A-Z]\b", _tf_files()))
    assert named, "the outputs say which setting each fills"
    assert named <= known, f"not settings of any stage: {sorted(named - known)}"


def test_every_lambda_handler_terraform_names_exists() -> None:
    handlers = set(re.findall(r'handler\s*=\s*"([a-z_.]+)"', _tf_files()))
    handlers |= set(re.findall(r"handler \(?([a-z_]+(?:\.[a-z_]+)+)\)?", _tf_files()))
    # The pipeline's image names its handler in image_config.
    handlers |= set(re.findall(r'command\s*=\s*\["([a-z_]+(?:\.[a-z_]+)+)"\]', _tf_files()))
    assert {
        "serving.handler.handler",
        "ingestion.consumer.handler",
        "orchestration.handler.handler",
    } <= handlers
    for dotted in handlers:
        module, _, name = dotted.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), dotted


def test_the_api_lambda_is_given_every_aws_setting_it_needs() -> None:
    from serving.settings import ServingSettings

    block = _tf_files().split("api_environment = merge(", 1)[1].split("consumer_environment", 1)[0]
    given = set(re.findall(r"\b(RECS_[A-Z_]+)\s*=", block))
    # Values stand in for Terraform's; what matters is which settings are set at all.
    env = {name: "x" for name in given}
    env |= {"RECS_LAKE": "s3://b/lake", "RECS_SINK": "kinesis", "RECS_CORS_ORIGINS": ""}
    # The Lambda holds only the item side: users' histories come from the store.
    assert re.search(r'RECS_MODEL_USERS\s*=\s*"store"', block)
    env["RECS_MODEL_USERS"] = "store"
    env |= {k: f"dynamodb://{k.lower()}" for k in given if k.endswith(("STORE", "HISTORY"))}
    env.pop("RECS_API_KEYS", None)
    env["RECS_PERSONALIZE_CAMPAIGN_ARN"] = "arn:aws:personalize:us-east-2:1:campaign/recs-prod"
    settings = ServingSettings.from_env(env)
    assert settings.local_files_beside_aws() == []


def test_the_pipeline_is_given_every_aws_setting_its_steps_read() -> None:
    from etl.settings import EtlSettings
    from orchestration.settings import PipelineSettings

    tf = _tf_files()
    block = tf.split("pipeline_environment = merge(", 1)[1].split("account =", 1)[0]
    given = dict(re.findall(r"\b(RECS_[A-Z_]+)\s*=\s*(.+)", block))
    env = {name: "x" for name in given}
    env |= {k: f"dynamodb://{k.lower()}" for k in given if k.endswith(("STORE", "HISTORY"))}
    env |= {k: "30" for k in given if k.endswith("_DAYS")}
    env |= {"RECS_EXPLORATION": "0.2"}
    env |= {"RECS_LAKE": "s3://b/lake", "RECS_SINK": "kinesis", "RECS_TRAINER": "local"}
    env |= {"RECS_ETL_ON": "glue", "RECS_TRAIN_ON": "batch"}
    assert given["RECS_STORE_PUBLISH"].startswith('"import"')  # a table per version on AWS
    env |= {"RECS_STORE_PUBLISH": "import"}
    settings = PipelineSettings.from_env(env)
    assert settings.local_files_beside_aws() == []
    assert settings.notify_topic_arn == "x"  # the summary goes to SNS, not only to a log
    assert settings.exploration == 0.2  # -var exploration reaches the nightly training
    assert EtlSettings.from_env(env).glue_database == "x"  # Athena sees what the ETL writes
    # The Lambda, the Glue job and the Batch job all take this one environment.
    assert tf.count("local.pipeline_environment") == 3


def test_the_http_api_routes_every_path_the_app_serves() -> None:
    from serving.app import METHODS

    declared = re.search(r"api_paths\s*=\s*\[([^\]]*)\]", _tf_files())
    assert declared is not None
    assert set(re.findall(r'"([^"]+)"', declared.group(1))) == set(METHODS)


def test_terraforms_filters_reach_the_settings_as_json(tmp_path: Path) -> None:
    """`-var filters=...` becomes RECS_FILTERS, which the API's and the pipeline's settings
    read: the variable and the local, evaluated by `terraform console` in a module of their
    own (no provider needed)."""
    from orchestration.settings import PipelineSettings

    tf = _tf_files()
    variable = re.search(r'variable "filters" \{.*?\n\}\n', tf, re.S)
    local = re.search(r"  filters_environment = .*?\n  \}\n", tf, re.S)
    assert variable is not None
    assert local is not None
    (tmp_path / "main.tf").write_text(f"{variable.group()}\nlocals {{\n{local.group()}}}\n")
    filters = (
        '{ cheap = { expression = "EXCLUDE ItemID WHERE Items.PRICE > $MAX" }, '
        'lately = { expression = "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (\\"view\\")", '
        "within_days = 7 } }"
    )
    terraform = _terraform()
    assert _run(terraform, "init", "-backend=false", "-input=false", cwd=tmp_path).returncode == 0
    shown = _console(terraform, tmp_path, filters, "jsonencode(local.filters_environment)")
    assert shown.returncode == 0, shown.stderr
    env = json.loads(json.loads(shown.stdout.strip()))
    settings = PipelineSettings.from_env({**env, "RECS_LAKE": "./lake"})
    assert settings.filters["lately"].within_days == 7
    assert settings.filters["cheap"].personalize_arn is None
    assert settings.filters["cheap"].parsed.params == {"MAX"}
    reserved = '{ not-seen = { expression = "EXCLUDE ItemID WHERE Items.PRICE > 1" } }'
    refused = _console(terraform, tmp_path, reserved, "local.filters_environment")
    assert refused.returncode != 0
    assert "not not-purchased or not-seen" in refused.stderr


def _console(
    terraform: str, folder: Path, filters: str, expression: str
) -> subprocess.CompletedProcess[str]:
    """`terraform console` in `folder` with `-var filters=...`, evaluating one expression."""
    return subprocess.run(
        [terraform, "console", f"-var=filters={filters}"],
        input=f"{expression}\n",
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
