"""The event and catalog contracts: one model of each record, validated at every entry point.

Producers may send the API's camelCase names (`userId`, `itemId`) or the lake's snake_case
ones (`user_id`, `item_id`); the lake always stores snake_case. `parse_event` is the one way
in: it checks the size, parses JSON, validates, and turns pydantic's errors into
`InvalidEvent` messages that name the field and the rule.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_serializer,
    model_validator,
)

from common.errors import InvalidCatalogRecord, InvalidEvent, InvalidRecord, Problem

EVENT_TYPES: Final = ("view", "add_to_cart", "purchase")
EventType = Literal["view", "add_to_cart", "purchase"]

MAX_ID_LENGTH: Final = 256
#: Largest serialized event we accept. Kinesis takes 1 MiB a record, but an interaction
#: event is a few hundred bytes; anything near this is a producer bug, not a shopper.
MAX_EVENT_BYTES: Final = 16 * 1024
MAX_PROPERTIES: Final = 50
MAX_PROPERTY_CHARS: Final = 1024
#: How far ahead of our clock an event may be: producers' clocks drift, but not by hours.
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
#: The earliest `ts` of a live event (sent through the API, a sink or the stream): older
#: means a broken clock or seconds read as milliseconds, not a shopper.
EARLIEST_TS: Final = datetime(2000, 1, 1, tzinfo=UTC)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: The earliest `ts` of imported history (`recs import`): a shop's past may be of any age.
EARLIEST_HISTORY_TS: Final = _EPOCH
#: Personalize's limit for a textual item field; catalog attributes may be descriptions.
MAX_ATTRIBUTE_CHARS: Final = 20_000

#: Namespace for event ids derived from an Idempotency-Key, so a retried request maps to the
#: same event id and the ETL's dedupe drops the copy.
IDEMPOTENCY_NAMESPACE: Final = uuid.UUID("6f1d2c9e-5b7a-4c1e-9a43-0d7f3f2b8e10")
#: Namespace for the ids of stored records that arrived without one (a producer writing to
#: Kinesis directly): derived from the record's bytes, so a redelivered copy gets the same id.
CONTENT_NAMESPACE: Final = uuid.UUID("3c2f5a8e-1d4b-4f6a-8e2c-7b9d0a1e5f34")

PropertyValue = str | int | float | bool


def check_id(value: str) -> str:
    if not value.isprintable() or value.strip() == "":
        raise ValueError(
            f"must be 1 to {MAX_ID_LENGTH} printable characters, not blank and with no "
            "control characters"
        )
    return value


#: RFC 3339's date-time (section 5.6): its "T" and "Z" may be lower case, and its note lets a
#: space stand for the "T". The offset is optional here only to say that it is missing.
_RFC3339: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?"
)


def _parse_rfc3339(value: object) -> datetime:
    """Parse an RFC 3339 timestamp with an explicit offset, returned in UTC.

    Only RFC 3339: `datetime.fromisoformat` alone also takes ISO 8601's other forms (week
    dates, an hour alone, the basic format), which producers in other languages cannot
    count on, and refuses RFC 3339's lower-case t and z."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        shape = _RFC3339.fullmatch(value)
        try:
            if shape is None:
                raise ValueError(value)
            day, time_of_day, fraction, offset = shape.groups()
            parsed = datetime.fromisoformat(
                f"{day}T{time_of_day}{(fraction or '')[:7]}{(offset or '').upper()}"
            )
        except ValueError:
            raise ValueError(
                f"must be an RFC 3339 timestamp such as 2025-08-16T18:30:00Z (got {value!r})"
            ) from None
    else:
        raise ValueError(
            "must be an RFC 3339 timestamp string such as 2025-08-16T18:30:00Z "
            f"(got {type(value).__name__})"
        )
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(
            f"must carry a time zone, such as 2025-08-16T18:30:00Z or +02:00 (got {value!s})"
        )
    return parsed.astimezone(UTC)


