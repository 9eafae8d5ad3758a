"""What a bound filter lets through (`training.item_fields`): against a plain Python reading of
each expression over random catalogs and histories, and the cases Personalize's documentation
names (several values, missing values, CurrentItem, a time bound)."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from common.filters import Condition, Current, parse
from training.blend import ENTRY_TYPES, MINUTE_MS, UserHistory, bought_at, no_types
from training.item_fields import Categorical, ItemFields, Selection, masks_kept

DAY = 86_400_000
NOW = 1_780_000_000_000


def _fields(rows: list[dict[str, Any]]) -> ItemFields:
    """Fields from plain rows: CATEGORY and BRAND as lists of values, PRICE a number or None."""
    categorical = {}
    for name in ("CATEGORY", "BRAND"):
        pairs = [(code, v) for code, row in enumerate(rows) for v in row.get(name, [])]
        vocab = np.array(sorted({v for _, v in pairs}), dtype=str)
        categorical[name] = Categorical(
            vocab,
            np.array([c for c, _ in pairs], np.int64),
            np.searchsorted(vocab, np.array([v for _, v in pairs], dtype=str)).astype(np.int64),
        )
    price = np.array([math.nan if r.get("PRICE") is None else r["PRICE"] for r in rows])
    return ItemFields(len(rows), categorical, {"PRICE": price})


def _holds(condition: Condition, row: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """One condition on one item, read as the module's docstring says."""
    operand = condition.operand
    if isinstance(operand, Current):
        operand = None if current is None else current.get(operand.field)
        if operand is None or operand == []:
            return False
        operand = tuple(operand) if isinstance(operand, list) else operand
    value = row.get(condition.field)
    if condition.operator in ("IN", "NOT IN"):
        if not value:
            return False
        hit = any(v in operand for v in value)  # type: ignore[operator]
        return hit if condition.operator == "IN" else not hit
    if value is None:
        return False
    return {
        "=": value == operand,
        "!=": value != operand,
        "<": value < operand,  # type: ignore[operator]
        "<=": value <= operand,  # type: ignore[operator]
        ">": value > operand,  # type: ignore[operator]
        ">=": value >= operand,  # type: ignore[operator]
    }[condition.operator]


def _random_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    rows = []
    for _ in range(n):
        row: dict[str, Any] = {}
        if rng.random() < 0.9:
            row["CATEGORY"] = rng.sample(["a", "b", "c", "d"], rng.choice([1, 1, 2]))
        if rng.random() < 0.7:
            row["BRAND"] = [rng.choice(["x", "y"])]
        if rng.random() < 0.8:
            row["PRICE"] = float(rng.randint(1, 20))
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed", range(8))
def test_item_conditions_match_a_plain_reading(seed: int) -> None:
    rng = random.Random(seed)
    rows = _random_rows(rng, 60)
    fields = _fields(rows)
    text = rng.choice(
        [
            'INCLUDE ItemID WHERE Items.CATEGORY IN ("a", "c") AND Items.PRICE < 10',
            'EXCLUDE ItemID WHERE Items.CATEGORY NOT IN ("a") OR Items.BRAND IN ("x")',
            "INCLUDE ItemID WHERE Items.PRICE >= 5 AND Items.PRICE != 7",
            'EXCLUDE ItemID WHERE Items.BRAND IN ("y") | INCLUDE ItemID WHERE Items.PRICE <= 12',
            "INCLUDE ItemID WHERE Items.CATEGORY IN CurrentItem.CATEGORY AND "
            "Items.PRICE > CurrentItem.PRICE",
            "INCLUDE ItemID WHERE Items.PRICE = 3 OR Items.BRAND NOT IN CurrentItem.BRAND",
        ]
    )
    bound = parse(text).bind({})
    current = rng.randrange(len(rows))
    got = Selection.of(bound, fields, None, NOW, current).allowed
    for code, row in enumerate(rows):
        passes = True
        for expression in bound.expressions:
            held = any(
                all(_holds(c, row, rows[current]) for c in group) for group in expression.any_of
            )
            passes &= held if expression.include else not held
        assert got[code] == passes, (text, row, rows[current])


