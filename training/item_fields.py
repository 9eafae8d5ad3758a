"""The catalog's fields per item code, and which items a bound filter lets through.

`item-fields.npz` holds, for every code of a version (its items, then the catalog's items
without events), the fields Personalize's items file has: CATEGORY, BRAND, PRICE,
CREATION_TIMESTAMP (epoch seconds), ACTIVE ("true"/"false") and each of the shop's own
attributes under its Personalize field name (`etl.personalize.field_name`). A categorical
value holding `|` is several values, as Personalize reads it.

numpy only: serving evaluates filters with this module (`common.filters` parses them).
Semantics, where Personalize's documentation leaves them open, are the SQL ones: an item
without a value for a field matches neither `IN` nor `NOT IN`, nor any comparison; an item
with several values is `IN` a list when one of them is, and `NOT IN` it when none is.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from common.filters import BoundFilter, Condition, Current, Expression
from training.blend import ENTRY_TYPES, MINUTE_MS, UserHistory

Mask = npt.NDArray[np.bool_]
_CATEGORICAL: Final = "categorical"
_NUMERIC: Final = "numeric"
DAY_MINUTES: Final = 24 * 60
#: Bytes of item masks a version keeps per cache (the filters' bound values vary by request,
#: and each mask is a byte per item: 16 MB is 160 masks of 100,000 items, 512 at most).
MASK_BYTES_KEPT: Final = 16 << 20


def masks_kept(n: int) -> int:
    """How many masks of n items a cache keeps."""
    return max(16, min(512, MASK_BYTES_KEPT // max(n, 1)))


@dataclass(frozen=True)
class Categorical:
    """One categorical field: its distinct values (sorted) and each (code, value) pair."""

    vocab: npt.NDArray[np.str_]
    codes: npt.NDArray[np.int64]
    values: npt.NDArray[np.int64]

    def holding(self, wanted: Sequence[str], n: int) -> tuple[Mask, Mask]:
        """(items holding one of `wanted`, items holding any value)."""
        asked = np.asarray(wanted, dtype=str)
        position = np.searchsorted(self.vocab, asked)
        known = position < len(self.vocab)
        known[known] = self.vocab[position[known]] == asked[known]
        hit = np.isin(self.values, position[known])
        return _any_per_code(self.codes[hit], n), _any_per_code(self.codes, n)


def _any_per_code(codes: npt.NDArray[np.int64], n: int) -> Mask:
    return np.bincount(codes, minlength=n)[:n] > 0


@dataclass(frozen=True, eq=False)
class ItemFields:
    """Every code's catalog fields (`item-fields.npz`)."""

    n: int
    categorical: Mapping[str, Categorical]
    numeric: Mapping[str, npt.NDArray[np.float64]]

    @property
    def names(self) -> list[str]:
        """Every field, sorted."""
        return sorted([*self.categorical, *self.numeric])

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """What `item-fields.npz` holds."""
        found: dict[str, npt.NDArray[Any]] = {"n": np.array(self.n, np.int64)}
        for name, field in self.categorical.items():
            found[f"{_CATEGORICAL}.{name}.vocab"] = field.vocab
            found[f"{_CATEGORICAL}.{name}.codes"] = field.codes
            found[f"{_CATEGORICAL}.{name}.values"] = field.values
        for name, numbers in self.numeric.items():
            found[f"{_NUMERIC}.{name}"] = numbers
        return found

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> ItemFields:
        """Back from `item-fields.npz`."""
        categorical, numeric = {}, {}
        for key in arrays:
            kind, _, rest = key.partition(".")
            if kind == _CATEGORICAL and rest.endswith(".vocab"):
                name = rest.removesuffix(".vocab")
                categorical[name] = Categorical(
                    np.asarray(arrays[key]).astype(str),
                    np.asarray(arrays[f"{_CATEGORICAL}.{name}.codes"], np.int64),
                    np.asarray(arrays[f"{_CATEGORICAL}.{name}.values"], np.int64),
                )
            elif kind == _NUMERIC:
                numeric[rest] = np.asarray(arrays[key], np.float64)
        return cls(int(arrays["n"]), categorical, numeric)

    @functools.cached_property
    def _masks(self) -> dict[Condition, Mask]:
        return {}

    def cached(self, condition: Condition) -> Mask:
        """`matches` of a condition that does not read the current item, kept per version
        (the same category or price bound on every request costs one pass)."""
        masks = self._masks
        found = masks.get(condition)
        if found is None:
            if len(masks) >= masks_kept(self.n):
                masks.clear()
            found = masks[condition] = self.matches(condition)
            found.flags.writeable = False
        return found

    @classmethod
    def of_categories(cls, categories: npt.NDArray[np.str_]) -> ItemFields:
        """The CATEGORY of each code alone: what a version trained before item fields were
        written knows."""
        pairs = [(code, str(c)) for code, c in enumerate(categories.tolist()) if c]
        return cls(len(categories), {"CATEGORY": categorical(pairs)}, {})

    def value_of(self, name: str, code: int) -> tuple[str, ...] | float | None:
        """One item's value of a field (`CurrentItem.<FIELD>`); None if it has none."""
        if name in self.numeric:
            number = float(self.numeric[name][code]) if 0 <= code < self.n else math.nan
            return None if math.isnan(number) else number
        field = self.categorical.get(name)
        if field is None:
            return None
        found = tuple(field.vocab[field.values[field.codes == code]].tolist())
        return found or None

    def matches(self, condition: Condition, current: int | None = None) -> Mask:
        """The items an `Items.<FIELD>` condition (its values bound) holds for."""
        operand = condition.operand
        if isinstance(operand, Current):
            value = None if current is None else self.value_of(operand.field, current)
            if value is None:  # the current item has no such value: nothing compares with it
                return np.zeros(self.n, bool)
            operand = value
        if condition.operator in ("IN", "NOT IN"):
            field = self.categorical.get(condition.field)
            if field is None or isinstance(operand, float):
                return np.zeros(self.n, bool)
            hit, valued = field.holding(list(operand), self.n)  # type: ignore[arg-type]
            return hit if condition.operator == "IN" else valued & ~hit
        numbers = self.numeric.get(condition.field)
        if numbers is None or not isinstance(operand, float):
            return np.zeros(self.n, bool)
        with np.errstate(invalid="ignore"):
            return _COMPARE[condition.operator](numbers, operand)


