"""The synthetic shop: reproducible, and shaped like a real shop in the ways models care about."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from common.contract import parse_event, parse_item, parse_user
from ingestion.generator import (
    DAY_MS,
    ShopSpec,
    event_lines,
    generate_shop,
    item_records,
    user_records,
)

END = datetime(2026, 11, 1, tzinfo=UTC)
SPEC = ShopSpec(users=800, items=400, categories=8, days=28, events=40_000, seed=3, end=END)


@pytest.fixture(scope="module")
def shop():  # type: ignore[no-untyped-def]
    return generate_shop(SPEC)


def test_same_seed_same_shop_other_seed_other_shop(shop) -> None:  # type: ignore[no-untyped-def]
    again = generate_shop(SPEC)
    assert event_lines(again, 0, again.n_events) == event_lines(shop, 0, shop.n_events)
    other = generate_shop(ShopSpec(**{**SPEC.__dict__, "seed": 4}))
    assert event_lines(other, 0, 100) != event_lines(shop, 0, 100)


def test_exact_event_count_sorted_inside_the_window(shop) -> None:  # type: ignore[no-untyped-def]
    assert shop.n_events == SPEC.events
    assert np.all(np.diff(shop.ts_ms) >= 0)
    assert shop.ts_ms[0] >= shop.start_ms
    assert shop.ts_ms[-1] < shop.end_ms


def test_every_line_and_record_passes_the_contract(shop) -> None:  # type: ignore[no-untyped-def]
    lines = event_lines(shop, 0, shop.n_events)
    ids = set()
    for line in lines[:: max(1, len(lines) // 2000)]:
        event = parse_event(line)
        assert event.to_json_line() == line
    for line in lines:
        ids.add(json.loads(line)["event_id"])
    assert len(ids) == shop.n_events
    for record in item_records(shop):
        parse_item(record)
    for record in user_records(shop):
        parse_user(record)


def test_popularity_follows_a_power_law(shop) -> None:  # type: ignore[no-untyped-def]
    counts = np.sort(np.bincount(shop.item, minlength=SPEC.items))[::-1]
    top_decile = counts[: SPEC.items // 10].sum() / counts.sum()
    assert top_decile > 0.3  # uniform would be 0.10
    ranks = np.arange(1, 101)
    slope = np.polyfit(np.log(ranks), np.log(counts[:100] + 1), 1)[0]
    assert -1.6 < slope < -0.3


def test_sessions_go_view_then_cart_then_purchase_with_drop_off(shop) -> None:  # type: ignore[no-untyped-def]
    kinds = np.bincount(shop.kind, minlength=3)
    views, carts, purchases = kinds
    assert 0.04 < carts / views < 0.25
    assert 0.2 < purchases / carts < 0.5
    first_seen: dict[tuple[int, int, int], int] = {}
    for s, i, k, t in zip(
        shop.session.tolist(),
        shop.item.tolist(),
        shop.kind.tolist(),
        shop.ts_ms.tolist(),
        strict=True,
    ):
        if k == 0:
            first_seen.setdefault((s, i, 0), t)
        else:
            assert (s, i, k - 1) in first_seen, "a cart or purchase without the step before it"
            assert first_seen[(s, i, k - 1)] <= t
            first_seen.setdefault((s, i, k), t)


def test_new_items_appear_and_are_never_seen_before_they_exist(shop) -> None:  # type: ignore[no-untyped-def]
    new = shop.item_created_ms >= shop.start_ms
    assert 0.1 < new.mean() < 0.3
    assert np.all(shop.ts_ms >= shop.item_created_ms[shop.item])
    assert new[shop.item].sum() > 0, "new items should get traffic"


def test_collaborative_filtering_beats_popularity_by_a_clear_margin(shop) -> None:  # type: ignore[no-untyped-def]
    """Item co-occurrence kNN against popularity, on a time split: the taste signal is real."""
    split = shop.end_ms - 7 * DAY_MS
    train, test = shop.ts_ms < split, shop.ts_ms >= split
    n_users, n_items = SPEC.users, SPEC.items
    weights = np.array([1.0, 3.0, 5.0])[shop.kind]
    ui = np.zeros((n_users, n_items))
    np.add.at(ui, (shop.user[train], shop.item[train]), weights[train])
    seen = ui > 0
    binary = seen.astype(float)
    cooc = binary.T @ binary
    np.fill_diagonal(cooc, 0)
    norms = np.sqrt(np.diag(binary.T @ binary)) + 1e-9
    sim = cooc / norms[:, None] / norms[None, :]
    truth = np.zeros((n_users, n_items), dtype=bool)
    truth[shop.user[test], shop.item[test]] = True
    truth &= ~seen
    users = np.flatnonzero(truth.any(axis=1) & seen.any(axis=1))

    def recall_at_10(scores: np.ndarray) -> float:
        scores = np.where(seen[users], -np.inf, scores)
        top = np.argsort(-scores, axis=1)[:, :10]
        hits = np.take_along_axis(truth[users], top, axis=1).sum(axis=1)
        return float((hits / np.minimum(truth[users].sum(axis=1), 10)).mean())

    popularity = recall_at_10(np.broadcast_to(binary.sum(axis=0), (len(users), n_items)).copy())
    knn = recall_at_10(ui[users] @ sim)
    assert knn > popularity * 1.2, (knn, popularity)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"users": 0}, "users must be at least 1"),
        ({"categories": 500}, "must not exceed items"),
        ({"end": datetime(2026, 1, 1)}, "time zone"),
    ],
)
def test_impossible_specs_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_shop(ShopSpec(**{**SPEC.__dict__, **change}))
