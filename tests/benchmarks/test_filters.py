"""The filters benchmark's values: each shop's most common category and median price, given
as a request gives them."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import numpy as np

from benchmarks.filters import FILTERS, _values
from common.filters import parse
from training.item_fields import ItemFields


def test_each_filter_gets_values_its_expression_takes() -> None:
    categories = np.array(["shoes", "bags", "shoes", ""])
    fields = ItemFields(4, {}, {"PRICE": np.array([1.0, 3.0, np.nan, 10.0])})
    model: Any = SimpleNamespace(categories=categories, fields=fields)
    values = _values(model)
    assert values["a category"] == {"CATEGORIES": json.dumps("shoes")}
    assert values["a price bound"] == {"MAX": "3"}
    for name, spec in FILTERS.items():
        bound = parse(spec.expression).bind(values[name])
        assert len(bound.expressions) == 1  # nothing skipped for want of a value
    # A shop without prices (MovieLens) still binds: its bound holds for no item.
    bare: Any = SimpleNamespace(categories=categories, fields=None)
    assert _values(bare)["a price bound"] == {"MAX": "0"}
