"""What the API's requests and answers look like: its limits, parameters and OpenAPI models.

Handlers return plain dicts; these models exist for the spec (`serving/openapi.yaml`) and
Swagger UI, and the parameter annotations carry the validation Powertools runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, SecurityScheme
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field

from common.contract import ID_PATTERN, MAX_EVENT_BYTES, MAX_ID_LENGTH
from serving.recommend import SOURCES

API_VERSION: Final = "1.0.0"
MAX_K: Final = 100
DEFAULT_K: Final = 5
MAX_BATCH: Final = 100
#: The largest body: a full batch of the largest events.
MAX_BODY_BYTES: Final = MAX_BATCH * MAX_EVENT_BYTES
DOCS_PATH: Final = "/v1/docs"
#: What a request that failed inside the API is told; the log has the traceback.
INTERNAL_ERROR: Final = (
    "Internal error; it was logged with this request's id. Retry, and tell the API's operator "
    "if it persists"
)


class Scored(BaseModel):
    """One recommended item."""

    id: str = Field(description="Item id")
    score: float = Field(description="Higher is better; comparable within one answer only")


#: What every answer says of its recommendationId.
RECOMMENDATION_ID: Final = (
    "This answer's id, `<uuid>@<modelVersion>` (a Personalize campaign's answers keep the "
    "campaign's own). Post it back with the events this answer led to: they are attributed "
    "to the version that made it (docs/experiments.md)"
)


class Personalized(BaseModel):
    """A user's recommendations."""

    userId: str  # noqa: N815 - the API's camelCase
    items: list[Scored]
    modelVersion: str  # noqa: N815
    source: str = Field(description=f"One of {', '.join(SOURCES)}")
    recommendationId: str = Field(description=RECOMMENDATION_ID)  # noqa: N815


class Related(BaseModel):
    """Items related to an item."""

    itemId: str  # noqa: N815
    related: list[Scored]
    modelVersion: str  # noqa: N815
    source: str = Field(description=f"One of {', '.join(SOURCES)}")
    recommendationId: str = Field(description=RECOMMENDATION_ID)  # noqa: N815


class RankedItem(BaseModel):
    """One item of a ranked list."""

    id: str = Field(description="Item id, as given")
    score: float | None = Field(
        description="The model's score, comparable within one answer only; null for an item "
        "the model cannot score (one it does not know, or one its repeat policy holds back), "
        "which keeps its place after the scored ones"
    )


class Ranked(BaseModel):
    """The items a shop gave, re-ordered for one user."""

    userId: str  # noqa: N815
    items: list[RankedItem]
    modelVersion: str  # noqa: N815
    source: str = Field(description=f"One of {', '.join(SOURCES)}")
    recommendationId: str = Field(description=RECOMMENDATION_ID)  # noqa: N815


#: The most items one ranking request may give, as Personalize's GetPersonalizedRanking.
MAX_RANKED: Final = 500


class RankingRequest(BaseModel):
    """A list the shop shows (a search result, a category page), to order for one user."""

    model_config = ConfigDict(extra="forbid")

    userId: Annotated[  # noqa: N815
        str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)
    ] = Field(description="Pseudonymous shopper id")
    itemIds: Annotated[  # noqa: N815
        list[Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]],
        Field(min_length=1, max_length=MAX_RANKED),
    ] = Field(description=f"1 to {MAX_RANKED} item ids, each once; all come back, re-ordered")
    context: dict[str, str] | None = Field(
        default=None,
        description="The request's context (device, page), as Personalize's request has it; "
        "accepted so that the same call works against both, and not used to score yet",
    )
    filter: str | None = Field(
        default=None,
        max_length=40,
        description="One of the shop's named filters (docs/filters.md): the items it drops "
        "are left out of the answer, as Personalize's ranking leaves them out",
    )
    filterValues: dict[str, str] | None = Field(  # noqa: N815
        default=None,
        description="The named filter's parameter values, as the GET routes' filterValues "
        'take them: {"MAX": "20"}',
    )


RankingBody = Annotated[
    dict[str, Any],
    Body(json_schema_extra={"$ref": "#/components/schemas/RankingRequest"}),
]


class Accepted(BaseModel):
    """Events accepted: durable in the sink."""

    ok: bool
    accepted: int = Field(description="Events stored by this request")
    duplicates: int | None = Field(
        default=None,
        description="Events whose eventId was stored before, so they were not stored again "
        "(present when there were any, with the local sink; the stream cannot tell)",
    )


