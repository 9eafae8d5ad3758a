"""`/recommendations/personalized` and `/recommendations/related`: check the ids, ask the
`Recommender`, shape the answer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from common.contract import MAX_ID_LENGTH, check_id
from common.filters import FilterValueError, NamedFilter, filter_values
from serving.experiment import recommendation_id
from serving.recommend import Answer, Named, Ranking
from serving.services import count, error, services_of
from serving.shapes import (
    DEFAULT_K,
    ERRORS,
    ExcludeParam,
    FilterParam,
    FilterValuesParam,
    ItemIdParam,
    KParam,
    NamedFilterParam,
    Personalized,
    Related,
    ShopperParam,
    UserIdParam,
    doc,
)
from serving.validation import LEAN


@dataclass(frozen=True)
class Filter:
    """What `filter=` asks of an answer."""

    category: str | None = None
    not_purchased: bool = False
    not_seen: bool = False
    named: Named | None = None


def parse_filter(
    raw: str | None,
    filters: Mapping[str, NamedFilter] | None = None,
    values: str | None = None,
) -> Filter:
    """`filter=not-purchased|not-seen|category:<name>|<a named filter>`, with a named
    filter's `filterValues`; ValueError says what was wrong."""
    filters = filters or {}
    if raw is not None and raw in filters:
        try:
            given = filter_values(values) if values is not None else {}
            return Filter(named=Named.of(raw, filters[raw], given))
        except FilterValueError as exc:
            raise ValueError(f"filter {raw}: {exc}") from None
    if values is not None:
        raise ValueError(
            "filterValues goes with a named filter (filter=NAME); "
            + (f"{raw!r} is not one" if raw is not None else "no filter was named")
        )
    if raw is None:
        return Filter()
    if raw in ("not-purchased", "not-seen"):
        return Filter(not_purchased=raw == "not-purchased", not_seen=raw == "not-seen")
    if not raw.startswith("category:"):
        named = f", one of the shop's filters ({', '.join(sorted(filters))})" if filters else ""
        raise ValueError(
            f"filter must be not-purchased, not-seen{named} or category:<name> (got {raw!r})"
        )
    category = raw.removeprefix("category:")
    if not category:
        raise ValueError("filter category:<name> needs a category name")
    try:
        check_id(category)
    except ValueError:
        raise ValueError(
            "filter category:<name> needs a name of printable characters, with no "
            f"control characters (got {category!r})"
        ) from None
    return Filter(category=category)


def named_filter(
    raw: str | None,
    filters: Mapping[str, NamedFilter],
    values: str | Mapping[str, str] | None,
    *,
    user: bool = True,
) -> Named:
    """A request's named filter (related items and ranking take no other), with its values;
    without a `user`, one that reads Interactions is refused."""
    if raw is None or raw not in filters:
        known = ", ".join(sorted(filters)) or "none are set (RECS_FILTERS)"
        raise ValueError(f"filter must name one of the shop's filters: {known}")
    text = values if values is None or isinstance(values, str) else json.dumps(dict(values))
    wanted = parse_filter(raw, filters, text).named
    assert wanted is not None
    if not user and wanted.bound.source.reads_interactions:
        raise ValueError(
            f"filter {raw} reads Interactions, which need a user: add userId to the request"
        )
    return wanted


def ids(raw: str | None) -> list[str]:
    """Item ids from a comma-separated parameter."""
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def bad_ids(name: str, values: list[str]) -> Response[str] | None:
    """A 400 for the first id that breaks the event contract's id rule, else None."""
    for value in values:
        try:
            check_id(value)
        except ValueError:
            return error(
                400,
                f"{name} must be 1 to {MAX_ID_LENGTH} printable characters, not blank and "
                f"with no control characters (got {value!r})",
            )
    return None


def answer_body(key: str, value: str, list_name: str, answer: Answer | Ranking) -> dict[str, Any]:
    """The answer's JSON, counted by where it came from (batch, realtime, popular)."""
    count(f"Source{answer.source.title()}")
    return {
        key: value,
        list_name: [{"id": i, "score": s} for i, s in answer.items],
        "modelVersion": answer.model_version,
        "source": answer.source,
        # Our own answers' ids name their version, so that events posted back with one are
        # attributed to it (an experiment's arms); Personalize's keep the campaign's own.
        "recommendationId": answer.recommendation_id or recommendation_id(answer.model_version),
    }


def router() -> Router:
    """The recommendation routes, under /v1 and (hidden from the spec) unversioned."""
    routes = Router()  # type: ignore[no-untyped-call]

    @routes.get(
        "/v1/recommendations/personalized",
        summary="Recommended for you",
        description="The user's top k items: the published batch (source batch) until the "
        "user has events newer than the live model's data, then scored at request time over "
        "their whole history with the new events folded in (realtime); a user the model "
        "cannot score gets trending items (popular). The model's repeat policy decides "
        "whether the user's own items come back. Never 404 for an unknown user.",
        responses={200: doc("Recommendations", Personalized), **ERRORS},
        tags=["recommendations"],
        **LEAN,
    )
    @routes.get("/recommendations/personalized", include_in_schema=False, **LEAN)
    def personalized(
        user_id: UserIdParam,
        k: KParam = DEFAULT_K,
        exclude: ExcludeParam = None,
        filter_: FilterParam = None,
        filter_values: FilterValuesParam = None,
    ) -> Any:
        recommender = services_of(routes).recommender
        try:
            wanted = parse_filter(filter_, recommender.filters, filter_values)
        except ValueError as exc:
            return error(400, str(exc))
        refused = bad_ids("userId", [user_id]) or bad_ids("exclude", ids(exclude))
        if refused is not None:
            return refused
        answer = recommender.personalized(
            user_id,
            k,
            exclude=ids(exclude),
            category=wanted.category,
            not_purchased=wanted.not_purchased,
            not_seen=wanted.not_seen,
            named=wanted.named,
        )
        return answer_body("userId", user_id, "items", answer)

    @routes.get(
        "/v1/recommendations/related",
        summary="Related items",
        description="Items shoppers interact with alongside this one, strongest first. An "
        "unknown item gets trending items (source popular), never a 404.",
        responses={200: doc("Related items", Related), **ERRORS},
        tags=["recommendations"],
        **LEAN,
    )
    @routes.get("/recommendations/related", include_in_schema=False, **LEAN)
    def related(
        item_id: ItemIdParam,
        k: KParam = DEFAULT_K,
        exclude: ExcludeParam = None,
        filter_: NamedFilterParam = None,
        filter_values: FilterValuesParam = None,
        user_id: ShopperParam = None,
    ) -> Any:
        recommender = services_of(routes).recommender
        given = [user_id] if user_id is not None else []
        refused = bad_ids("itemId", [item_id]) or bad_ids("exclude", ids(exclude))
        refused = refused or bad_ids("userId", given)
        if refused is not None:
            return refused
        named = None
        if filter_ is not None or filter_values is not None:
            try:
                named = named_filter(
                    filter_, recommender.filters, filter_values, user=user_id is not None
                )
            except ValueError as exc:
                return error(400, str(exc))
        answer = recommender.related(item_id, k, exclude=ids(exclude), named=named, user_id=user_id)
        return answer_body("itemId", item_id, "related", answer)

    return routes