_COMPARE: Final[dict[str, Callable[[npt.NDArray[np.float64], float], Mask]]] = {
    "=": np.equal,
    "!=": lambda a, b: np.not_equal(a, b) & ~np.isnan(a),
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def categorical(pairs: list[tuple[int, str]]) -> Categorical:
    split = [(code, part) for code, value in pairs for part in value.split("|") if part]
    vocab = np.array(sorted({part for _, part in split}), dtype=str)
    codes = np.array([code for code, _ in split], np.int64)
    values = np.searchsorted(vocab, np.array([part for _, part in split], dtype=str))
    return Categorical(vocab, codes, np.asarray(values, np.int64))


def interacted(
    condition: Condition, history: UserHistory, now_ms: int, within_days: float | None
) -> npt.NDArray[np.int64]:
    """The user's items an `Interactions.EVENT_TYPE` condition holds for: those with an
    event of a listed type (`*`: any), within `within_days` of `now_ms` if bounded."""
    listed = condition.operand
    assert isinstance(listed, tuple), "bind the filter's values first"
    types = (
        list(range(len(ENTRY_TYPES))) if "*" in listed else [ENTRY_TYPES.index(t) for t in listed]
    )
    if condition.operator == "NOT IN":
        types = [t for t in range(len(ENTRY_TYPES)) if t not in types]
    last = history.last_by_type[:, types] if types else np.zeros((len(history.items), 0))
    floor = 1 if within_days is None else max(1, (now_ms // MINUTE_MS) - within_days * DAY_MINUTES)
    return history.items[(last >= floor).any(axis=1)] if last.shape[1] else history.items[:0]


@dataclass(frozen=True)
class Selection:
    """What a filter lets through for one request: a mask over every code."""

    allowed: Mask

    @classmethod
    def of(
        cls,
        bound: BoundFilter,
        fields: ItemFields,
        history: UserHistory | None,
        now_ms: int,
        current: int | None = None,
    ) -> Selection:
        """Evaluate every expression of `bound`: an item must pass each (INCLUDE: a
        condition group holds; EXCLUDE: none does)."""
        allowed = np.ones(fields.n, bool)
        for expression in bound.expressions:
            held = _holds(expression, fields, history, now_ms, current, bound.within_days)
            allowed &= held if expression.include else ~held
        return cls(allowed)


def _holds(
    expression: Expression,
    fields: ItemFields,
    history: UserHistory | None,
    now_ms: int,
    current: int | None,
    within_days: float | None,
) -> Mask:
    found = np.zeros(fields.n, bool)
    for group in expression.any_of:
        every = np.ones(fields.n, bool)
        for condition in group:
            if condition.dataset == "Items":
                every &= _cached_matches(fields, condition, current)
            else:
                mask = np.zeros(fields.n, bool)
                if history is not None:
                    mask[interacted(condition, history, now_ms, within_days)] = True
                every &= mask
        found |= every
    return found


def _cached_matches(fields: ItemFields, condition: Condition, current: int | None) -> Mask:
    if isinstance(condition.operand, Current):
        return fields.matches(condition, current)
    return fields.cached(condition)