class Health(BaseModel):
    """Liveness, the API's version and the live model's version and freshness."""

    ok: bool
    version: str
    modelVersion: str | None  # noqa: N815
    model: dict[str, Any] | None = None
    failure: dict[str, Any] | None = Field(
        default=None,
        description="Present while the published version cannot be loaded: which version, "
        "why, how many attempts, since when. The worker answers with the version it has "
        "(modelVersion), or 503s if it has none; it keeps retrying with backoff",
    )
    experiment: dict[str, Any] | None = Field(
        default=None,
        description="Present while an A/B experiment runs: its id, the candidate version "
        "that answers its share of shoppers, that share, and whether this worker has the "
        "candidate loaded (if not, everyone gets modelVersion); docs/experiments.md",
    )


class RefusedEvent(BaseModel):
    """An event of a batch that was refused, and its first problem."""

    index: int
    error: str


class ErrorBody(BaseModel):
    """What went wrong, and what to do instead."""

    error: str
    problems: list[RefusedEvent] | None = None


def doc(description: str, model: type[BaseModel]) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": model}}}


ERRORS: Final = {
    400: doc("Bad request: the message says which parameter or field, and why", ErrorBody),
    401: doc("Missing or unknown X-Api-Key (only when the API has keys)", ErrorBody),
    405: doc("Method not allowed; the Allow header names the right one", ErrorBody),
    503: doc("No model is published yet, or the event sink is unavailable", ErrorBody),
}


UserIdParam = Annotated[
    str,
    Query(
        alias="userId",
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="The shopper's pseudonymous id, by the event contract's id rule",
    ),
]
ShopperParam = Annotated[
    str | None,
    Query(
        alias="userId",
        max_length=MAX_ID_LENGTH,
        description="The shopper the related items are for, when a named filter reads their "
        "interactions (`Interactions.EVENT_TYPE`), as Personalize's related items take one",
    ),
]
ItemIdParam = Annotated[
    str,
    Query(
        alias="itemId",
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="Item id, by the event contract's id rule",
    ),
]
KParam = Annotated[int, Query(ge=1, le=MAX_K, description=f"How many items, 1 to {MAX_K}")]
ExcludeParam = Annotated[
    str | None,
    Query(max_length=4096, description="Comma-separated item ids to leave out"),
]
FilterParam = Annotated[
    str | None,
    Query(
        alias="filter",
        max_length=MAX_ID_LENGTH + 9,
        description="`not-purchased` (leave out everything the user bought, whatever the "
        "model's repeat policy), `not-seen` (only items the user has never touched: what to "
        "discover, for a shop whose default list is mostly what the user buys again), "
        "`category:<name>` (only that category), or the name of one of the shop's filters "
        "(RECS_FILTERS: Personalize's filter expressions, docs/filters.md). Without it, the "
        "model's repeat policy, chosen in training, decides which of the user's own items "
        "may come back.",
    ),
]
NamedFilterParam = Annotated[
    str | None,
    Query(
        alias="filter",
        max_length=40,
        description="The name of one of the shop's filters (RECS_FILTERS, docs/filters.md) "
        "on item fields: `Items.<FIELD>` and `CurrentItem.<FIELD>` conditions.",
    ),
]
FilterValuesParam = Annotated[
    str | None,
    Query(
        alias="filterValues",
        max_length=4096,
        description="A named filter's parameter values, as Personalize takes them: a JSON "
        'object such as `{"CATEGORIES": "\\"shoes\\",\\"bags\\"", "MAX": "100"}` '
        "(quoted, comma-separated values for IN; a number for a comparison). An EXCLUDE "
        "whose values are not given is skipped; an INCLUDE needs them.",
    ),
]


_EVENT_REF: Final = {"$ref": "#/components/schemas/Event"}
EventsBody = Annotated[
    dict[str, Any] | list[Any],
    Body(
        json_schema_extra={
            "oneOf": [_EVENT_REF, {"type": "array", "items": _EVENT_REF, "minItems": 1}]
        }
    ),
]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=r"\S",
        description="Makes a retry safe: a replay answers the same and stores nothing twice",
    ),
]


DESCRIPTION: Final = (
    "Product recommendations for an online shop: recommended for you, related items, and "
    "the shopper events that feed them. Every route also answers without the /v1 prefix. "
    'Errors are JSON {"error": "..."}.'
)
SECURITY_SCHEMES: Final[dict[str, SecurityScheme]] = {
    "apiKey": APIKey(name="X-Api-Key", in_=APIKeyIn.header, description="When RECS_API_KEYS is set")
}
