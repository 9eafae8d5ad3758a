"""The pipeline's last step: one message saying what the night did, logged or sent to SNS."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from common.progress import Progress
from orchestration.runs import RunRecord
from orchestration.settings import PipelineSettings

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


def summary(record: RunRecord) -> str:
    """What the run did, in one or two sentences, for whoever reads it in the morning."""
    failed = [s for s in record.steps if s.status == "failed"]
    head = f"recs pipeline run {record.run_id}"
    unfinished = [s for s in record.steps if s.status == "running" and s.name != "notify"]
    if unfinished and not failed:
        return (
            f"{head} stopped during step {unfinished[0].name} without recording why (killed "
            "or timed out). Run `recs pipeline run --resume` to go on from that step."
        )
    if failed:
        step = failed[0]
        return (
            f"{head} failed at step {step.name}: {step.error}. Fix the cause, then run "
            "`recs pipeline run --resume` to go on from that step."
        )
    version = record.version
    outcome = record.result("gate", "outcome")
    if outcome == "approved" and record.result("publish", "version"):
        ndcg = record.result("evaluate", "ndcg10")
        pop = record.result("evaluate", "popularity_ndcg10")
        scores = (
            f" (NDCG@10 {ndcg:.4f}, popularity {pop:.4f})"
            if isinstance(ndcg, float) and isinstance(pop, float)
            else ""
        )
        return f"{head} published {version}{scores}: it is in production now."
    publish = next((s for s in record.steps if s.name == "publish"), None)
    if outcome == "approved" and publish is not None and publish.status == "skipped":
        return (
            f"{head} trained and approved {version}, and did not publish it: "
            f"{publish.result.get('reason')}. Production is unchanged; `recs models promote "
            f"{version}` publishes it later."
        )
    if outcome == "kept":
        reasons = "; ".join(record.result("gate", "reasons") or []) or "no reason recorded"
        return (
            f"{head} trained {version} and kept it as a candidate: {reasons}. "
            "Production is unchanged."
        )
    train = next((s for s in record.steps if s.name == "train"), None)
    if train is not None and train.status == "skipped":
        return f"{head} trained nothing: {train.result.get('reason')}. Production is unchanged."
    return f"{head} ended without a version to publish."


class Notifier(Protocol):
    """Where the summary goes."""

    def send(self, message: str, progress: Progress) -> None:
        """Deliver one message."""


class LogNotifier:
    """The summary on the run's progress output (stderr of `recs pipeline run`)."""

    def send(self, message: str, progress: Progress) -> None:
        """Log it."""
        progress(f"  {message}")


@dataclass
class SnsNotifier:
    """The summary published to an SNS topic (the state machine's notify does the same)."""

    topic_arn: str
    client: SNSClient | None = field(default=None, repr=False)

    def send(self, message: str, progress: Progress) -> None:
        """Publish it, and log it too."""
        if self.client is None:
            import boto3

            self.client = boto3.client("sns")
        self.client.publish(TopicArn=self.topic_arn, Subject="recs pipeline", Message=message)
        progress(f"  {message} (sent to {self.topic_arn})")


def notifier_for(settings: PipelineSettings) -> Notifier:
    """SNS when a topic is set, else the log."""
    if settings.notify_topic_arn:
        return SnsNotifier(settings.notify_topic_arn)
    return LogNotifier()