def _key_value_checker(
    max_chars: int,
) -> Callable[[dict[str, PropertyValue]], dict[str, PropertyValue]]:
    def check(value: dict[str, PropertyValue]) -> dict[str, PropertyValue]:
        if len(value) > MAX_PROPERTIES:
            raise ValueError(f"may hold at most {MAX_PROPERTIES} keys (got {len(value)})")
        for key, item in value.items():
            if not key or len(key) > MAX_ID_LENGTH or not key.isprintable():
                raise ValueError(f"key {key!r} must be 1 to {MAX_ID_LENGTH} printable characters")
            if isinstance(item, str) and len(item) > max_chars:
                raise ValueError(f"value of {key!r} is longer than {max_chars} characters")
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"value of {key!r} must be a finite number")
        return value

    return check


#: The id rule for other languages: no control characters, and not blank. It is exact for
#: ASCII; `check_id` (str.isprintable) also refuses Unicode's format and separator marks.
ID_PATTERN: Final = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"
Id = Annotated[
    str,
    Strict(),
    Field(min_length=1, max_length=MAX_ID_LENGTH, json_schema_extra={"pattern": ID_PATTERN}),
    AfterValidator(check_id),
]
Properties = Annotated[
    dict[str, PropertyValue], AfterValidator(_key_value_checker(MAX_PROPERTY_CHARS))
]
#: A catalog record's attributes: like an event's properties, with room for descriptions.
Attributes = Annotated[
    dict[str, PropertyValue], AfterValidator(_key_value_checker(MAX_ATTRIBUTE_CHARS))
]
Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_rfc3339),
    Field(json_schema_extra={"type": "string", "format": "date-time"}),
]


