"""`/recommendations/ranking`: a list the shop gives, re-ordered for one user, as Amazon
Personalize's personalized ranking does."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import ValidationError

from common.contract import MAX_ID_LENGTH
from serving.routes.recommendations import answer_body, bad_ids, named_filter
from serving.services import error, services_of
from serving.shapes import (
    ERRORS,
    MAX_BODY_BYTES,
    MAX_RANKED,
    ErrorBody,
    Ranked,
    RankingBody,
    RankingRequest,
    doc,
)


def router() -> Router:
    """The ranking route, under /v1 and (hidden from the spec) unversioned."""
    routes = Router()  # type: ignore[no-untyped-call]

    @routes.post(
        "/v1/recommendations/ranking",
        summary="Rank a list for a user",
        description=f"The items a shop shows (a search result, a category page; 1 to "
        f"{MAX_RANKED}), all of them, re-ordered for the user by the same model and blend as "
        "personalized answers, with the user's newest events folded in (source realtime). "
        "Items the model cannot score keep their order after the scored ones, with a null "
        "score. A user the model cannot score gets the items in trending order (popular).",
        responses={
            200: doc("The items, re-ordered", Ranked),
            413: doc(f"Body larger than {MAX_BODY_BYTES} bytes", ErrorBody),
            415: doc("Body is not application/json", ErrorBody),
            **ERRORS,
        },
        tags=["recommendations"],
    )
    @routes.post("/recommendations/ranking", include_in_schema=False)
    def ranking(body: RankingBody) -> Any:
        try:
            request = RankingRequest.model_validate(body)
        except ValidationError as exc:
            return error(400, ranking_problem(exc))
        seen: set[str] = set()
        for item in request.itemIds:
            if item in seen:
                return error(400, f"itemIds must name each item once ({item!r} repeats)")
            seen.add(item)
        refused = bad_ids("userId", [request.userId]) or bad_ids("itemIds", request.itemIds)
        if refused is not None:
            return refused
        recommender = services_of(routes).recommender
        named = None
        if request.filter is not None or request.filterValues is not None:
            try:
                named = named_filter(request.filter, recommender.filters, request.filterValues)
            except ValueError as exc:
                return error(400, str(exc))
        answer = recommender.ranking(request.userId, request.itemIds, named=named)
        return answer_body("userId", request.userId, "items", answer)

    return routes


def ranking_problem(exc: ValidationError) -> str:
    """The first problem of a ranking request's body, in the API's words."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "body"
    kind = first.get("type", "")
    if kind == "missing":
        return f'Missing {field}: send {{"userId": "U1", "itemIds": ["I1", "I2"]}}'
    if kind == "extra_forbidden":
        return (
            f"Unknown field {field}: a ranking request has userId, itemIds, context, filter "
            "and filterValues"
        )
    if field == "itemIds" and kind in ("too_short", "too_long"):
        return f"itemIds must hold 1 to {MAX_RANKED} item ids"
    if field.startswith(("userId", "itemIds")) and kind in (
        "string_type", "string_too_short", "string_too_long", "string_pattern_mismatch"
    ):  # fmt: skip
        name = "userId" if field == "userId" else "each of itemIds"
        return (
            f"{name} must be 1 to {MAX_ID_LENGTH} printable characters, not blank and with "
            f"no control characters (got {first.get('input')!r})"
        )
    return f"{field}: {first.get('msg', 'is not valid')}"
