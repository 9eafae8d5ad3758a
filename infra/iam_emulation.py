"""IAM on the emulator: each component's requests checked against its own Terraform role.

moto can authorise requests (its `INITIAL_NO_AUTH_ACTION_COUNT` setting), with the policies
of the IAM user or assumed role whose keys signed the request. Out of the box that does not
fit a least-privilege stack: for every service but S3, SQS, IAM and STS, moto checks each
action against the resource "*", so a statement scoped to a table or stream ARN never
matches and everything would be denied. So here:
- each request's resources are worked out from its parameters, as AWS's Service
  Authorization Reference names them (`resources`): a DynamoDB table, a Kinesis stream, an
  SNS topic, a Glue catalog, database and table (all three, as Glue checks them), a Lambda
  function, a Glue job, a state machine;
- a request to a resource encrypted with a KMS key also needs that key (`implied`): Kinesis
  producers `kms:GenerateDataKey` and consumers `kms:Decrypt`, SNS and SQS senders both;
  a DynamoDB table import also needs what the import does as its caller: read the staged
  objects, log to `/aws-dynamodb/`, and (via DynamoDB) grant itself the table's key;
- each (action, resource) is judged by moto's own policy evaluator (`IAMPolicy`) over the
  signer's policies. An explicit Deny or no Allow is `AccessDenied`, as AWS answers.

What it cannot see, and so leaves to `tests/infra/test_terraform_grants.py`: key
policies (moto enforces none), service principals acting on their own (CloudWatch publishing
an alarm, Scheduler starting a run), and conditions beyond moto's evaluator.

The state machine's own service calls are signed by moto's interpreter with fixed keys
(`STATE_MACHINE_KEY`); they are judged against the state machine's role.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, unquote

#: The access key moto's Step Functions interpreter signs its service calls with.
STATE_MACHINE_KEY: Final = "ak"
#: Operations whose IAM action has another name (Service Authorization Reference).
ACTIONS: Final = {"lambda:Invoke": "lambda:InvokeFunction"}

Patch = Callable[[Any, str, Any], None]


@dataclass
class Enforcer:
    """The switch, the state machine's role, and every denial seen (for the run's report)."""

    on: bool = False
    state_machine_role: str | None = None
    denied: list[str] = field(default_factory=list)
    #: Checks made, per service.
    checked: Counter[str] = field(default_factory=Counter)

    @contextmanager
    def off(self) -> Iterator[None]:
        """What a service does on its own (assuming a role for a function it runs)."""
        was, self.on = self.on, False
        try:
            yield
        finally:
            self.on = was


def _arn(service: str, region: str, account: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def _json(body: bytes | str | None) -> dict[str, Any]:
    try:
        found = json.loads(body or b"{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def resources(
    service: str, action: str, params: dict[str, Any], path: str, region: str, account: str
) -> list[str]:
    """The resource ARNs AWS authorises `service:action` on, from the request."""
    if service == "dynamodb":
        if arn := params.get("ImportArn"):  # DescribeImport: the import, under its table
            return [str(arn)]
        created = (params.get("TableCreationParameters") or {}).get("TableName")
        tables = list(params.get("RequestItems", {})) or [params.get("TableName") or created]
        return [_arn("dynamodb", region, account, f"table/{t}") for t in tables if t]
    if service == "kinesis":
        if arn := params.get("StreamARN"):
            return [str(arn)]
        if name := params.get("StreamName"):
            return [_arn("kinesis", region, account, f"stream/{name}")]
    if service == "sns" and (arn := params.get("TopicArn")):
        return [str(arn)]
    if service == "states" and (arn := params.get("stateMachineArn")):
        return [str(arn)]
    if service == "lambda" and (found := re.search(r"/functions/([^/]+)", path)):
        # A name, or an ARN (with a qualifier): the function's name either way.
        name = unquote(found.group(1)).split(":function:")[-1].split(":")[0]
        return [_arn("lambda", region, account, f"function:{name}")]
    if service == "glue":
        return _glue(action, params, region, account)
    return ["*"]


def _glue(action: str, params: dict[str, Any], region: str, account: str) -> list[str]:
    if action in {"StartJobRun", "GetJobRun", "GetJobRuns", "BatchStopJobRun"}:
        return [_arn("glue", region, account, f"job/{params.get('JobName')}")]
    catalog = _arn("glue", region, account, "catalog")
    if "DatabaseInput" in params or action in {"GetDatabase", "DeleteDatabase"}:
        name = params.get("Name") or params.get("DatabaseInput", {}).get("Name")
        return [catalog, _arn("glue", region, account, f"database/{name}")]
    database = params.get("DatabaseName")
    if database is None:
        return [catalog]
    found = [catalog, _arn("glue", region, account, f"database/{database}")]
    table = (
        params.get("TableName") or params.get("Name") or params.get("TableInput", {}).get("Name")
    )
    if table or action in {"GetTables", "CreateTable"}:
        found.append(_arn("glue", region, account, f"table/{database}/{table or '*'}"))
    return found


#: What a request also needs, with the condition keys AWS sets on it: (action, resource,
#: conditions).
Need = tuple[str, str, dict[str, str]]
_IMPORT_LOGS: Final = (
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:DescribeLogGroups",
    "logs:DescribeLogStreams",
    "logs:PutLogEvents",
    "logs:PutRetentionPolicy",
)


def _table_import(params: dict[str, Any], region: str, account: str) -> list[Need]:
    """ImportTable reads its source as the caller, logs to /aws-dynamodb/, and a table with
    a customer managed key has DynamoDB make a grant on it for the caller (AWS's guide
    "Requesting a table import"; "Encryption at rest: how it works")."""
    from moto.s3.models import s3_backends

    source = params.get("S3BucketSource") or {}
    bucket, prefix = str(source.get("S3Bucket")), str(source.get("S3KeyPrefix") or "")
    found = s3_backends[account]["aws"].buckets.get(bucket)
    keys = [k for k in (found.keys if found else {}) if k.startswith(prefix)]
    needs: list[Need] = [("s3:ListBucket", f"arn:aws:s3:::{bucket}", {})]
    needs += [("s3:GetObject", f"arn:aws:s3:::{bucket}/{k}", {}) for k in keys]
    group = _arn("logs", region, account, "log-group:/aws-dynamodb/imports")
    needs += [(a, group, {}) for a in _IMPORT_LOGS]
    sse = (params.get("TableCreationParameters") or {}).get("SSESpecification") or {}
    if key := sse.get("KMSMasterKeyId"):
        via = {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"}
        needs += [("kms:CreateGrant", str(key), via), ("kms:DescribeKey", str(key), via)]
    return needs


def implied(
    service: str,
    action: str,
    resource: str,
    region: str,
    account: str,
    params: dict[str, Any] | None = None,
) -> list[Need]:
    """What else a request needs: the key its resource is encrypted with, and for a table
    import what the import does as the caller."""
    key: str | None = None
    if service == "dynamodb" and action == "ImportTable":
        return _table_import(params or {}, region, account)
    if service == "kinesis" and action in {"PutRecord", "PutRecords", "GetRecords"}:
        from moto.kinesis.models import kinesis_backends

        name = resource.rsplit("/", 1)[-1]
        stream = kinesis_backends[account][region].streams.get(name)
        if stream is not None and stream.encryption_type == "KMS":
            key = stream.key_id
        uses = ["kms:Decrypt"] if action == "GetRecords" else ["kms:GenerateDataKey"]
    elif service == "sns" and action == "Publish":
        from moto.sns.models import sns_backends

        topic = sns_backends[account][region].topics.get(resource)
        key = getattr(topic, "kms_master_key_id", None) if topic else None
        uses = ["kms:GenerateDataKey", "kms:Decrypt"]
    elif service == "sqs" and action == "SendMessage":
        from moto.sqs.models import sqs_backends

        queue = next(
            (q for q in sqs_backends[account][region].queues.values() if q.queue_arn == resource),
            None,
        )
        key = getattr(queue, "kms_master_key_id", None) if queue else None
        uses = ["kms:GenerateDataKey", "kms:Decrypt"]
    if not key:
        return []
    if not key.startswith("arn:"):
        key = _arn("kms", region, account, f"key/{key}")
    return [(use, key, {}) for use in uses]


def _request_params(response: Any) -> dict[str, Any]:
    """A request's parameters, whichever protocol: JSON body, or query/form fields."""
    body = getattr(response, "raw_body", b"") or b""
    params = _json(body)
    if params:
        return params
    fields = dict(getattr(response, "querystring", {}) or {})
    if isinstance(body, bytes | str) and body:
        text = body.decode() if isinstance(body, bytes) else body
        fields |= parse_qs(text)
    return {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in fields.items()}


