"""Filter expressions, in Amazon Personalize's grammar: parsed once, bound to values per request.

A shop writes its filters once, by name, in the settings file (`[filters.NAME]`, see
docs/filters.md), and a request names one: `filter=NAME&filterValues={"CATEGORY": "\\"shoes\\""}`.
The same expression is what Personalize's CreateFilter takes, so a campaign can answer with
its own copy of the filter. The subset understood here:

    EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")
    INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY) AND Items.PRICE < 100
    EXCLUDE ItemID WHERE Items.BRAND IN ("acme") | INCLUDE ItemID WHERE Items.PRICE >= $MIN

- `INCLUDE` keeps only the items a condition holds for, `EXCLUDE` drops them; expressions
  joined by `|` all apply.
- Conditions read `Items.<FIELD>` (the catalog's fields, as the Personalize items file names
  them: CATEGORY, BRAND, PRICE, CREATION_TIMESTAMP, ACTIVE and the shop's own attributes) or
  `Interactions.EVENT_TYPE` (what the user did with the item: view, add_to_cart, purchase,
  or "*" for any). All conditions of one expression read the same dataset, as Personalize
  requires.
- `IN` and `NOT IN` take quoted strings or one `$PARAMETER`; `=`, `!=`, `<`, `<=`, `>` and
  `>=` take a number or a `$PARAMETER` and hold for numeric fields (PRICE,
  CREATION_TIMESTAMP). Related-item requests may compare with `CurrentItem.<FIELD>`.
- `AND` binds tighter than `OR`. Keywords are case-insensitive; values and field names are
  not.

A parameter's value comes as Personalize's `filterValues` take it: a string of quoted,
comma-separated values (`"\\"shoes\\",\\"bags\\""`) for `IN`, a number (`"100"`) for a
comparison. An `EXCLUDE` expression whose parameter is not given is skipped, as Personalize
skips it; an `INCLUDE` expression needs every one of its parameters.

Serving's Lambda parses the filters when it reads its settings, and a bad expression stops it
there with the position of the error (`FilterSyntaxError`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.settings import RecsSettings

#: Fields of the items dataset that hold numbers; every other field is categorical.
NUMERIC_FIELDS: Final = frozenset({"PRICE", "CREATION_TIMESTAMP"})
#: What `Interactions.EVENT_TYPE` can name, "*" for any of them.
INTERACTION_TYPES: Final = ("view", "add_to_cart", "purchase")
#: Values one `IN` may list, in the expression or in a parameter's value.
MAX_VALUES: Final = 100
#: The longest expression: Personalize's CreateFilter takes 2,500 characters.
MAX_EXPRESSION_CHARS: Final = 2_500
Comparison = Literal["=", "!=", "<", "<=", ">", ">="]
COMPARISONS: Final[tuple[Comparison, ...]] = ("=", "!=", "<", "<=", ">", ">=")

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<param>\$[A-Za-z_][A-Za-z0-9_]*)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
    | (?P<op><=|>=|!=|=|<|>)
    | (?P<punct>[(),|])
    """,
    re.VERBOSE,
)


def _unquoted(text: str) -> str:
    """A double-quoted value's text: JSON's escapes where they parse, else as written."""
    if "\\" not in text:
        return text[1:-1]
    try:
        return str(json.loads(text))
    except json.JSONDecodeError:
        return text[1:-1].replace('\\"', '"')


class FilterSyntaxError(ValueError):
    """An expression that cannot be parsed: what was wrong, and where (1-based column)."""

    def __init__(self, message: str, expression: str, position: int) -> None:
        self.message, self.expression, self.position = message, expression, position
        caret = " " * position + "^"
        super().__init__(f"{message}, at column {position + 1}:\n    {expression}\n    {caret}")


class FilterValueError(ValueError):
    """A request's `filterValues` that do not fit the filter it names."""


@dataclass(frozen=True)
class Param:
    """A `$NAME` placeholder, filled from the request's filterValues."""

    name: str


@dataclass(frozen=True)
class Current:
    """`CurrentItem.<FIELD>`: the field's value on the item a related request is about."""

    field: str


Operand = tuple[str, ...] | float | Param | Current


@dataclass(frozen=True)
class Condition:
    """`<dataset>.<field> <operator> <operand>`."""

    dataset: Literal["Items", "Interactions"]
    field: str
    operator: Literal["IN", "NOT IN"] | Comparison
    operand: Operand


