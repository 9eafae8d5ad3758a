"""What a real account refuses and the emulator lets through, read from the Terraform itself.

moto enforces no KMS key policy, checks IAM resources only for S3 and SQS, and knows no
account quotas, so `make aws-local` cannot catch these. Each rule below is AWS's documented
behaviour, checked on the parsed Terraform (python-hcl2):
- a service that writes to a resource encrypted with the lake's key needs that key, from the
  key policy (a service principal) or from the identity policy of the role it acts as;
- actions that take no resource ARN must be granted on "*";
- a new account's Lambda concurrency quota can be 10, so nothing reserves any by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "infra" / "terraform"
KEY = "${aws_kms_key.lake.arn}"
Block = dict[str, Any]


def _clean(value: Any) -> Any:
    """python-hcl2 8 keeps string literals quoted and adds `__meta__` keys: drop both."""
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@cache
def blocks() -> dict[tuple[str, str, str], Block]:
    """Every resource and data block: (resource | data, type, name) to its body."""
    found: dict[tuple[str, str, str], Block] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            parsed = _clean(hcl2.load(handle))
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for type_, named in block.items():
                    for name, body in named.items():
                        found[(kind, type_, name)] = body
    return found


def statements(document: Block) -> Iterator[Block]:
    """A policy document's statements, the dynamic ones' content included."""
    yield from document.get("statement", [])
    for dynamic in document.get("dynamic", []):
        yield from dynamic.get("statement", {}).get("content", [])


def _matches(granted: str, action: str) -> bool:
    return re.fullmatch(granted.replace("*", ".*"), action) is not None


def grants(statement: Block, action: str) -> bool:
    return any(_matches(a, action) for a in statement.get("actions", []))


def documents() -> dict[str, Block]:
    return {
        name: body for (kind, t, name), body in blocks().items() if t == "aws_iam_policy_document"
    }


def role_documents(role: str) -> list[Block]:
    """The identity policy documents attached to `aws_iam_role.<role>`."""
    attached = [
        body
        for (_, t, _), body in blocks().items()
        if t == "aws_iam_role_policy" and re.search(rf"aws_iam_role\.{role}\b", str(body["role"]))
    ]
    assert attached, f"no policy is attached to aws_iam_role.{role}"
    names = [re.search(r"aws_iam_policy_document\.(\w+)", str(a["policy"])) for a in attached]
    return [documents()[m.group(1)] for m in names if m]


def may_use_key(document_list: list[Block], *actions: str) -> bool:
    return all(
        any(grants(s, action) and KEY in s.get("resources", []) for d in document_list
            for s in statements(d))
        for action in actions
    )  # fmt: skip


def key_policy_principals(*actions: str) -> set[str]:
    """Service principals the lake key's own policy lets do all of `actions`."""
    found = set()
    for statement in statements(documents()["lake_key"]):
        if not all(grants(statement, a) for a in actions):
            continue
        for principal in statement.get("principals", []):
            if principal["type"] == "Service":
                found |= set(principal["identifiers"])
    return found


def test_personalize_put_events_is_granted_on_every_resource() -> None:
    """PutEvents has no resource type in the Service Authorization Reference: a statement
    scoped to an event tracker's ARN never matches, and every forwarded event is denied."""
    found = [
        s for d in documents().values() for s in statements(d) if grants(s, "personalize:PutEvents")
    ]
    assert found, "the forwarding role's PutEvents grant is read from the Terraform"
    for statement in found:
        assert statement["resources"] == ["*"], statement


def test_cloudwatch_may_use_the_key_of_the_topic_its_alarms_publish_to() -> None:
    """A CMK-encrypted topic drops CloudWatch's alarm notifications unless the key policy
    lets cloudwatch.amazonaws.com Decrypt and GenerateDataKey*."""
    alarms = [b for (_, t, _), b in blocks().items() if t == "aws_cloudwatch_metric_alarm"]
    assert alarms
    topics = {a.split(".")[1] for alarm in alarms for a in alarm["alarm_actions"]}
    for topic in topics:
        body = blocks()[("resource", "aws_sns_topic", topic)]
        assert body["kms_master_key_id"] == KEY  # the rule below is about this key
    allowed = key_policy_principals("kms:Decrypt", "kms:GenerateDataKey")
    assert "cloudwatch.amazonaws.com" in allowed


def test_every_role_that_publishes_or_queues_to_encrypted_resources_may_use_the_key() -> None:
    """SNS and SQS encrypt each message with a data key made under the caller's identity."""
    for name, document in documents().items():
        sends = [
            s for s in statements(document)
            if grants(s, "sns:Publish") or grants(s, "sqs:SendMessage")
        ]  # fmt: skip
        if sends:
            assert may_use_key([document], "kms:GenerateDataKey", "kms:Decrypt"), name


def test_the_schedules_role_may_decrypt_its_encrypted_payload() -> None:
    """A schedule with a customer managed key decrypts its target input as its role."""
    for (_, t, name), body in blocks().items():
        if t != "aws_scheduler_schedule" or body.get("kms_key_arn") != KEY:
            continue
        role = re.search(r"aws_iam_role\.(\w+)", str(body["target"][0]["role_arn"]))
        assert role is not None, name
        assert may_use_key(role_documents(role.group(1)), "kms:Decrypt"), name


