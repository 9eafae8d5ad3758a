"""IAM on the emulator (`infra.iam_emulation`): a role's requests are allowed on the resources
its policy names and denied elsewhere, with the KMS use the resource's encryption implies,
as AWS decides; `make aws-local` runs every component this way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra.iam_emulation import Enforcer, enforce, resources

ACCOUNT, REGION = "123456789012", "us-east-1"


def _role(iam: Any, name: str, statements: list[dict[str, Any]]) -> str:
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    policy = {"Version": "2012-10-17", "Statement": statements}
    iam.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    return str(arn)


def _as(role_arn: str) -> boto3.Session:
    keys = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="test")["Credentials"]
    return boto3.Session(
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
        region_name=REGION,
    )


@pytest.fixture
def enforcer(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Enforcer]:
    with mock_aws():
        found = Enforcer()
        enforce(monkeypatch.setattr, found)
        yield found


def _table(name: str) -> None:
    boto3.client("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
    )  # fmt: skip


def test_a_role_may_read_the_table_its_policy_names_and_no_other(enforcer: Enforcer) -> None:
    _table("store")
    _table("other")
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/store"
    role = _role(boto3.client("iam"), "api", [{"Effect": "Allow", "Action": "dynamodb:GetItem",
                                                "Resource": arn}])  # fmt: skip
    session = _as(role)
    enforcer.on = True
    dynamodb = session.client("dynamodb")
    dynamodb.get_item(TableName="store", Key={"k": {"S": "x"}})  # moto alone denies this
    with pytest.raises(ClientError, match=r"dynamodb:GetItem on .*table/other"):
        dynamodb.get_item(TableName="other", Key={"k": {"S": "x"}})
    with pytest.raises(ClientError, match="dynamodb:PutItem"):
        dynamodb.put_item(TableName="store", Item={"k": {"S": "x"}})
    assert len(enforcer.denied) == 2


def test_the_etls_database_rewrite_is_denied_as_aws_denies_it(enforcer: Enforcer) -> None:
    """Fault 1 of issue 24, as the emulator now sees it."""
    glue = boto3.client("glue")
    glue.create_database(DatabaseInput={"Name": "curated", "Description": "Terraform's"})
    read = ["glue:GetDatabase", "glue:CreateTable", "glue:GetTable"]
    scope = [f"arn:aws:glue:{REGION}:{ACCOUNT}:catalog",
             f"arn:aws:glue:{REGION}:{ACCOUNT}:database/curated"]  # fmt: skip
    role = _role(boto3.client("iam"), "steps", [{"Effect": "Allow", "Action": read,
                                                  "Resource": scope}])  # fmt: skip
    steps = _as(role).client("glue")
    enforcer.on = True
    steps.get_database(Name="curated")
    with pytest.raises(ClientError, match="glue:UpdateDatabase"):
        steps.update_database(Name="curated", DatabaseInput={"Name": "curated"})


def test_a_producer_needs_the_streams_key_as_well_as_the_stream(enforcer: Enforcer) -> None:
    kms = boto3.client("kms")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName="events", ShardCount=1)
    kinesis.start_stream_encryption(StreamName="events", EncryptionType="KMS", KeyId=key)
    stream = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/events"
    put = {"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": stream}
    iam = boto3.client("iam")
    without = _as(_role(iam, "without", [put])).client("kinesis")
    with_key = _as(_role(iam, "with", [put, {"Effect": "Allow", "Action": "kms:GenerateDataKey",
                                            "Resource": key}])).client("kinesis")  # fmt: skip
    enforcer.on = True
    with pytest.raises(ClientError, match="kms:GenerateDataKey"):
        without.put_record(StreamName="events", Data=b"{}", PartitionKey="U1")
    with_key.put_record(StreamName="events", Data=b"{}", PartitionKey="U1")


def test_resources_are_named_as_the_service_authorization_reference_names_them() -> None:
    def of(service: str, action: str, params: dict[str, Any], path: str = "/") -> list[str]:
        return resources(service, action, params, path, REGION, ACCOUNT)

    arn = f"arn:aws:%s:{REGION}:{ACCOUNT}:%s"
    assert of("dynamodb", "BatchWriteItem", {"RequestItems": {"a": [], "b": []}}) == [
        arn % ("dynamodb", "table/a"),
        arn % ("dynamodb", "table/b"),
    ]
    assert of("glue", "CreateTable", {"DatabaseName": "d", "TableInput": {"Name": "t"}}) == [
        arn % ("glue", "catalog"),
        arn % ("glue", "database/d"),
        arn % ("glue", "table/d/t"),
    ]
    assert of("lambda", "Invoke", {}, "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1"
              "%3A123456789012%3Afunction%3Asteps%3A%24LATEST/invocations") == [
        arn % ("lambda", "function:steps")
    ]  # fmt: skip
    assert of("kinesis", "PutRecords", {"StreamName": "s"}) == [arn % ("kinesis", "stream/s")]
    assert of("cloudwatch", "PutMetricData", {}) == ["*"]


def test_a_table_import_needs_what_the_import_does_as_its_caller(enforcer: Enforcer) -> None:
    """A table-swap publish: ImportTable on the version's table is not enough. The import
    reads the staged objects and logs as the caller, and the table's customer managed key
    is granted through DynamoDB (AWS's guide "Requesting a table import")."""
    from common.lake import S3Lake
    from serving.store import DynamoImportStore

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lake")
    s3.put_object(Bucket="lake", Key="store-import/v1/user-00000.json.gz", Body=b"")
    key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/store.*"
    logs = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws-dynamodb/*"
    importing = {"Effect": "Allow", "Action": ["dynamodb:ImportTable", "dynamodb:DescribeImport",
                                               "dynamodb:DescribeTable"],
                 "Resource": table}  # fmt: skip
    reading = {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
               "Resource": ["arn:aws:s3:::lake", "arn:aws:s3:::lake/store-import/*"]}  # fmt: skip
    logging = {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
               "logs:DescribeLogGroups", "logs:DescribeLogStreams", "logs:PutLogEvents",
               "logs:PutRetentionPolicy"], "Resource": logs}  # fmt: skip
    granting = {"Effect": "Allow", "Action": ["kms:CreateGrant", "kms:DescribeKey"],
                "Resource": key, "Condition": {"StringEquals": {
                    "kms:ViaService": f"dynamodb.{REGION}.amazonaws.com"}}}  # fmt: skip
    iam = boto3.client("iam")
    short = _role(iam, "short", [importing, reading, logging])
    full = _role(iam, "full", [importing, reading, logging, granting])

    stores = {
        role: DynamoImportStore(
            "store", client=_as(role).client("dynamodb"), kms_key=key, lake=S3Lake("lake")
        )
        for role in (short, full)
    }
    enforcer.on = True
    with pytest.raises(ClientError, match="kms:CreateGrant"):
        stores[short]._start_import("v1", "store.v1", "token-1")
    started = stores[full]._start_import("v1", "store.v1", "token-1")
    assert started.startswith(f"{table[:-2]}.v1/import/")
    arn = resources("dynamodb", "DescribeImport", {"ImportArn": "x/import/1"}, "", REGION, ACCOUNT)
    assert arn == ["x/import/1"]