@dataclass(frozen=True)
class Expression:
    """One `INCLUDE|EXCLUDE ItemID WHERE ...`: OR of ANDs of conditions."""

    include: bool
    any_of: tuple[tuple[Condition, ...], ...]

    @property
    def dataset(self) -> str:
        """What its conditions read: Items or Interactions."""
        return self.any_of[0][0].dataset

    @property
    def params(self) -> frozenset[str]:
        """The names of its `$PARAMETERS`."""
        return frozenset(
            c.operand.name for group in self.any_of for c in group if isinstance(c.operand, Param)
        )

    @property
    def uses_current_item(self) -> bool:
        """Whether it compares with `CurrentItem.<FIELD>` (related requests only)."""
        return any(isinstance(c.operand, Current) for group in self.any_of for c in group)


@dataclass(frozen=True)
class FilterExpression:
    """A parsed filter: its expressions, all of which an item must pass."""

    text: str
    expressions: tuple[Expression, ...]

    @property
    def params(self) -> frozenset[str]:
        """Every `$PARAMETER` the filter takes."""
        return frozenset().union(*(e.params for e in self.expressions))

    @property
    def reads_interactions(self) -> bool:
        """Whether it needs the user's history (a request without a user cannot use it)."""
        return any(e.dataset == "Interactions" for e in self.expressions)

    @property
    def includes_own_items(self) -> bool:
        """Whether it asks for the user's own items back (an INCLUDE on interactions): the
        filter, not the repeat policy, then decides which of them come back."""
        return any(e.include and e.dataset == "Interactions" for e in self.expressions)

    @property
    def uses_current_item(self) -> bool:
        """Whether it compares with `CurrentItem.<FIELD>`."""
        return any(e.uses_current_item for e in self.expressions)

    def bind(self, values: Mapping[str, str]) -> BoundFilter:
        """The filter with a request's filterValues in place of its parameters;
        `FilterValueError` says which value is missing, unknown or malformed."""
        unknown = sorted(set(values) - self.params)
        if unknown:
            known = ", ".join(sorted(self.params)) or "none"
            raise FilterValueError(
                f"filterValues names {', '.join(unknown)}, which the filter does not take "
                f"(its parameters: {known})"
            )
        kept: list[Expression] = []
        for expression in self.expressions:
            missing = sorted(expression.params - set(values))
            if missing and expression.include:
                raise FilterValueError(
                    f"the filter's INCLUDE needs filterValues for {', '.join(missing)}"
                )
            if missing:
                continue  # Personalize skips an EXCLUDE whose values are not given
            kept.append(_bound(expression, values))
        return BoundFilter(self, tuple(kept))


@dataclass(frozen=True)
class BoundFilter:
    """A filter with its parameters' values: what one request applies."""

    source: FilterExpression
    expressions: tuple[Expression, ...]
    #: Interactions count only this many days back from now (None: all of them).
    within_days: float | None = field(default=None)

    @property
    def key(self) -> str:
        """A stable text for caching what the filter's item conditions select."""
        return repr(tuple(e for e in self.expressions if e.dataset == "Items"))


def parse(text: str) -> FilterExpression:
    """`text` as a filter; `FilterSyntaxError` says what is wrong and where."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise FilterSyntaxError(
            f"the expression is {len(text)} characters; Personalize takes at most "
            f"{MAX_EXPRESSION_CHARS}",
            text[:60] + "...",
            0,
        )
    return _Parser(text).filter()


def filter_values(raw: str) -> dict[str, str]:
    """A request's `filterValues`: a JSON object of parameter names to strings."""
    try:
        found = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FilterValueError(f"filterValues must be a JSON object ({exc.msg})") from None
    if not isinstance(found, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in found.items()
    ):
        raise FilterValueError(
            'filterValues must be a JSON object of strings, such as {"CATEGORY": "\\"shoes\\""}'
        )
    return {k.removeprefix("$"): v for k, v in found.items()}


def _bound(expression: Expression, values: Mapping[str, str]) -> Expression:
    groups = tuple(tuple(_bound_condition(c, values) for c in group) for group in expression.any_of)
    return Expression(expression.include, groups)


def _bound_condition(condition: Condition, values: Mapping[str, str]) -> Condition:
    operand = condition.operand
    if not isinstance(operand, Param):
        return condition
    raw = values[operand.name]
    if condition.operator in ("IN", "NOT IN"):
        listed = _quoted_list(raw, operand.name)
        if condition.dataset == "Interactions":
            _check_types(listed, f"${operand.name}")
        return Condition(condition.dataset, condition.field, condition.operator, listed)
    try:
        number = float(raw)
    except ValueError:
        raise FilterValueError(
            f"filterValues {operand.name} must be a number for {condition.operator} (got {raw!r})"
        ) from None
    return Condition(condition.dataset, condition.field, condition.operator, number)