def test_log_groups_on_the_lake_key_are_granted_to_cloudwatch_logs() -> None:
    groups = [
        n for (_, t, n), b in blocks().items()
        if t == "aws_cloudwatch_log_group" and b.get("kms_key_id") == KEY
    ]  # fmt: skip
    assert groups
    allowed = key_policy_principals("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey")
    assert any(p.startswith("logs.") for p in allowed)


def test_no_function_reserves_concurrency_by_default() -> None:
    """Reserved concurrency comes out of the account's quota, which AWS requires to leave 10
    unreserved: a new account's quota is often 10, so any reservation fails the apply."""
    variables: dict[str, Block] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            for block in _clean(hcl2.load(handle)).get("variable", []):
                variables.update(block)
    functions = [
        (n, b) for (_, t, n), b in blocks().items() if t == "aws_lambda_function"
    ]  # fmt: skip
    assert len(functions) == 2
    for name, body in functions:
        reserved = body.get("reserved_concurrent_executions")
        if reserved is None:
            continue
        used = re.findall(r"var\.(\w+)", str(reserved))
        assert used, f"{name} reserves a fixed {reserved}"
        assert not re.search(r"(?<![\w.])\d+", str(reserved)), f"{name}: {reserved}"
        for variable in used:
            assert variables[variable]["default"] is None, f"{variable} reserves by default"


#: The shops behind api.tf's sizing table: events and recommendation requests a day.
SHOPS = {"small": (100_000, 30_000), "medium": (5_000_000, 3_000_000),
         "large": (50_000_000, 50_000_000)}  # fmt: skip


def test_each_sizes_throttle_covers_twice_its_peak_under_the_regions_quota() -> None:
    """The throttle that was 500 requests/s would refuse the large shop's peak of ~2,900:
    events posted 100 to a request, plus recommendation requests, at five times the mean."""
    with (TERRAFORM / "api.tf").open() as handle:
        parsed = _clean(hcl2.load(handle))
    sizing = next(block["sizing"] for block in parsed["locals"] if "sizing" in block)
    assert set(sizing) == set(SHOPS)
    for size, (events, requests) in SHOPS.items():
        peak = 5 * (requests + events / 100) / 86_400
        rate = float(sizing[size]["rate"])
        assert 2 * peak <= rate <= 10_000, (size, peak, rate)  # API Gateway's regional quota
        assert float(sizing[size]["burst"]) <= 5_000  # the account's burst quota
    # The big-shop benchmark judges the API's model load against the large size's memory.
    from benchmarks.big_shop import API_MEMORY_GB, PIPELINE_MEMORY_GB

    assert float(sizing["large"]["api_memory"]) == API_MEMORY_GB * 1024
    assert float(sizing["large"]["pipeline_memory"]) == PIPELINE_MEMORY_GB * 1024
    stage = blocks()[("resource", "aws_apigatewayv2_stage", "recs")]
    throttles = str(stage["default_route_settings"])
    assert "local.sizing[var.size].rate" in throttles


def test_a_table_swap_may_make_read_and_drop_each_versions_table() -> None:
    """RECS_STORE_PUBLISH=import makes <store>.<version> with ImportTable, encrypted with the
    lake's key (a grant DynamoDB makes for the caller), reading the staged rows and logging
    as the caller; the API reads those tables, and an old one is deleted."""
    tables = "${aws_dynamodb_table.online_store.arn}.*"
    publisher = documents()["publisher"]
    for action in ("dynamodb:ImportTable", "dynamodb:DescribeImport", "dynamodb:DeleteTable"):
        assert any(grants(s, action) and tables in s["resources"] for s in statements(publisher)), (
            action
        )
    assert any(
        grants(s, "logs:CreateLogGroup") and any("/aws-dynamodb/" in r for r in s["resources"])
        for s in statements(publisher)
    )
    assert may_use_key([publisher], "kms:CreateGrant", "kms:DescribeKey")
    assert any(
        grants(s, "dynamodb:GetItem") and tables in s["resources"]
        for s in statements(documents()["api"])
    )


def test_the_publisher_may_start_and_end_an_experiment() -> None:
    """`recs models experiment start|stop`, and a publish that promotes an experiment's
    candidate, put and delete the store's experiment item (PutItem, DeleteItem) beside the
    rows and the pointer; a real account refuses DeleteItem where only BatchWriteItem's
    deletes are granted."""
    store = "${aws_dynamodb_table.online_store.arn}"
    publisher = documents()["publisher"]
    for action in (
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    ):
        assert any(grants(s, action) and store in s["resources"] for s in statements(publisher)), (
            action
        )
    records = "${aws_s3_bucket.lake.arn}/${local.lake_root}_state/experiments/*"
    for action in ("s3:GetObject", "s3:PutObject"):
        assert any(grants(s, action) and records in s["resources"] for s in statements(publisher))
