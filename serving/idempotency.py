"""Idempotency for `POST /events` on one machine: Powertools' persistence layer over SQLite.

On AWS the API uses Powertools' idempotency utility with its DynamoDB persistence layer.
Locally the same utility, with the same decorator and the same semantics, keeps its records
in a SQLite file beside the online store. The rules follow the DynamoDB layer's conditional
write: a key may be (re)claimed only if it is new, expired, or stuck in progress past its
in-progress expiry. One suite runs against both layers (DynamoDB under moto).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (
    STATUS_CONSTANTS,
    DataRecord,
)

from common.sqlite import ThreadConnections

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    expiration INTEGER,
    in_progress_expiration INTEGER,
    data TEXT NOT NULL DEFAULT '',
    validation TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID
"""


class SQLitePersistenceLayer(BasePersistenceLayer):
    """Powertools idempotency records in a SQLite file (WAL; one connection per thread)."""

    def __init__(self, path: Path) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.path = path
        self._connections = ThreadConnections(path)
        self._connection().execute(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        return self._connections.get()

    @staticmethod
    def _record(row: tuple[Any, ...]) -> DataRecord:
        return DataRecord(
            idempotency_key=row[0],
            status=row[1],
            expiry_timestamp=row[2],
            in_progress_expiry_timestamp=row[3],
            response_data=row[4],
            payload_hash=row[5],
        )

    def _select(self, con: sqlite3.Connection, key: str) -> DataRecord | None:
        row = con.execute(
            "SELECT id, status, expiration, in_progress_expiration, data, validation "
            "FROM idempotency WHERE id = ?",
            (key,),
        ).fetchone()
        return None if row is None else self._record(row)

    def _get_record(self, idempotency_key: str) -> DataRecord:
        record = self._select(self._connection(), idempotency_key)
        if record is None:
            raise IdempotencyItemNotFoundError
        return record

    def _put_record(self, data_record: DataRecord) -> None:
        now = dt.datetime.now()
        # IMMEDIATE: one writer at a time, so the check and the write are one.
        with self._connections.transaction() as con:
            old = self._select(con, data_record.idempotency_key)
            claimable = old is None or (
                (old.expiry_timestamp or 0) < int(now.timestamp())
                or (
                    old.status == STATUS_CONSTANTS["INPROGRESS"]
                    and old.in_progress_expiry_timestamp is not None
                    and old.in_progress_expiry_timestamp < int(now.timestamp() * 1000)
                )
            )
            if not claimable:
                assert old is not None
                self._validate_payload(data_payload=data_record, stored_data_record=old)
                self._save_to_cache(data_record=old)
                raise IdempotencyItemAlreadyExistsError(old_data_record=old)
            con.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, '', ?)",
                (
                    data_record.idempotency_key,
                    data_record.status,
                    data_record.expiry_timestamp,
                    data_record.in_progress_expiry_timestamp,
                    data_record.payload_hash if self.payload_validation_enabled else "",
                ),
            )

    def _update_record(self, data_record: DataRecord) -> None:
        self._connection().execute(
            "UPDATE idempotency SET status = ?, expiration = ?, data = ? WHERE id = ?",
            (
                data_record.status,
                data_record.expiry_timestamp,
                data_record.response_data,
                data_record.idempotency_key,
            ),
        )

    def _delete_record(self, data_record: DataRecord) -> None:
        self._connection().execute(
            "DELETE FROM idempotency WHERE id = ?", (data_record.idempotency_key,)
        )


class LocalRequestContext:
    """What Powertools reads from a Lambda context, for a request served locally.

    Logger reads the function's name and the request id; idempotency reads the time left,
    so that a request that dies mid-way frees its key once this much time has passed.
    """

    function_name = "recs-api-local"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:recs-api-local"
    memory_limit_in_mb = 0

    def __init__(self, timeout_ms: int = 30_000, request_id: str | None = None) -> None:
        self._deadline = dt.datetime.now() + dt.timedelta(milliseconds=timeout_ms)
        self.aws_request_id = request_id or str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the request's deadline."""
        left = self._deadline - dt.datetime.now()
        return max(0, int(left.total_seconds() * 1000))