def test_interactions_read_each_types_last_time_within_the_bound() -> None:
    minute = NOW // MINUTE_MS
    # Item 0 viewed today, bought 40 days ago; item 1 carted 2 days ago; item 2 bought today.
    types = no_types(3)
    types[0, ENTRY_TYPES.index("view")] = minute
    types[0, ENTRY_TYPES.index("purchase")] = minute - 40 * 24 * 60
    types[1, ENTRY_TYPES.index("add_to_cart")] = minute - 2 * 24 * 60
    types[2, ENTRY_TYPES.index("purchase")] = minute
    history = UserHistory(
        np.array([0, 1, 2], np.int64),
        np.ones(3, np.float32),
        np.ones(3, np.float32),
        np.full(3, NOW, np.int64),
        types,
    )
    fields = _fields([{} for _ in range(5)])
    bought = parse('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")').bind({})
    assert Selection.of(bought, fields, history, NOW).allowed.tolist() == [
        False,
        True,
        False,
        True,
        True,
    ]
    lately = bought.__class__(bought.source, bought.expressions, within_days=30)
    # The purchase 40 days ago is out of the bound, though the item was viewed today.
    assert Selection.of(lately, fields, history, NOW).allowed.tolist() == [
        True,
        True,
        False,
        True,
        True,
    ]
    anything = parse('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")').bind({})
    assert Selection.of(anything, fields, history, NOW).allowed.tolist() == [
        True,
        True,
        True,
        False,
        False,
    ]
    not_viewed = parse('INCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("view")').bind({})
    # Item 0 was bought as well as viewed: it had an event of another type.
    assert Selection.of(not_viewed, fields, history, NOW).allowed.tolist() == [
        True,
        True,
        True,
        False,
        False,
    ]
    # No user: an INCLUDE on interactions holds for nothing, an EXCLUDE removes nothing.
    assert not Selection.of(anything, fields, None, NOW).allowed.any()
    assert Selection.of(bought, fields, None, NOW).allowed.all()


def test_fields_round_trip_and_an_old_history_knows_its_purchases() -> None:
    fields = _fields([{"CATEGORY": ["a", "b"], "PRICE": 3.0}, {"BRAND": ["x"]}])
    again = ItemFields.from_arrays(fields.arrays())
    assert again.names == fields.names
    assert again.value_of("CATEGORY", 0) == ("a", "b")
    assert again.value_of("PRICE", 1) is None
    assert again.value_of("COLOUR", 0) is None
    old = bought_at(np.array([True, False]), np.array([NOW, NOW]))
    assert old.tolist() == [[0, 0, NOW // MINUTE_MS], [0, 0, 0]]


def test_a_version_without_fields_filters_on_its_categories() -> None:
    fields = ItemFields.of_categories(np.array(["a", "", "b|c"]))
    found = parse('INCLUDE ItemID WHERE Items.CATEGORY IN ("c")').bind({})
    assert Selection.of(found, fields, None, NOW).allowed.tolist() == [False, False, True]


def test_kept_masks_stay_within_their_memory() -> None:
    assert masks_kept(100) == 512
    assert masks_kept(100_000) == 167  # 16 MB of 100,000-byte masks
    assert masks_kept(10_000_000) == 16
    fields = ItemFields(2_000_000, {}, {"PRICE": np.arange(2_000_000, dtype=np.float64)})
    for bound in range(40):
        found = fields.cached(Condition("Items", "PRICE", "<", float(bound)))
        assert int(found.sum()) == bound
        assert not found.flags.writeable  # shared between requests: nobody may change it
    assert len(fields._masks) <= masks_kept(fields.n)
