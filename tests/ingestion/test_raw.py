"""The raw zone's layout and its backfill writer."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pytest

from common.lake import LocalLake
from ingestion.raw import (
    HOUR_MS,
    RAW_EVENT_KEY,
    RawEventWriter,
    event_object_key,
    gzip_bytes,
    read_lines,
    write_catalog_dump,
)

H0 = int(datetime(2025, 8, 16, 18, tzinfo=UTC).timestamp() * 1000)


def test_keys_follow_firehose_naming() -> None:
    key = event_object_key("shop", datetime(2025, 8, 16, 18, 30, 5, tzinfo=UTC), "abc")
    assert key == "raw/events/2025/08/16/18/shop-1-2025-08-16-18-30-05-abc.gz"
    match = RAW_EVENT_KEY.match(key)
    assert match
    assert match["stream"] == "shop"
    assert match["hour"] == "18"
    assert RAW_EVENT_KEY.match(
        "raw/events/2025/08/16/18/moto-stream-1-2025-08-16-18-30-05-9f1e-uuid"
    )
    assert not RAW_EVENT_KEY.match("raw/events/2025/08/16/stray.json")


def test_gzip_is_deterministic_and_read_back_by_content() -> None:
    body = b'{"a":1}\n{"a":2}\n'
    assert gzip_bytes(body) == gzip_bytes(body)
    assert read_lines(gzip_bytes(body)) == read_lines(body) == [b'{"a":1}', b'{"a":2}']
    assert read_lines(gzip.compress(b"x\n") + gzip.compress(b"y\n")) == [b"x", b"y"]


def test_writer_partitions_by_hour_and_cuts_objects(local_lake: LocalLake) -> None:
    with RawEventWriter(local_lake, stream="s", run_key="r", object_bytes=100) as writer:
        writer.add(H0 + 5, [f'{{"n":{i}}}' for i in range(30)])
        writer.add(H0 + HOUR_MS, ['{"n":"late"}'])
    keys = list(local_lake.list("raw/events/"))
    assert {k.split("/")[5] for k in keys} == {"18", "19"}
    assert len(keys) > 2
    lines = [line for k in keys for line in read_lines(local_lake.read_bytes(k))]
    assert len(lines) == 31
    assert writer.report.events == 31


def test_writer_bounds_its_memory_whatever_the_input_order(local_lake: LocalLake) -> None:
    writer = RawEventWriter(
        local_lake, stream="s", run_key="r", object_bytes=10_000, buffer_bytes=500
    )
    for i in range(200):
        writer.add(H0 + (i % 50) * HOUR_MS, [f'{{"n":{i}}}'])
        assert writer._buffered <= 500
    writer.close()
    assert writer.report.events == 200


def test_same_run_key_writes_the_same_objects(local_lake: LocalLake) -> None:
    reports = []
    for _ in range(2):
        with RawEventWriter(local_lake, stream="s", run_key="same") as writer:
            writer.add(H0, ['{"n":1}'])
        reports.append(writer.report.objects)
    assert reports[0] == reports[1]
    assert len(list(local_lake.list("raw/events/"))) == 1


def test_catalog_dump_writes_its_manifest_last(local_lake: LocalLake) -> None:
    written: list[str] = []
    original = local_lake.write_bytes

    class Recording(LocalLake):
        def write_bytes(self, key: str, body: bytes) -> None:
            written.append(key.rsplit("/", 1)[1])
            original(key, body)

    prefix = write_catalog_dump(
        Recording(local_lake.root),
        datetime(2025, 8, 16, tzinfo=UTC),
        items=[{"item_id": "I1"}],
        users=[],
    )
    assert prefix == "raw/catalog/20250816T000000Z"
    assert written == ["items.jsonl", "users.jsonl", "_manifest.json"]


def test_gzip_goes_through_isal_where_installed_and_zlib_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both write standard gzip that any reader takes; the Lambda zip carries no isal."""
    from ingestion import raw

    body = b"".join(b'{"event_id":"e%d","user_id":"U1"}\n' % n for n in range(5000))
    fast = gzip_bytes(body)
    assert raw._isal() is not None
    monkeypatch.setattr(raw, "_isal", lambda: None)
    plain = gzip_bytes(body)
    assert fast != plain
    assert gzip.decompress(fast) == gzip.decompress(plain) == body
    assert gzip.decompress(gzip_bytes(body, 6)) == body
