"""A shop's CSV files as the importer reads them: plain or gzipped, a header checked before
any row, each row with its line number, and Personalize's timestamps (Unix seconds, or
milliseconds and microseconds told by their size, or RFC 3339 text).

A file that cannot be read at all raises `InvalidImportFile` with the file and line."""

from __future__ import annotations

import csv
import gzip
import math
import re
import zlib
from collections.abc import Generator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO, Final, cast

from common.errors import InvalidRecord, Problem
from ingestion.errors import IngestionError

#: Below this, a TIMESTAMP is seconds (up to the year 5138); below 1e14, milliseconds; below
#: 1e17, microseconds. Each unit's range starts after 1973, so the three cannot be confused.
_SECONDS_BELOW: Final = 1e11
_MILLIS_BELOW: Final = 1e14
_MICROS_BELOW: Final = 1e17


class InvalidImportFile(IngestionError):
    """An import file cannot be read at all: missing, unreadable, or a header we cannot use.

    Raised before anything is written, so the lake is as it was.
    """


#: What `--columns` may call a column, beside the Personalize names themselves.
COLUMN_NAMES: Final = {
    "user": "USER_ID", "userid": "USER_ID", "user_id": "USER_ID",
    "item": "ITEM_ID", "itemid": "ITEM_ID", "item_id": "ITEM_ID",
    "event": "EVENT_TYPE", "type": "EVENT_TYPE", "event_type": "EVENT_TYPE",
    "timestamp": "TIMESTAMP", "time": "TIMESTAMP", "ts": "TIMESTAMP",
}  # fmt: skip
_DATA_LIKE: Final = re.compile(r"[\d.:\-+TZ ]*\d[\d.:\-+TZ ]*")