def _new_event_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """One shopper interaction: a view, an add to cart or a purchase of one item."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)

    event_id: Id = Field(
        default_factory=_new_event_id,
        validation_alias=AliasChoices("eventId", "event_id"),
        description="Unique id of the event; derived from the Idempotency-Key when one is sent.",
    )
    user_id: Id = Field(
        validation_alias=AliasChoices("userId", "user_id"),
        description="Pseudonymous shopper id. Never an e-mail address or other PII.",
    )
    item_id: Id = Field(validation_alias=AliasChoices("itemId", "item_id"))
    event_type: EventType = Field(validation_alias=AliasChoices("event_type", "eventType"))
    ts: Timestamp = Field(
        default_factory=_now,
        description="RFC 3339 time of the interaction, with a time zone; stored in UTC. "
        "Defaults to the time it was received. At most 5 minutes in the future, and not "
        "before 2000-01-01.",
    )
    session_id: Id | None = Field(
        default=None, validation_alias=AliasChoices("sessionId", "session_id")
    )
    price: Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)] | None = Field(
        default=None, description="Unit price paid or shown, in the shop's currency."
    )
    quantity: Annotated[int, Strict(), Field(ge=1, le=10_000)] | None = None
    properties: Properties | None = Field(
        default=None,
        description=f"Free-form attributes: at most {MAX_PROPERTIES} keys, string values of "
        f"at most {MAX_PROPERTY_CHARS} characters.",
    )
    shop_event_type: Id | None = Field(
        default=None,
        validation_alias=AliasChoices("shopEventType", "shop_event_type"),
        description="The shop's own name for the interaction when it is not one of ours "
        "(`fav`, `wishlist`, `pv`), kept beside the event_type it was mapped to.",
    )
    recommendation_id: Id | None = Field(
        default=None,
        validation_alias=AliasChoices("recommendationId", "recommendation_id"),
        description="The recommendationId of the answer this interaction came from (a click "
        "on a recommended item), so that outcomes can be traced to what was recommended.",
    )

    @model_validator(mode="after")
    def _ts_in_range(self, info: ValidationInfo) -> Event:
        context = info.context if isinstance(info.context, Mapping) else {}
        now = context.get("now") or _now()
        if self.ts > now + MAX_CLOCK_SKEW:
            raise ValueError(
                f"ts {format_ts(self.ts)} is more than 5 minutes in the future "
                f"(server time {format_ts(now)}); check the producer's clock"
            )
        if context.get("history"):
            if self.ts < EARLIEST_HISTORY_TS:
                raise ValueError(f"ts {format_ts(self.ts)} is before 1970-01-01, the Unix epoch")
        elif self.ts < EARLIEST_TS:
            raise ValueError(
                f"ts {format_ts(self.ts)} is before 2000-01-01; send the real time (import a "
                "shop's older history with `recs import`)"
            )
        return self

    @field_serializer("ts")
    def _ts_as_rfc3339(self, ts: datetime) -> str:
        return format_ts(ts)

    def to_record(self) -> dict[str, Any]:
        """The event as the lake stores it: snake_case, `ts` as RFC 3339 UTC, no nulls."""
        return self.model_dump(exclude_none=True)

    def to_json_line(self) -> str:
        """One JSON line, as it lands in the raw zone (no trailing newline)."""
        return self.model_dump_json(exclude_none=True)


class Item(BaseModel):
    """A product in the catalog. Only its id is required, as in Personalize's items dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item_id: Id
    title: Annotated[str, Strict(), Field(min_length=1, max_length=1000)] | None = None
    category: Annotated[str, Strict(), Field(min_length=1, max_length=MAX_ID_LENGTH)] | None = None
    price: Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)] | None = None
    brand: Annotated[str, Strict(), Field(min_length=1, max_length=MAX_ID_LENGTH)] | None = None
    created_at: Timestamp | None = None
    attributes: Attributes = Field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The item as the raw catalog dump stores it: every field, None where unknown."""
        record = self.model_dump()
        if self.created_at is not None:
            record["created_at"] = format_ts(self.created_at)
        return record


class User(BaseModel):
    """A shopper, known only by a pseudonymous id and optional attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: Id
    attributes: Attributes = Field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The user as the raw catalog dump stores it."""
        return self.model_dump()


def format_ts(ts: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a `Z`, the one timestamp format of the lake."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(ts: datetime) -> int:
    """Milliseconds since the Unix epoch, exactly (no float rounding), for a UTC timestamp."""
    return (ts - _EPOCH) // timedelta(milliseconds=1)


def event_id_for(idempotency_key: str, index: int | None = None, scope: str = "") -> str:
    """The event id for a request's Idempotency-Key (and the event's place in a batch).

    `scope` names the client (its API key's digest), so that one client's keys can never
    make ids that shadow another's events.
    """
    name = idempotency_key if index is None else f"{idempotency_key}#{index}"
    if scope:
        name = f"{scope}/{name}"
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, name))


_RULES: Final = {
    "missing": "is required",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "string_too_short": "must not be empty",
    "greater_than_equal": "must not be negative",
    "less_than_equal": "is too large",
}


#: What shops' exports often call the event's fields, by the field each one means.
_SYNONYMS: Final = {
    "ts": ("timestamp", "time", "event_time", "eventTime", "created_at", "createdAt",
           "datetime", "date", "when"),
    "userId": ("user", "userid", "customer_id", "customerId", "visitor_id", "visitorId",
               "visitorid", "USER_ID"),
    "itemId": ("item", "itemid", "product_id", "productId", "product", "sku", "ITEM_ID"),
    "event_type": ("event", "type", "action", "event_name", "eventName", "EVENT_TYPE"),
    "sessionId": ("session",),
    "quantity": ("qty",),
}  # fmt: skip


def _near_miss(name: str) -> str | None:
    """The known field a misnamed one most likely means: a common synonym, or a near spelling."""
    for field, synonyms in _SYNONYMS.items():
        if name in synonyms or name.lower() in (s.lower() for s in synonyms):
            return field
    known = sorted(
        {n for name, f in Event.model_fields.items() for n in (name, *_aliases(f.validation_alias))}
    )
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return close[0] if close else None


def _aliases(alias: Any) -> list[str]:
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [] if alias is None else [str(alias)]


def _problems(error: ValidationError) -> list[Problem]:
    problems = []
    for detail in error.errors(include_url=False):
        loc = [str(part) for part in detail["loc"]]
        field = loc[0] if loc else "body"
        path = ".".join(loc) or "body"
        kind = detail["type"]
        got = detail.get("input")
        if kind == "missing":
            message = f"Missing {path}"
        elif kind == "extra_forbidden":
            near = _near_miss(path) if len(loc) == 1 else None
            message = (
                f"Unknown field {path}; did you mean `{near}`? (Shop-specific attributes go "
                "in `properties`.)"
                if near
                else f"Unknown field {path}; put shop-specific attributes in `properties` instead"
            )
        elif kind == "literal_error":
            message = f"{path} must be one of {', '.join(EVENT_TYPES)} (got {got!r})"
        elif kind == "value_error":
            message = f"{path} {detail['msg'].removeprefix('Value error, ')}"
            if not loc:
                message = detail["msg"].removeprefix("Value error, ")
        elif kind == "string_too_long":
            limit = detail.get("ctx", {}).get("max_length")
            message = f"{path} must be at most {limit} characters (got {len(str(got))})"
        elif kind in ("greater_than_equal", "less_than_equal"):
            limit = detail.get("ctx", {}).get("ge", detail.get("ctx", {}).get("le"))
            word = "at least" if kind == "greater_than_equal" else "at most"
            message = f"{path} must be {word} {limit} (got {got!r})"
        elif kind in _RULES:
            message = f"{path} {_RULES[kind]} (got {type(got).__name__} {got!r})"
        else:
            message = f"{path}: {detail['msg']}"
        problems.append(Problem(field=field, message=message))
    return problems


#: Digits a JSON number in an event may have: far more than a price or a quantity needs, and
#: far fewer than Python's 4,300-digit limit, past which parsing raises instead of refusing.
MAX_NUMBER_DIGITS: Final = 64


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:
        raise InvalidEvent(
            [
                Problem(
                    "body",
                    f"A number has {len(text)} digits; an event's numbers have at most "
                    f"{MAX_NUMBER_DIGITS}",
                )
            ]
        )
    return int(text)


def loads_untrusted(payload: bytes | str, what: str) -> Any:
    """JSON from outside, refused as `InvalidEvent` however it is broken.

    Besides malformed text this covers what makes `json.loads` raise something else: a huge
    integer, nesting deep enough to exhaust the stack, and bytes that are not UTF-8.
    """
    try:
        return json.loads(payload, parse_int=_bounded_int)
    except RecursionError:
        raise InvalidEvent(
            [Problem("body", f"{what} nests arrays or objects too deeply to be an event")]
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidEvent([Problem("body", f"{what} is not valid JSON: {exc}")]) from None


def lone_surrogate(value: Any, path: str = "") -> str | None:
    """The path of the first string that holds a lone UTF-16 surrogate, which no UTF-8
    writer can store (JSON's `"\\ud800"` decodes to one); None if there is none."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        where = f"{path}.{key}" if path else str(key)
        found = lone_surrogate(key, where) if isinstance(key, str) else None
        if found is None:
            found = lone_surrogate(item, where)
        if found is not None:
            return found
    return None


def _json_object(payload: bytes | str, what: str) -> Any:
    """Parse one serialized event, refusing it first if it is over the size limit."""
    size = len(payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload)
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent(
            [Problem("body", f"Event is {size} bytes; the limit is {MAX_EVENT_BYTES}")]
        )
    return loads_untrusted(payload, what)


def parse_event(
    payload: bytes | str | Mapping[str, Any],
    *,
    idempotency_key: str | None = None,
    index: int | None = None,
    now: datetime | None = None,
    history: bool = False,
    key_scope: str = "",
) -> Event:
    """Validate one event from raw JSON or a parsed mapping; raise `InvalidEvent` if it is bad.

    With an `idempotency_key`, the event id is derived from it (and from `index`, the
    event's place in a batch), so a retried request yields the same event id. With
    `history`, the event is part of an imported past and may be older than 2000.
    """
    parsed = _json_object(payload, "Body") if isinstance(payload, bytes | str) else payload
    if not isinstance(parsed, Mapping):
        raise InvalidEvent(
            [Problem("body", f"An event must be a JSON object (got {type(parsed).__name__})")]
        )
    fields = dict(parsed)
    broken = lone_surrogate(fields)
    if broken is not None:
        field = broken.split(".")[0]
        raise InvalidEvent(
            [
                Problem(
                    field,
                    f"{broken} holds a lone UTF-16 surrogate, which is not Unicode text; "
                    "send valid UTF-8",
                )
            ]
        )
    if "ts" not in fields:
        fields["ts"] = now or _now()
    try:
        event = Event.model_validate(fields, context={"now": now, "history": history})
    except ValidationError as exc:
        raise InvalidEvent(_problems(exc)) from None
    if idempotency_key is not None:
        # The key's id wins over one the producer sent, which is still checked above.
        event_id = event_id_for(idempotency_key, index, key_scope)
        event = event.model_copy(update={"event_id": event_id})
    if not isinstance(payload, bytes | str):
        size = len(event.to_json_line().encode())
        if size > MAX_EVENT_BYTES:
            raise InvalidEvent(
                [Problem("body", f"Event is {size} bytes; the limit is {MAX_EVENT_BYTES}")]
            )
    return event


def parse_stored_event(line: bytes, *, now: datetime | None = None, history: bool = False) -> Event:
    """Validate one event read back from the raw zone; raise `InvalidEvent` if it is bad.

    The rules are `parse_event`'s with two differences that follow from reading a record long
    after it was received: `ts` is required (there is no receipt time to default to), and a
    record with no event id gets one derived from its bytes, so that an at-least-once
    redelivery of the same record dedupes. `history` marks a record of imported history.
    """
    parsed = _json_object(line, "Line")
    if not isinstance(parsed, dict):
        raise InvalidEvent(
            [Problem("body", f"An event must be a JSON object (got {type(parsed).__name__})")]
        )
    missing_ts = "ts" not in parsed
    if missing_ts:
        parsed["ts"] = now or _now()  # placeholder, so the other fields are still checked
    if "event_id" not in parsed and "eventId" not in parsed:
        parsed["event_id"] = str(uuid.uuid5(CONTENT_NAMESPACE, hashlib.sha256(line).hexdigest()))
    problems = [Problem("ts", "Missing ts")] if missing_ts else []
    try:
        event = parse_event(parsed, now=now, history=history)
    except InvalidEvent as exc:
        problems.extend(exc.problems)
    if problems:
        raise InvalidEvent(problems)
    return event


_Catalog = TypeVar("_Catalog", Item, User)


def _validate_catalog(model: type[_Catalog], record: Mapping[str, Any]) -> _Catalog:
    broken = lone_surrogate(record)
    if broken is not None:
        raise InvalidCatalogRecord(
            [Problem(broken.split(".")[0], f"{broken} holds a lone UTF-16 surrogate; send UTF-8")]
        )
    try:
        return model.model_validate(dict(record))
    except ValidationError as exc:
        raise InvalidCatalogRecord(_problems(exc)) from None


def parse_item(record: Mapping[str, Any]) -> Item:
    """Validate one catalog item; raise `InvalidCatalogRecord` naming the field if it is bad."""
    return _validate_catalog(Item, record)


def parse_user(record: Mapping[str, Any]) -> User:
    """Validate one user record; raise `InvalidCatalogRecord` naming the field if it is bad."""
    return _validate_catalog(User, record)


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema documents for the event, item and user contracts, for other languages."""
    schemas = {}
    for name, model in (("event", Event), ("item", Item), ("user", User)):
        schema = model.model_json_schema(by_alias=True, mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:recs:schema:{name}:v1"
        schemas[name] = schema
    return schemas


__all__ = [
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "Event",
    "EventType",
    "InvalidRecord",
    "Item",
    "User",
    "epoch_ms",
    "event_id_for",
    "format_ts",
    "json_schemas",
    "parse_event",
    "parse_item",
    "parse_stored_event",
    "parse_user",
]
