"""Personalized answers from an Amazon Personalize campaign (`serving.personalize`): the exact
GetRecommendations requests (botocore's Stubber; moto has no Personalize Runtime), the filter,
client-side excludes, and the fallback to our own published model when the campaign fails.
Everything but the campaign is real: a trained and published shop, the API handler."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from common.contract import Event
from common.filters import NamedFilter
from serving.idempotency import LocalRequestContext
from serving.personalize import CampaignRecommender
from serving.recommend import Named
from serving.services import Services
from tests.conftest import load_event
from tests.serving_helpers import PublishedShop, handler_for, published_shop, services_for

CAMPAIGN = "arn:aws:personalize:us-east-1:123456789012:campaign/recs-prod"
FILTER = "arn:aws:personalize:us-east-1:123456789012:filter/recs-prod-not-purchased"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> PublishedShop:
    return published_shop(tmp_path_factory.mktemp("shop"))


@pytest.fixture
def services(shop: PublishedShop, tmp_path: Path) -> Iterator[Services]:
    built = services_for(shop, tmp_path)
    yield built
    built.sink.close()


@pytest.fixture
def runtime(aws_env: None) -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("personalize-runtime")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _campaign(services: Services, client: Any, filter_arn: str | None = None) -> Any:
    return CampaignRecommender.around(
        services.recommender, campaign_arn=CAMPAIGN, filter_arn=filter_arn, client=client
    )


def _items(*ids: str) -> dict[str, Any]:
    return {
        "itemList": [{"itemId": i, "score": 0.9 - n / 10} for n, i in enumerate(ids)],
        "recommendationId": "RID-1",
    }


def test_a_campaign_answer_is_labelled_personalize(services: Services, runtime: Any) -> None:
    client, stub = runtime
    stub.add_response(
        "get_recommendations",
        _items("I5", "I6", "I7"),
        {"campaignArn": CAMPAIGN, "userId": "U1", "numResults": 3},
    )
    answer = _campaign(services, client).personalized("U1", 3)
    assert answer.items == [("I5", 0.9), ("I6", 0.8), ("I7", 0.7)]
    assert answer.source == "personalize"
    assert answer.model_version == "personalize:recs-prod"
    assert answer.recommendation_id == "RID-1"


def test_the_filter_arn_goes_with_every_request(services: Services, runtime: Any) -> None:
    client, stub = runtime
    stub.add_response(
        "get_recommendations",
        _items("I5"),
        {"campaignArn": CAMPAIGN, "userId": "U1", "numResults": 1, "filterArn": FILTER},
    )
    # The filter leaves purchases out on Personalize's side: our history is not read for it.
    answer = _campaign(services, client, FILTER).personalized("U1", 1, not_purchased=True)
    assert answer.items == [("I5", 0.9)]


def test_excludes_and_recent_purchases_are_left_out_client_side(
    services: Services, runtime: Any
) -> None:
    client, stub = runtime
    services.sink.put(
        [Event.model_validate({"userId": "U1", "itemId": "I6", "event_type": "purchase"})]
    )
    # Asks for k plus what it will leave out, so k remain.
    stub.add_response(
        "get_recommendations",
        _items("I5", "I6", "I7", "I8"),
        {"campaignArn": CAMPAIGN, "userId": "U1", "numResults": 4},
    )
    answer = _campaign(services, client).personalized("U1", 2, exclude=["I5"], not_purchased=True)
    assert [i for i, _ in answer.items] == ["I7", "I8"]


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("ResourceNotFoundException", 404), ("InternalFailure", 500)],
)
def test_a_failing_campaign_falls_back_to_our_own_model(
    services: Services, runtime: Any, code: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    client, stub = runtime
    stub.add_client_error("get_recommendations", service_error_code=code, http_status_code=status)
    answer = _campaign(services, client).personalized("U1", 3)
    own = services.recommender.personalized("U1", 3)
    assert answer == own
    assert answer.source in {"batch", "realtime", "popular"}
    assert f"Personalize campaign {CAMPAIGN} failed" in caplog.text


def test_a_category_request_is_answered_by_our_model(services: Services, runtime: Any) -> None:
    client, _stub = runtime  # nothing queued: the campaign is not called
    model = services.recommender.live.get()
    category = str(model.categories[0])
    own = services.recommender.personalized("U1", 3, category=category)
    assert own.items
    assert _campaign(services, client).personalized("U1", 3, category=category) == own


def test_the_api_serves_the_campaigns_answer_with_its_recommendation_id(
    services: Services, runtime: Any
) -> None:
    client, stub = runtime
    stub.add_response("get_recommendations", _items("I9", "I3"))
    services.recommender = _campaign(services, client)
    event = load_event("apigw_health.json")
    event["rawPath"] = "/v1/recommendations/personalized"
    event["rawQueryString"] = "userId=U1&k=2"
    event["queryStringParameters"] = {"userId": "U1", "k": "2"}
    event["requestContext"]["http"].update(method="GET", path=event["rawPath"])
    response = handler_for(services)(event, LocalRequestContext())
    body = json.loads(response["body"])
    assert response["statusCode"] == 200
    assert body["source"] == "personalize"
    assert body["recommendationId"] == "RID-1"
    assert [i["id"] for i in body["items"]] == ["I9", "I3"]


def test_not_seen_is_answered_by_our_own_model_not_the_campaign(
    services: Services, runtime: Any
) -> None:
    """The campaign has no filter for it; recs knows each shopper's whole history. The
    Stubber has no response queued, so a call to the campaign would raise."""
    client, stub = runtime
    campaign = _campaign(services, client, FILTER)
    model = services.recommender.live.get()
    user = str(model.user_ids[0])
    answer = campaign.personalized(user, 5, not_seen=True)
    stub.assert_no_pending_responses()
    assert answer.source != "personalize"
    assert len(answer.items) == 5
    assert not {i for i, _ in answer.items} & model.own(model.user_history(user))


def test_a_named_filter_goes_to_the_campaign_with_its_values(
    services: Services, runtime: Any
) -> None:
    client, stub = runtime
    arn = "arn:aws:personalize:us-east-1:123456789012:filter/recs-prod-filter-in-categories"
    spec = NamedFilter(
        expression="INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORIES)", personalize_arn=arn
    )
    values = {"CATEGORIES": '"c1","c2"'}
    stub.add_response(
        "get_recommendations",
        _items("I5", "I6"),
        {
            "campaignArn": CAMPAIGN,
            "userId": "U1",
            "numResults": 2,
            "filterArn": arn,
            "filterValues": values,
        },
    )
    campaign = _campaign(services, client, FILTER)
    answer = campaign.personalized("U1", 2, named=Named.of("in-categories", spec, values))
    assert answer.source == "personalize"
    # Without a Personalize copy, or with a time bound Personalize has not, our own model
    # answers (the Stubber would fail on any request).
    for local in (
        NamedFilter(expression=spec.expression),
        NamedFilter(expression=spec.expression, personalize_arn=arn, within_days=7),
    ):
        own = campaign.personalized("U1", 2, named=Named.of("in-categories", local, values))
        assert own.source != "personalize"


def test_the_campaign_keeps_our_recommenders_settings(services: Services, runtime: Any) -> None:
    client, _ = runtime
    services.recommender.hide_carted = False
    services.recommender.filters = {
        "cheap": NamedFilter(expression="EXCLUDE ItemID WHERE Items.PRICE > 9")
    }
    campaign = _campaign(services, client)
    # Its own answers (a category, a fallback) keep what the shop set.
    assert campaign.hide_carted is False
    assert set(campaign.filters) == {"cheap"}