class CsvFile:
    """A Personalize-style CSV file, plain or gzip (told by content): header and rows.

    Column names are upper-cased. Lines are decoded one at a time, so a byte that is not
    UTF-8 is reported with its line number.
    """

    def __init__(
        self, path: Path, columns: Sequence[str] | None = None, *, name: str | None = None
    ) -> None:
        """`columns` names the columns of a file without a header row, in order; its first
        row is then data. `name` is what messages call the file (an `s3://` URL it was
        downloaded from), by default its path."""
        self.path = path
        self.name = name or str(path)
        self.headless = columns is not None
        if not path.exists():
            raise InvalidImportFile(f"{self.name}: no such file")
        if not path.is_file():
            raise InvalidImportFile(f"{self.name}: not a file")
        rows = self.rows()
        try:
            line, first = next(rows)
        except StopIteration:
            raise InvalidImportFile(
                f"{self.name}: the file is empty; it needs a header row"
            ) from None
        finally:
            rows.close()
        if columns is not None:
            if len(columns) != len(first):
                raise InvalidImportFile(
                    f"{self.name}: --columns names {len(columns)} columns, and its first row has "
                    f"{len(first)} values ({','.join(first)})"
                )
            first = [COLUMN_NAMES.get(name.strip().lower(), name) for name in columns]
        #: The header row's line number; 0 for a file without one.
        self.header_line = 0 if columns is not None else line
        self.header = [name.strip().upper() for name in first]
        blank = [str(i + 1) for i, name in enumerate(self.header) if not name]
        if blank:
            raise InvalidImportFile(
                f"{self.name}: column {', '.join(blank)} of the header has no name; every column "
                "needs one, such as USER_ID"
            )
        repeated = sorted({name for name in self.header if self.header.count(name) > 1})
        if repeated:
            raise InvalidImportFile(f"{self.name}: the header repeats {', '.join(repeated)}")

    def open_bytes(self) -> BinaryIO:
        """The file's bytes, gunzipped if it is gzip."""
        with self.path.open("rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        if gzipped:
            return cast(BinaryIO, gzip.open(self.path, "rb"))
        return self.path.open("rb")

    def _lines(self, handle: IO[bytes], numbers: list[int]) -> Iterator[str]:
        for number, raw in enumerate(handle, start=1):
            numbers[0] = number
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidImportFile(
                    f"{self.name}, line {number}: not UTF-8 text ({exc.reason} at byte "
                    f"{exc.start}); save the file as UTF-8 and import it again"
                ) from None
            yield text.removeprefix("\ufeff") if number == 1 else text

    def rows(self) -> Generator[tuple[int, list[str]], None, None]:
        """(line number, values) of every non-blank row, the header first."""
        numbers = [0]
        try:
            with self.open_bytes() as handle:
                reader = csv.reader(self._lines(handle, numbers))
                while True:
                    start = numbers[0] + 1  # a quoted value may span lines: report the first
                    try:
                        values = next(reader)
                    except StopIteration:
                        return
                    except csv.Error as exc:
                        raise InvalidImportFile(
                            f"{self.name}, line {start}: not readable as CSV ({exc})"
                        ) from None
                    if values and any(v.strip() for v in values):
                        yield start, values
        except (OSError, EOFError, zlib.error) as exc:
            raise InvalidImportFile(
                f"{self.name}, line {numbers[0]}: the file cannot be read ({exc})"
            ) from None

    def records(self) -> Iterator[tuple[int, dict[str, str] | list[str]]]:
        """(line number, {column: value}) of each data row; a row of the wrong width comes
        as its bare list of values, for `checked` to refuse."""
        rows = self.rows()
        if not self.headless:
            next(rows)
        for line, values in rows:
            if len(values) != len(self.header):
                yield line, values
            else:
                yield line, dict(zip(self.header, values, strict=True))

    def checked(self, row: dict[str, str] | list[str]) -> dict[str, str]:
        """A row as {column: value}; `InvalidRecord` if it has the wrong number of values."""
        if isinstance(row, list):
            raise InvalidRecord(
                [Problem("row", f"row has {len(row)} values for {len(self.header)} columns")]
            )
        return row

    def require(self, columns: Sequence[str], what: str, *, headless_hint: str = "") -> None:
        """Refuse the file unless its header has every column. `headless_hint` is added
        where the header looks like data (a file without a header row)."""
        missing = [c for c in columns if c not in self.header]
        if missing and headless_hint and not self.headless and self.looks_like_data():
            raise InvalidImportFile(
                f"{self.name}: the first row ({','.join(self.header)}) looks like data, not a "
                f"header; {headless_hint}"
            )
        if missing:
            raise InvalidImportFile(
                f"{self.name}: the header lacks {', '.join(missing)}, which {what} needs "
                f"(found: {','.join(self.header)})"
            )

    def looks_like_data(self) -> bool:
        """Whether the header row holds a number or a time, as a data row would."""
        return any(_DATA_LIKE.fullmatch(name) for name in self.header)

    def column(self, name: str | None, flag: str) -> str | None:
        """A column named on the command line, checked against the header."""
        if name is None:
            return None
        wanted = name.strip().upper()
        if wanted not in self.header:
            raise InvalidImportFile(
                f"{flag} {name}: {self.name} has no such column (found: {','.join(self.header)})"
            )
        return wanted


# -- values ----------------------------------------------------------------------------------


def parse_timestamp(value: str, column: str) -> tuple[datetime, bool]:
    """A TIMESTAMP cell as UTC, and whether it was rescaled from milli- or microseconds."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is None:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is None or parsed.utcoffset() is None:
            raise InvalidRecord(
                [
                    Problem(
                        column,
                        f"{column} must be Unix seconds such as 1755369000 (milliseconds are "
                        f"told by their size), or RFC 3339 with a zone (got {value!r})",
                    )
                ]
            ) from None
        return parsed.astimezone(UTC), False
    if not math.isfinite(number) or number < 0:
        raise InvalidRecord(
            [Problem(column, f"{column} must be a time after 1970 in Unix seconds (got {value!r})")]
        )
    if number < _SECONDS_BELOW:
        return datetime.fromtimestamp(number, UTC), False
    if number < _MILLIS_BELOW:
        return datetime.fromtimestamp(number / 1e3, UTC), True
    if number < _MICROS_BELOW:
        return datetime.fromtimestamp(number / 1e6, UTC), True
    raise InvalidRecord(
        [
            Problem(
                column,
                f"{column} {value} is too large for seconds, milliseconds or microseconds "
                "since 1970; Personalize's TIMESTAMP is Unix seconds",
            )
        ]
    )


def number(value: str, column: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(value)
    except ValueError:
        word = "a whole number" if kind is int else "a number"
        raise InvalidRecord([Problem(column, f"{column} must be {word} (got {value!r})")]) from None


# -- interactions ----------------------------------------------------------------------------
