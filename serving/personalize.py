"""Personalized answers from an Amazon Personalize campaign, when PERSONALIZE_CAMPAIGN_ARN is set.

The campaign answers "recommended for you" from what its solution version was trained on and
what the event tracker has received since (`ingestion.tracker`: set
RECS_PERSONALIZE_TRACKING_ID where events are forwarded from). Its answers say
`"source": "personalize"`. The campaign's filter
(PERSONALIZE_FILTER_ARN, e.g. the not-purchased one training creates) applies to every
request; `filter=not-purchased` without one leaves out purchases from our own recent
history. Related items, category
filters and anything the campaign cannot answer come from our own published version, so the
API keeps answering when Personalize throttles or is down; the log says so.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from serving.recommend import HISTORY_LIMIT, Answer, Named, Recommender

if TYPE_CHECKING:
    from mypy_boto3_personalize_runtime import PersonalizeRuntimeClient

logger = logging.getLogger(__name__)


@dataclass
class CampaignRecommender(Recommender):
    """`Recommender`, with personalized answers from a Personalize campaign."""

    campaign_arn: str = ""
    filter_arn: str | None = None
    client: PersonalizeRuntimeClient | None = field(default=None, repr=False)

    @classmethod
    def around(
        cls,
        own: Recommender,
        *,
        campaign_arn: str,
        filter_arn: str | None = None,
        client: PersonalizeRuntimeClient | None = None,
    ) -> CampaignRecommender:
        """Our recommender, answering personalized requests from the campaign."""
        return cls(
            live=own.live,
            store=own.store,
            history=own.history,
            wall_clock=own.wall_clock,
            hide_carted=own.hide_carted,
            filters=own.filters,
            candidate=own.candidate,
            campaign_arn=campaign_arn,
            filter_arn=filter_arn,
            client=client,
        )

    def _runtime(self) -> PersonalizeRuntimeClient:
        if self.client is None:
            import boto3

            self.client = boto3.client("personalize-runtime")
        return self.client

    @property
    def campaign(self) -> str:
        """The campaign's name, as the answers' model version."""
        return "personalize:" + self.campaign_arn.rsplit("/", 1)[-1]

    def personalized(
        self,
        user_id: str,
        k: int,
        *,
        exclude: Collection[str] = (),
        category: str | None = None,
        not_purchased: bool = False,
        not_seen: bool = False,
        named: Named | None = None,
    ) -> Answer:
        """The campaign's top k, through its filter if one is set; our own for a category, for
        `not_seen` (the campaign has no filter for it, and recs knows the whole history), and
        for a named filter without a Personalize ARN or with a time bound (Personalize's
        filters have none)."""
        campaign_can = named is None or (
            named.spec.personalize_arn is not None and named.spec.within_days is None
        )
        if category is None and not not_seen and campaign_can:
            skip = set(exclude)
            if not_purchased and not self.filter_arn:
                recent = self.history.recent(user_id, limit=HISTORY_LIMIT)
                skip |= {e.item_id for e in recent if e.event_type == "purchase"}
            request: dict[str, Any] = {
                "campaignArn": self.campaign_arn,
                "userId": user_id,
                "numResults": min(500, k + len(skip)),
            }
            if named is not None:
                request["filterArn"] = named.spec.personalize_arn
                if named.values:
                    request["filterValues"] = dict(named.values)
            elif self.filter_arn:
                request["filterArn"] = self.filter_arn
            try:
                response = self._runtime().get_recommendations(**request)
            except (ClientError, BotoCoreError):
                logger.exception(
                    "Personalize campaign %s failed; answering from our own model",
                    self.campaign_arn,
                )
            else:
                items = [
                    (i["itemId"], round(float(i.get("score", 0.0)), 6))
                    for i in response.get("itemList", [])
                    if i["itemId"] not in skip
                ][:k]
                return Answer(items, "personalize", self.campaign, response.get("recommendationId"))
        return super().personalized(
            user_id,
            k,
            exclude=exclude,
            category=category,
            not_purchased=not_purchased,
            not_seen=not_seen,
            named=named,
        )
