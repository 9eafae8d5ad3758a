"""Filter expressions: Personalize's grammar parsed, refused with the position of the error,
and bound to a request's values as Personalize binds them."""

from __future__ import annotations

import pytest

from common.filters import (
    Condition,
    Current,
    FilterSyntaxError,
    FilterValueError,
    Param,
    filter_values,
    parse,
)


def test_the_issues_three_examples_parse() -> None:
    bought = parse('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')
    assert not bought.expressions[0].include
    assert bought.expressions[0].any_of == (
        (Condition("Interactions", "EVENT_TYPE", "IN", ("purchase",)),),
    )
    assert bought.reads_interactions
    assert not bought.includes_own_items
    categories = parse("INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORIES)")
    assert categories.expressions[0].any_of[0][0].operand == Param("CATEGORIES")
    assert categories.params == {"CATEGORIES"}
    price = parse("EXCLUDE ItemID WHERE Items.PRICE > 100")
    assert price.expressions[0].any_of[0][0] == Condition("Items", "PRICE", ">", 100.0)


def test_and_binds_tighter_than_or_and_pipes_join_expressions() -> None:
    found = parse(
        'include itemid where Items.BRAND IN ("a", "b") AND Items.PRICE <= 5 OR Items.PRICE > 9'
        ' | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")'
    )
    first, second = found.expressions
    assert [len(group) for group in first.any_of] == [2, 1]
    assert first.any_of[0][0].operand == ("a", "b")
    assert second.dataset == "Interactions"
    related = parse("INCLUDE ItemID WHERE Items.GENRE IN CurrentItem.GENRE")
    assert related.uses_current_item
    assert related.expressions[0].any_of[0][0].operand == Current("GENRE")
    assert parse("INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE").uses_current_item


@pytest.mark.parametrize(
    ("text", "column", "says"),
    [
        ("EXCLUDE ItemID WHERE Items.PRICE > ", 36, "expected a number"),
        ('INCLUDE ItemID WHERE Items.CATEGORY = "shoes"', 22, "holds strings: use IN"),
        ('EXCLUDE ItemID WHERE Items.PRICE IN ("5")', 22, "PRICE is a number"),
        ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")', 50, "not an event type"),
        ('EXCLUDE ItemID WHERE Interactions.TS IN ("view")', 22, "EVENT_TYPE only"),
        ('EXCLUDE UserID WHERE Items.BRAND IN ("a")', 9, "expected ItemID"),
        ('KEEP ItemID WHERE Items.BRAND IN ("a")', 1, "expected INCLUDE or EXCLUDE"),
        ('EXCLUDE ItemID WHERE Items.BRAND IN ("a" "b")', 42, "expected , or )"),
        ('EXCLUDE ItemID WHERE Items.BRAND IN ("a") #', 43, "unexpected '#'"),
        (
            'EXCLUDE ItemID WHERE Items.BRAND IN ("a") AND Interactions.EVENT_TYPE IN ("view")',
            47,
            "the same dataset",
        ),
        (
            'EXCLUDE ItemID WHERE Items.BRAND IN ("a") IF CurrentUser.AGE > 3',
            43,
            "IF CurrentUser conditions are not supported",
        ),
        ('EXCLUDE ItemID WHERE Items.BRAND IN ("a") |', 44, "expected INCLUDE or EXCLUDE"),
    ],
)
def test_a_bad_expression_says_what_and_where(text: str, column: int, says: str) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse(text)
    assert caught.value.position + 1 == column
    assert says in str(caught.value)
    # The message points at the column under the expression.
    lines = str(caught.value).splitlines()
    assert lines[-1].index("^") - 4 == column - 1


def test_values_bind_as_personalize_takes_them() -> None:
    found = parse(
        "INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORIES) | "
        "EXCLUDE ItemID WHERE Items.PRICE > $MAX"
    )
    bound = found.bind({"CATEGORIES": '"shoes","bags"', "MAX": "100"})
    assert bound.expressions[0].any_of[0][0].operand == ("shoes", "bags")
    assert bound.expressions[1].any_of[0][0].operand == 100.0
    # An EXCLUDE without its value is skipped, as Personalize skips it ...
    assert len(found.bind({"CATEGORIES": '"shoes"'}).expressions) == 1
    # ... an INCLUDE is not.
    with pytest.raises(FilterValueError, match="INCLUDE needs filterValues for CATEGORIES"):
        found.bind({"MAX": "5"})
    with pytest.raises(FilterValueError, match="does not take"):
        found.bind({"CATEGORIES": '"a"', "COLOUR": '"red"'})
    with pytest.raises(FilterValueError, match="must be a number"):
        found.bind({"CATEGORIES": '"a"', "MAX": "cheap"})
    with pytest.raises(FilterValueError, match="quoted, comma-separated"):
        found.bind({"CATEGORIES": "shoes"})


def test_event_types_in_a_parameter_are_checked() -> None:
    found = parse("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($TYPES)")
    assert found.bind({"TYPES": '"view","purchase"'}).expressions
    with pytest.raises(FilterValueError, match="'click' is not an event type"):
        found.bind({"TYPES": '"click"'})


def test_filter_values_must_be_a_json_object_of_strings() -> None:
    assert filter_values('{"CATEGORY": "\\"shoes\\""}') == {"CATEGORY": '"shoes"'}
    assert filter_values('{"$MAX": "5"}') == {"MAX": "5"}
    with pytest.raises(FilterValueError, match="JSON object"):
        filter_values("CATEGORY=shoes")
    with pytest.raises(FilterValueError, match="of strings"):
        filter_values('{"MAX": 5}')


def test_escaped_quotes_and_long_expressions() -> None:
    found = parse('INCLUDE ItemID WHERE Items.TITLE IN ("12\\" pipe", "a\\\\b")')
    assert found.expressions[0].any_of[0][0].operand == ('12" pipe', "a\\b")
    with pytest.raises(FilterSyntaxError, match="at most 2500"):
        parse("EXCLUDE ItemID WHERE Items.PRICE > 1" + " " * 2500)