def _quoted_list(raw: str, name: str) -> tuple[str, ...]:
    """Personalize's form of several values: `"a","b"`, each in double quotes."""
    parser = _Parser(raw)
    try:
        found = parser.strings(until_end=True)
    except FilterSyntaxError as exc:
        raise FilterValueError(
            f'filterValues {name} must be quoted, comma-separated values such as "\\"a\\",'
            f'\\"b\\"" ({exc.message}, at column {exc.position + 1} of {raw!r})'
        ) from None
    return found


def _check_types(values: tuple[str, ...], where: str) -> None:
    for value in values:
        if value != "*" and value not in INTERACTION_TYPES:
            raise FilterValueError(
                f"{where}: {value!r} is not an event type; use {', '.join(INTERACTION_TYPES)} "
                'or "*"'
            )


@dataclass
class _Token:
    kind: str
    text: str
    position: int


class _Parser:
    """A recursive descent over the tokens of one expression."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokens(text)
        self.at = 0

    def _tokens(self, text: str) -> list[_Token]:
        tokens, position = [], 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None:
                raise FilterSyntaxError(f"unexpected {text[position]!r}", text, position)
            kind = match.lastgroup or ""
            if kind != "space":
                tokens.append(_Token(kind, match.group(), position))
            position = match.end()
        tokens.append(_Token("end", "", len(text)))
        return tokens

    def _peek(self) -> _Token:
        return self.tokens[self.at]

    def _next(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def _fail(self, message: str, token: _Token | None = None) -> FilterSyntaxError:
        token = token or self._peek()
        found = "the end" if token.kind == "end" else repr(token.text)
        return FilterSyntaxError(f"{message}; found {found}", self.text, token.position)

    def _keyword(self, *words: str) -> _Token:
        token = self._next()
        if token.kind != "name" or token.text.upper() not in words:
            raise self._fail(f"expected {' or '.join(words)}", token)
        return token

    def _is(self, word: str) -> bool:
        token = self._peek()
        return token.kind in ("name", "punct", "op") and token.text.upper() == word

    def filter(self) -> FilterExpression:
        expressions = [self.expression()]
        while self._is("|"):
            self._next()
            expressions.append(self.expression())
        if self._peek().kind != "end":
            if self._is("IF"):
                raise self._fail("IF CurrentUser conditions are not supported by recs")
            raise self._fail("expected AND, OR, | or the end of the expression")
        return FilterExpression(self.text, tuple(expressions))

    def expression(self) -> Expression:
        include = self._keyword("INCLUDE", "EXCLUDE").text.upper() == "INCLUDE"
        target = self._next()
        if target.kind != "name" or target.text.upper() != "ITEMID":
            raise self._fail("expected ItemID (recs filters items)", target)
        self._keyword("WHERE")
        groups: list[tuple[Condition, ...]] = []
        first: Condition | None = None
        while True:
            group: list[Condition] = []
            while True:
                start = self._peek()
                condition = self.condition()
                first = first or condition
                if condition.dataset != first.dataset:
                    raise FilterSyntaxError(
                        f"every condition of one expression reads the same dataset, as in "
                        f"Personalize ({first.dataset} first, then {condition.dataset}); "
                        "join two expressions with |",
                        self.text,
                        start.position,
                    )
                group.append(condition)
                if not self._is("AND"):
                    break
                self._next()
            groups.append(tuple(group))
            if not self._is("OR"):
                break
            self._next()
        return Expression(include, tuple(groups))

    def condition(self) -> Condition:
        token = self._next()
        dataset, _, name = token.text.partition(".")
        if token.kind != "name" or dataset not in ("Items", "Interactions") or not name:
            raise self._fail("expected Items.<FIELD> or Interactions.EVENT_TYPE", token)
        if dataset == "Interactions" and name != "EVENT_TYPE":
            raise self._fail("recs filters interactions by EVENT_TYPE only", token)
        if self._is("NOT"):
            self._next()
            self._keyword("IN")
            operator = "NOT IN"
        elif self._is("IN"):
            self._next()
            operator = "IN"
        elif self._peek().kind == "op":
            operator = self._next().text
        else:
            raise self._fail("expected IN, NOT IN or a comparison (=, !=, <, <=, >, >=)")
        numeric = dataset == "Items" and name in NUMERIC_FIELDS
        if operator in ("IN", "NOT IN"):
            if numeric:
                raise self._fail(f"{name} is a number: compare it with =, <, >, <= or >=", token)
            return Condition(dataset, name, operator, self._listed(dataset))  # type: ignore[arg-type]
        if not numeric:
            raise self._fail(f"{dataset}.{name} holds strings: use IN or NOT IN", token)
        return Condition(dataset, name, operator, self._number())  # type: ignore[arg-type]

    def _listed(self, dataset: str) -> Operand:
        token = self._peek()
        if token.kind == "name" and token.text.startswith("CurrentItem."):
            self._next()
            return Current(token.text.partition(".")[2])
        if token.kind != "punct" or token.text != "(":
            raise self._fail("expected ( after IN")
        self._next()
        if self._peek().kind == "param":
            value: Operand = Param(self._next().text[1:])
        elif self._peek().kind == "name" and self._peek().text.startswith("CurrentItem."):
            value = Current(self._next().text.partition(".")[2])
        else:
            start = self._peek()
            value = self.strings(until_end=False)
            if dataset == "Interactions":
                try:
                    _check_types(value, "Interactions.EVENT_TYPE")
                except FilterValueError as exc:
                    raise FilterSyntaxError(str(exc), self.text, start.position) from None
        closing = self._next()
        if closing.text != ")":
            raise self._fail("expected , or )", closing)
        return value

    def strings(self, *, until_end: bool) -> tuple[str, ...]:
        """Quoted strings separated by commas."""
        found: list[str] = []
        while True:
            token = self._next()
            if token.kind != "string":
                raise self._fail('expected a value in double quotes, such as "shoes"', token)
            found.append(_unquoted(token.text))
            if len(found) > MAX_VALUES:
                raise self._fail(f"IN lists at most {MAX_VALUES} values", token)
            if not self._is(","):
                break
            self._next()
        if until_end and self._peek().kind != "end":
            raise self._fail("expected , or the end")
        return tuple(found)

    def _number(self) -> Operand:
        token = self._next()
        if token.kind == "number":
            return float(token.text)
        if token.kind == "param":
            return Param(token.text[1:])
        if token.kind == "name" and token.text.startswith("CurrentItem."):
            return Current(token.text.partition(".")[2])
        raise self._fail("expected a number, a $PARAMETER or CurrentItem.<FIELD>", token)


#: Filter names the API keeps for its own filters (`filter=not-purchased|not-seen|category:`).
RESERVED_NAMES: Final = frozenset({"not-purchased", "not-seen"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


class NamedFilter(BaseModel):
    """One entry of `[filters.NAME]` in the settings file (or of RECS_FILTERS, as JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    expression: str = Field(description="The filter, in Personalize's grammar")
    within_days: float | None = Field(
        None,
        gt=0,
        description="Count only interactions of the last N days (Personalize has no such "
        "bound: a campaign is not asked for a filter with one)",
    )
    personalize_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:personalize:",
        description="The same filter in Personalize (CreateFilter), used with a campaign",
    )
    description: str = ""

    @field_validator("expression")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse(value)  # FilterSyntaxError (a ValueError) names what is wrong and where
        return value

    @property
    def parsed(self) -> FilterExpression:
        """The expression, parsed (once per process)."""
        return _parsed(self.expression)

    def bind(self, values: Mapping[str, str]) -> BoundFilter:
        """The filter with a request's values, and its time bound."""
        bound = self.parsed.bind(values)
        return BoundFilter(bound.source, bound.expressions, self.within_days)


@functools.lru_cache(maxsize=256)
def _parsed(expression: str) -> FilterExpression:
    return parse(expression)


class FilterSettings(RecsSettings):
    """Named filters, for the API (`filter=NAME`) and for Personalize's copy of them."""

    filters: dict[str, NamedFilter] = Field(
        default_factory=dict,
        description="Named filters in Personalize's grammar: [filters.NAME] tables of the "
        "settings file, or a JSON object (docs/filters.md)",
    )

    @field_validator("filters", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"must be a JSON object of named filters ({exc.msg})") from None
        return value

    @field_validator("filters")
    @classmethod
    def _names(cls, value: dict[str, NamedFilter]) -> dict[str, NamedFilter]:
        for name in value:
            if name in RESERVED_NAMES or not _NAME.match(name):
                raise ValueError(
                    f"{name!r} cannot name a filter: use 1 to 40 letters, digits, - and _, "
                    f"starting with a letter or digit, other than {', '.join(RESERVED_NAMES)}"
                )
        return value
