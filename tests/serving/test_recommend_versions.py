"""One request sees one model version, end to end, while publishes flip the pointer.

Before, batch rows followed the store's pointer at once while `modelVersion` and realtime
answers followed the model loaded up to 30 s earlier: answers carried one version's label and
the other's items.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from common.lake import LocalLake
from serving.idempotency import LocalRequestContext
from serving.publish import publish
from serving.recommend import LiveModel
from serving.store import SQLiteStore
from tests.conftest import load_event
from tests.etl_helpers import NOW
from tests.serving_helpers import handler_for, published_shop, services_for
from training.pipeline import TrainOptions, train

K = 5


def _rows(lake: LocalLake, version: str) -> dict[str, list[str]]:
    lines = lake.read_bytes(f"batch/{version}/users.jsonl").splitlines()
    return {
        record["input"]["userId"]: record["output"]["recommendedItems"]
        for record in map(json.loads, lines)
    }


def test_every_answer_is_one_versions_while_the_pointer_flips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Four threads share one handler here, which Lambda and a `recs serve` worker never do
    # (one request at a time each): Powertools' metrics, one buffer per process, would see
    # one thread flush the counts of another's request and warn that it had none.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    shop = published_shop(tmp_path)
    lake = LocalLake(shop.lake)
    other = train(lake, TrainOptions(seed=7, weights={"view": 1.0}), now=NOW + timedelta(minutes=1))
    store = SQLiteStore(shop.store)
    publish(lake, store, other.version, force=True)
    expected = {v: _rows(lake, v) for v in (shop.version, other.version)}
    users = [
        u
        for u in expected[shop.version]
        if u in expected[other.version]
        and expected[shop.version][u][:K] != expected[other.version][u][:K]
    ][:40]
    assert len(users) >= 20  # the two versions answer these users differently

    services = services_for(shop, tmp_path / "api")
    services.recommender.live = LiveModel(lake, store, check_seconds=0.0)
    handler = handler_for(services)
    template = load_event("apigw_personalized.json")
    answers: list[dict[str, Any]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def ask(worker: int) -> None:
        try:
            for n in range(150):
                event = json.loads(json.dumps(template))
                user = users[(worker * 7 + n) % len(users)]
                event["rawQueryString"] = f"userId={user}&k={K}"
                event["queryStringParameters"] = {"userId": user, "k": str(K)}
                response = handler(event, LocalRequestContext())
                answers.append(json.loads(response["body"]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    def flip() -> None:
        versions = [shop.version, other.version]
        n = 0
        while not stop.is_set():
            store.activate(versions[n % 2])
            n += 1
            stop.wait(0.002)

    flipper = threading.Thread(target=flip)
    workers = [threading.Thread(target=ask, args=(w,)) for w in range(4)]
    flipper.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    stop.set()
    flipper.join()
    services.sink.close()

    assert not failures, failures
    assert len(answers) == 600
    seen = {answer["modelVersion"] for answer in answers}
    assert seen == {shop.version, other.version}  # the flips were seen
    for answer in answers:
        assert answer["source"] == "batch", answer
        items = [item["id"] for item in answer["items"]]
        assert items == expected[answer["modelVersion"]][answer["userId"]][:K], answer
