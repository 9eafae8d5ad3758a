"""The Lambda entry point (`serving.handler.handler`), and the wiring from settings to services.

The services are built on the first invocation, not at import: a cold start pays for them
once, and importing this module reads no environment and opens nothing.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

from common.dynamodb import table_name
from common.lake import open_lake
from ingestion.history import DynamoHistory, RecentHistory
from ingestion.sinks import EventSink, LocalSink, make_sink
from serving.app import Handler, build_app, make_handler
from serving.idempotency import SQLitePersistenceLayer
from serving.recommend import LiveModel, Recommender
from serving.services import Services
from serving.settings import ServingSettings
from serving.store import open_store
from serving.threads import one_thread_per_worker


def idempotency_layer(uri: str) -> BasePersistenceLayer:
    """Powertools' DynamoDB layer for dynamodb://table, else ours on a SQLite file."""
    table = table_name(uri)
    if table is not None:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        return DynamoDBPersistenceLayer(table_name=table)
    from pathlib import Path

    return SQLitePersistenceLayer(Path(uri).expanduser())


def build_services(settings: ServingSettings, *, background_flush: bool = False) -> Services:
    """Open the lake, store, sink, history and idempotency records the settings name.

    Where the lake or the store is on AWS, a setting still naming a local file is an error
    here, at start-up, not a file quietly written where nobody reads it."""
    settings.refuse_local_files_beside_aws("The API")
    lake = open_lake(settings.lake)
    store = open_store(settings.store)
    sink: EventSink = make_sink(settings, background=background_flush)
    history: RecentHistory
    if settings.history_table is None:
        assert isinstance(sink, LocalSink)  # ServingSettings ensures it
        history = sink.log
    else:
        history = DynamoHistory(settings.history_table)
    if settings.personalize_tracking_id:
        from ingestion.tracker import EventTracker, TrackedSink

        sink = TrackedSink(sink, EventTracker(settings.personalize_tracking_id))
    recommender = Recommender(
        live=LiveModel(
            lake, store, check_seconds=settings.model_check_seconds, users=settings.model_users
        ),
        store=store,
        history=history,
        hide_carted=settings.hide_carted,
        filters=settings.filters,
        candidate=LiveModel(
            lake,
            store,
            check_seconds=settings.model_check_seconds,
            users=settings.model_users,
            arm="candidate",
        ),
    )
    if settings.personalize_campaign_arn:
        from serving.personalize import CampaignRecommender

        recommender = CampaignRecommender.around(
            recommender,
            campaign_arn=settings.personalize_campaign_arn,
            filter_arn=settings.personalize_filter_arn,
        )
    return Services(
        recommender=recommender,
        sink=sink,
        idempotency=idempotency_layer(settings.idempotency_store),
        api_keys=settings.api_keys,
        cors_origins=settings.cors_origins,
    )


@functools.cache
def _handler() -> Handler:
    one_thread_per_worker()
    services = build_services(ServingSettings.from_env())
    return make_handler(build_app(services), services)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway HTTP API (payload 2.0) -> the app."""
    return _handler()(event, context)