def enforce(patch: Patch, enforcer: Enforcer) -> None:
    """Check every request but S3's with the resources above; S3 keeps moto's own check
    (it names the bucket and key), switched on with the rest."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import AccessDeniedError
    from moto.iam.access_control import (
        IAMPolicy,
        PermissionResult,
        create_access_key,
    )
    from moto.iam.models import iam_backends

    original_s3 = ActionAuthenticatorMixin._authenticate_and_authorize_s3_action

    def normal(self: Any, resource: str = "*") -> None:
        if not enforcer.on:
            return
        header = self.headers.get("Authorization", "")
        scope = re.search(r"Credential=([^/]+)/\d+/([^/]+)/([^/]+)/", header)
        if scope is None:
            return  # unsigned (moto's own internal calls)
        key, region, service = scope.groups()
        action = self._get_action()
        account = self.current_account
        if f"{service}:{action}" == "sts:GetCallerIdentity":
            return
        if key == STATE_MACHINE_KEY:
            role = enforcer.state_machine_role
            if role is None:
                return
            backend = iam_backends[account]["aws"]
            name = role.rsplit("/", 1)[-1]
            policies: list[Any] = [
                backend.get_role_policy(name, p)[1] for p in backend.list_role_policies(name)
            ]
            who = role
        else:
            signer = create_access_key(account, "aws", key, dict(self.headers))
            policies = list(signer.collect_policies())
            who = signer.arn
        params = _request_params(self)
        found = resources(service, action, params, self.raw_path, region, account)
        if resource != "*":
            found = [resource]
        named = f"{service}:{action}"
        wanted: list[Need] = [(ACTIONS.get(named, named), r, {}) for r in found]
        for r in found:
            wanted += implied(service, action, r, region, account, params)
        for act, res, conditions in wanted:
            enforcer.checked[act.split(":")[0]] += 1
            results = [
                IAMPolicy(p).is_action_permitted(act, res, incoming_condition_values=conditions)
                for p in policies
            ]
            if PermissionResult.DENIED in results or PermissionResult.PERMITTED not in results:
                enforcer.denied.append(f"{who} {act} on {res}")
                raise AccessDeniedError(user_arn=who, action=f"{act} on {res}")

    def s3(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        if not enforcer.on:
            return
        enforcer.checked["s3"] += 1
        was = settings.INITIAL_NO_AUTH_ACTION_COUNT
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        try:
            original_s3(self, bucket_name, key_name)
        except Exception as error:
            enforcer.denied.append(f"s3 {bucket_name}/{key_name or ''}: {error}")
            raise
        finally:
            settings.INITIAL_NO_AUTH_ACTION_COUNT = was

    patch(ActionAuthenticatorMixin, "_authenticate_and_authorize_normal_action", normal)
    patch(ActionAuthenticatorMixin, "_authenticate_and_authorize_s3_action", s3)
