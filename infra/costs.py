"""What the AWS deployment costs a month: `python -m infra.costs` prints docs/deploy.md's table.

Every figure is a price below times a quantity from a shop's assumptions, so the table can be
checked line by line and recomputed for another shop. Prices are AWS's published on-demand
prices for us-east-1 (N. Virginia), ARM64 where there is a choice, without the free tier;
each names its pricing page. They change: check them against the AWS Pricing Calculator
before relying on a total. A test keeps docs/deploy.md equal to this output.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

HOURS: Final = 730  # a month
DAYS: Final = 30
VARIABLES: Final = Path(__file__).resolve().parent / "terraform" / "variables.tf"


def terraform_default(name: str) -> float:
    """A numeric variable's default in infra/terraform/variables.tf, so the bill follows
    what Terraform actually deploys."""
    block = re.search(rf'variable "{name}" {{(.*?)\n}}', VARIABLES.read_text(), re.S)
    found = re.search(r"default\s*=\s*([0-9.]+)", block.group(1)) if block else None
    if found is None:
        raise KeyError(f"no numeric default for variable {name} in {VARIABLES}")
    return float(found.group(1))


#: USD, us-east-1, on-demand.
PRICES: Final = {
    # https://aws.amazon.com/api-gateway/pricing/ (HTTP APIs, first 300 million)
    "http_api_per_million": 1.00,
    # https://aws.amazon.com/lambda/pricing/ (Arm)
    "lambda_gb_second": 0.0000133334,
    "lambda_per_million": 0.20,
    # https://aws.amazon.com/kinesis/data-streams/pricing/
    "kinesis_shard_hour": 0.015,
    "kinesis_put_units_per_million": 0.014,  # 25 KB units
    "kinesis_on_demand_stream_hour": 0.04,
    "kinesis_on_demand_gb_in": 0.08,
    "kinesis_on_demand_gb_out": 0.04,
    # https://aws.amazon.com/firehose/pricing/ (Direct PUT and Kinesis source; 5 KB increments)
    "firehose_gb": 0.029,
    # https://aws.amazon.com/dynamodb/pricing/on-demand/
    "dynamodb_write_per_million": 0.625,
    "dynamodb_read_per_million": 0.125,
    "dynamodb_gb_month": 0.25,
    "dynamodb_import_gb": 0.15,  # import from S3, per GB of uncompressed source data
    # https://aws.amazon.com/s3/pricing/ (Standard)
    "s3_gb_month": 0.023,
    "s3_put_per_thousand": 0.005,
    "s3_get_per_thousand": 0.0004,
    # https://aws.amazon.com/step-functions/pricing/ (Standard workflows)
    "sfn_per_thousand_transitions": 0.025,
    # https://aws.amazon.com/glue/pricing/ (Spark jobs, 1-minute minimum)
    "glue_dpu_hour": 0.44,
    # https://aws.amazon.com/fargate/pricing/ (Linux/ARM)
    "fargate_vcpu_hour": 0.03238,
    "fargate_gb_hour": 0.00356,
    # https://aws.amazon.com/kms/pricing/
    "kms_key_month": 1.00,
    "kms_per_10k_requests": 0.03,
    # https://aws.amazon.com/cloudwatch/pricing/
    "cloudwatch_dashboard_month": 3.00,
    "cloudwatch_alarm_month": 0.10,
    "cloudwatch_logs_gb_in": 0.50,
    "cloudwatch_logs_gb_month": 0.03,  # stored (archived)
    # https://aws.amazon.com/vpc/pricing/ (NAT gateway)
    "nat_hour": 0.045,
    "nat_gb": 0.045,
    # https://aws.amazon.com/personalize/pricing/ (custom solutions; campaigns bill the
    # larger of minProvisionedTPS and the TPS used, every hour they exist)
    "personalize_tps_hour": 0.20,  # the first 20,000 TPS-hours a month
    "personalize_training_hour": 0.24,
    "personalize_gb_ingested": 0.05,
    # https://aws.amazon.com/xray/pricing/
    "xray_per_million_traces": 5.00,
    # https://aws.amazon.com/ecr/pricing/
    "ecr_gb_month": 0.10,
    # https://aws.amazon.com/athena/pricing/
    "athena_tb_scanned": 5.00,
}


@dataclass(frozen=True)
class Shop:
    """What a shop does in a month, and how the Terraform is set for it."""

    name: str
    events_per_day: int
    recommendation_requests_per_month: int
    users_with_rows: int  # users the nightly batch writes a row for
    items: int
    #: Kinesis: provisioned shards, or 0 for on-demand (Terraform's kinesis_shards).
    kinesis_shards: int
    #: Nightly minutes of each step, and where it runs.
    etl_minutes: float
    train_minutes: float
    publish_minutes: float
    etl_on: str  # lambda | glue
    train_on: str  # lambda | batch
    #: local (ours) | personalize (Amazon Personalize trains and serves personalized).
    trainer: str = "local"
    pipeline_memory_gb: float = 4.0
    #: Glue G.1X workers are 1 DPU each; Batch's size; logs kept: Terraform's defaults.
    glue_dpus: float = terraform_default("glue_workers")
    batch_vcpu: float = terraform_default("batch_vcpu")
    batch_memory_gb: float = terraform_default("batch_memory_mb") / 1024
    log_retention_days: float = terraform_default("log_retention_days")
    #: Personalize: the campaign's floor, and training hours a night (4 vCPU, 8 GiB each).
    personalize_min_tps: int = 1
    personalize_training_hours: float = 2.0
    #: Share of recommendation requests that are personalized (the campaign's); related
    #: items are answered by our own model.
    personalized_share: float = 0.5
    athena_gb_scanned: float = 10.0
    event_kb: float = 0.4  # one event, JSON
    raw_gzip_kb: float = 0.08  # one event in the raw zone
    curated_kb: float = 0.03  # one event in Parquet
    api_ms: float = 25.0  # mean duration of an API Lambda call
    api_memory_gb: float = 1.0
    raw_retention_days: int = 90
    months_of_history: int = 12


SMALL: Final = Shop(
    name="small shop",
    events_per_day=100_000,
    recommendation_requests_per_month=1_000_000,
    users_with_rows=50_000,
    items=5_000,
    kinesis_shards=1,
    etl_minutes=1,
    train_minutes=3,
    publish_minutes=1,
    etl_on="lambda",
    train_on="lambda",
    athena_gb_scanned=10,
)
LARGE: Final = Shop(
    name="large shop",
    events_per_day=5_000_000,
    recommendation_requests_per_month=50_000_000,
    users_with_rows=2_000_000,
    items=200_000,
    kinesis_shards=0,
    etl_minutes=20,
    train_minutes=60,
    publish_minutes=10,
    etl_on="glue",
    train_on="batch",
    athena_gb_scanned=1000,
    api_memory_gb=3.0,  # -var size=large: the catalog's item side in memory
    pipeline_memory_gb=10.0,  # -var size=large: publish holds the version whole
)
#: The large shop with Amazon Personalize as its trainer (`-var personalize=true`,
#: RECS_TRAINER=personalize): our own model is still trained (fallback, related items).
LARGE_PERSONALIZE: Final = replace(
    LARGE, name="large shop, Personalize", trainer="personalize", personalize_training_hours=8
)


def _lambda(invocations: float, seconds: float, gb: float) -> float:
    p = PRICES
    return (
        invocations * seconds * gb * p["lambda_gb_second"]
        + invocations / 1e6 * p["lambda_per_million"]
    )


@dataclass(frozen=True)
class _Volume:
    """A month's traffic, from which each service's bill follows."""

    events: float
    requests: float
    posts: float
    gb_in: float
    puts: float
    gets: float

    @classmethod
    def of(cls, shop: Shop) -> _Volume:
        events = shop.events_per_day * DAYS
        requests = shop.recommendation_requests_per_month
        return cls(
            events=events,
            requests=requests,
            posts=events,  # one event per POST /v1/events
            gb_in=events * shop.event_kb / 2**20,
            puts=HOURS * 60 * 2 + DAYS * 2_000,  # Firehose each minute; a night's objects
            gets=requests / 1000 + DAYS * 10_000,  # the API's model checks; ETL and training
        )


def monthly(shop: Shop) -> dict[str, float]:
    """USD a month by service, for this shop: serving, the lake, the nightly pipeline, and
    what watches them."""
    volume = _Volume.of(shop)
    return (
        _serving(shop, volume)
        | _lake(shop, volume)
        | _pipeline(shop, volume)
        | _operations(shop, volume)
    )


def _serving(shop: Shop, v: _Volume) -> dict[str, float]:
    """The API, the event stream and the online store."""
    p = PRICES
    cost: dict[str, float] = {}
    cost["API Gateway (HTTP API)"] = (v.requests + v.posts) / 1e6 * p["http_api_per_million"]
    cost["Lambda: API"] = _lambda(v.requests + v.posts, shop.api_ms / 1000, shop.api_memory_gb)
    cost["Lambda: Kinesis consumer"] = _lambda(v.events / 100, 0.2, 0.5)  # batches of 100
    if shop.kinesis_shards:
        cost["Kinesis"] = (
            shop.kinesis_shards * HOURS * p["kinesis_shard_hour"]
            + v.events / 1e6 * p["kinesis_put_units_per_million"]
        )
    else:  # on-demand: the stream, data in, and two readers (Firehose, the consumer) out
        cost["Kinesis"] = (
            HOURS * p["kinesis_on_demand_stream_hour"]
            + v.gb_in * p["kinesis_on_demand_gb_in"]
            + 2 * v.gb_in * p["kinesis_on_demand_gb_out"]
        )
    cost["Firehose"] = v.events * 5 / 2**20 * p["firehose_gb"]  # each record billed as 5 KB
    written = v.events + v.posts  # recent history, one item per event; idempotency records
    read = v.requests * 3 + v.posts  # pointer, row and history per answer; idempotency
    # The nightly publish is a table swap (RECS_STORE_PUBLISH=import, as Terraform sets it):
    # every user's row and profile and every item's row, ~2 KB each, imported, not written;
    # the previous version's table is deleted, not its rows.
    rows = shop.users_with_rows * 2 + shop.items
    stored_gb = rows * 2 * 2 / 2**20  # the live version and the one before it
    cost["DynamoDB"] = (
        written / 1e6 * p["dynamodb_write_per_million"]
        + read / 1e6 * p["dynamodb_read_per_million"]
        + stored_gb * p["dynamodb_gb_month"]
        + rows * 2 / 2**20 * DAYS * p["dynamodb_import_gb"]
    )
    return cost


def _lake(shop: Shop, v: _Volume) -> dict[str, float]:
    """The S3 lake: raw events kept for their retention, a year of curated data, models."""
    p = PRICES
    lake_gb = (
        shop.events_per_day * shop.raw_retention_days * shop.raw_gzip_kb
        + shop.events_per_day * 365 * shop.months_of_history / 12 * shop.curated_kb
    ) / 2**20 + (shop.users_with_rows + shop.items) * 30 * 1 / 2**20  # models and batch files
    return {
        "S3": lake_gb * p["s3_gb_month"]
        + v.puts / 1000 * p["s3_put_per_thousand"]
        + v.gets / 1000 * p["s3_get_per_thousand"]
    }


def _pipeline(shop: Shop, v: _Volume) -> dict[str, float]:
    """The nightly state machine and where its steps run; Personalize as the trainer."""
    p = PRICES
    cost: dict[str, float] = {}
    cost["Step Functions"] = DAYS * 25 / 1000 * p["sfn_per_thousand_transitions"]
    in_lambda = shop.publish_minutes + (shop.etl_minutes if shop.etl_on == "lambda" else 0)
    in_lambda += shop.train_minutes if shop.train_on == "lambda" else 0
    cost["Lambda: pipeline steps"] = _lambda(DAYS * 8, in_lambda * 60 / 8, shop.pipeline_memory_gb)
    if shop.etl_on == "glue":
        minutes = max(shop.etl_minutes, 1)
        cost["Glue (etl)"] = DAYS * shop.glue_dpus * minutes / 60 * p["glue_dpu_hour"]
    if shop.train_on == "batch":
        hours = DAYS * shop.train_minutes / 60
        cost["Batch on Fargate (train)"] = hours * (
            shop.batch_vcpu * p["fargate_vcpu_hour"] + shop.batch_memory_gb * p["fargate_gb_hour"]
        )
        # Fargate tasks in private subnets reach S3, ECR and the APIs through a NAT gateway
        # (docs/deploy.md): billed every hour it exists, and per GB through it, which is
        # each night's image pull and its read of the curated year.
        nightly_gb = 0.4 + shop.events_per_day * 365 * shop.curated_kb / 2**20
        cost["NAT gateway (Batch)"] = HOURS * p["nat_hour"] + DAYS * nightly_gb * p["nat_gb"]
    if shop.trainer == "personalize":
        cost["Personalize: campaign"] = (
            max(shop.personalize_min_tps, v.requests * shop.personalized_share / (HOURS * 3600))
            * HOURS
            * p["personalize_tps_hour"]
        )  # fmt: skip
        cost["Personalize: training"] = (
            DAYS * shop.personalize_training_hours * p["personalize_training_hour"]
        )
        # Nightly incremental imports (a day of events as CSV), the weekly full-history
        # import (a year), and each live event (PutEvents).
        day_gb = shop.events_per_day * 0.1 / 2**20
        imported_gb = DAYS * day_gb + DAYS / 7 * 365 * day_gb
        cost["Personalize: data ingested"] = (imported_gb + v.gb_in) * p["personalize_gb_ingested"]
    return cost


def _operations(shop: Shop, v: _Volume) -> dict[str, float]:
    """Keys, logs, metrics, traces, the image registry and the analysts' queries."""
    p = PRICES
    cost: dict[str, float] = {}
    cost["KMS"] = p["kms_key_month"] + (v.puts + v.gets) / 1e4 * p["kms_per_10k_requests"]
    log_gb = (v.requests + v.posts) * 1.5 / 2**20  # a JSON log line and an access log line
    cost["CloudWatch"] = (
        p["cloudwatch_dashboard_month"]
        + 10 * p["cloudwatch_alarm_month"]
        + log_gb * p["cloudwatch_logs_gb_in"]
    )
    # Kept `log_retention_days`: once that long has passed, that many months are stored.
    cost["CloudWatch Logs storage"] = (
        log_gb * 0.15 * shop.log_retention_days / DAYS * p["cloudwatch_logs_gb_month"]
    )  # stored compressed, about 0.15 of what was ingested
    # Lambda's default sampling: the first request each second, then 5% of the rest.
    per_second = (v.requests + v.posts) / (HOURS * 3600)
    traces = HOURS * 3600 * min(per_second, 1) + max(v.requests + v.posts - HOURS * 3600, 0) * 0.05
    cost["X-Ray"] = traces / 1e6 * p["xray_per_million_traces"]
    cost["ECR (pipeline image)"] = 0.4 * p["ecr_gb_month"]
    cost["Athena (analysts)"] = shop.athena_gb_scanned / 1024 * p["athena_tb_scanned"]
    return cost


def table(shops: tuple[Shop, ...] = (SMALL, LARGE, LARGE_PERSONALIZE)) -> str:
    """The Markdown table docs/deploy.md shows."""
    costs = [monthly(shop) for shop in shops]
    services = list(dict.fromkeys(name for cost in costs for name in cost))
    lines = [
        "| service | " + " | ".join(shop.name for shop in shops) + " |",
        "|---|" + "---:|" * len(shops),
    ]
    for service in services:
        cells = [f"{cost[service]:,.2f}" if service in cost else "-" for cost in costs]
        lines.append(f"| {service} | " + " | ".join(cells) + " |")
    totals = [f"**{sum(cost.values()):,.0f}**" for cost in costs]
    lines.append("| **total, USD a month** | " + " | ".join(totals) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Print the table."""
    sys.stdout.write(table())


if __name__ == "__main__":
    main()
