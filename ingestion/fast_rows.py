"""The vectorized first pass of `recs import`: a file's plain rows checked and turned into
events' canonical JSON with Arrow, a block of lines at a time.

A row is plain when its line is printable ASCII with no quote or backslash, so that splitting
on commas is what a CSV reader does and no value needs escaping in JSON. A plain row whose
values pass the contract's rules, as checked here in bulk (ids not blank and at most 256
characters, a known event type, a TIMESTAMP of whole seconds, milliseconds or microseconds
not in the future, a price and a quantity in range, properties within their limits), gets
its JSON built here, byte for byte what the contract writes. Every other row goes to the
row-at-a-time reader, in line order, so each refusal carries the contract's own message.

`GiveUp` is raised for a file the blocks cannot be cut from safely (a quoted value over
several lines, a line that is not UTF-8, a CSV error, odd column names); the caller then
reads the whole file again, one row at a time, from the start.
"""

from __future__ import annotations

import csv
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pydantic_core

from common.contract import (
    MAX_CLOCK_SKEW,
    MAX_EVENT_BYTES,
    MAX_ID_LENGTH,
    MAX_PROPERTIES,
    MAX_PROPERTY_CHARS,
    epoch_ms,
)
from ingestion.csv_files import CsvFile
from ingestion.import_options import event_type_key
from ingestion.interactions import SPOOL_SCHEMA, RowReader, Spool

#: Bytes read per block: big enough that Arrow's per-call cost vanishes, small enough that
#: a block's columns stay in the CPU's caches (2 MB ran faster than 1, 4, 8 or 16 MB on a
#: 2,000,000-row log, and holds least memory).
BLOCK_BYTES: Final = 2 << 20
_PLAIN: Final = r"^[ !#-\[\]-~]*$"
_BLANK: Final = r"^[ ,]*$"
#: Blocks vectorized at once, beside the thread that reads and finishes them.
_THREADS: Final = 2
_PROPERTY_NAME: Final = r"^[ !#-\[\]-~]{1,256}$"
_ID: Final = r"^ *[!-~]"
_WHOLE: Final = r"^[0-9]{1,16}$"
_DECIMAL: Final = r"^[0-9]{1,15}(\.[0-9]{1,15})?$"
_QUANTITY: Final = r"^[1-9][0-9]{0,4}$"
_SECONDS_BELOW: Final = 10**11
_MILLIS_BELOW: Final = 10**14
_BOM: Final = "\ufeff".encode()
#: "00" to "99" as bytes, indexed by the number.
_TWO_DIGITS: Final = np.array([list(f"{i:02d}".encode()) for i in range(100)], dtype=np.uint8)
_FIELDS: Final = (
    "USER_ID",
    "ITEM_ID",
    "TIMESTAMP",
    "EVENT_TYPE",
    "SESSION_ID",
    "PRICE",
    "QUANTITY",
)


class GiveUp(Exception):
    """The file needs the row-at-a-time reader from its first line."""


def read_fast(spool: Spool, rows: RowReader, progress: Callable[[int], None] | None) -> None:
    """The first pass over a whole file; `GiveUp` if it has to be read row by row."""
    source = rows.source
    properties = [c for c in source.header if c not in _FIELDS]
    plain_names = pc.match_substring_regex(pa.array(properties, pa.string()), _PROPERTY_NAME)
    if len(properties) > MAX_PROPERTIES or pc.all(plain_names).as_py() not in (True, None):
        raise GiveUp
    block = _Block(rows)
    # Arrow's kernels let go of the GIL: one block is vectorized while the next is read and
    # the one before is finished (its odd rows, in line order) on this thread.
    with ThreadPoolExecutor(_THREADS, thread_name_prefix="import-block") as pool:
        pending: deque[Future[_Vectorized]] = deque()
        for first, lines in _blocks(source):
            pending.append(pool.submit(block.vectorize, first, lines))
            if len(pending) > _THREADS:
                _finish(block, pending.popleft().result(), spool, progress)
        while pending:
            _finish(block, pending.popleft().result(), spool, progress)


def _finish(
    block: _Block, done: _Vectorized, spool: Spool, progress: Callable[[int], None] | None
) -> None:
    before = block.report.rows
    spool.add(block.finish(done))
    if progress is not None:
        progress(block.report.rows - before)


def _blocks(source: CsvFile) -> Iterator[tuple[int, pa.Array]]:
    """(line number of the first, lines) for each block of whole lines after the header,
    without their line ends."""
    number = 1
    rest = b""
    with source.open_bytes() as handle:
        while True:
            try:
                data = handle.read(BLOCK_BYTES)
            except (OSError, EOFError, zlib.error):
                raise GiveUp from None  # the row reader names the line
            text = rest + data
            if not data:
                if not text:
                    return
                rest, text = b"", text + b"\n"
            else:
                cut = text.rfind(b"\n") + 1
                text, rest = text[:cut], text[cut:]
                if not text:
                    continue
            if number == 1 and text.startswith(_BOM):
                text = text[len(_BOM) :]
            try:
                text.decode()
            except UnicodeDecodeError:
                raise GiveUp from None  # the row reader names the line
            whole = pa.array([text], pa.binary()).view(pa.string())
            lines = pc.split_pattern(whole, "\n")[0].values[:-1]
            start = max(source.header_line + 1 - number, 0)
            if start < len(lines):
                kept = lines[start:]
                if b"\r" in text:
                    kept = pc.replace_substring_regex(kept, r"\r$", "")
                yield number + start, kept
            number += len(lines)


def iso_ms(ts_ms: npt.NDArray[np.int64]) -> pa.StringArray:
    """`format_ts` of each time (ms since 1970, up to the year 9999), as 24 characters such
    as 2025-08-16T18:30:00.000Z, computed on whole columns (Arrow's strftime takes about a
    microsecond a value)."""
    days, ms = np.divmod(ts_ms, 86_400_000)
    # Howard Hinnant's civil_from_days, for days since 1970-01-01.
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    seconds, milli = np.divmod(ms, 1000)
    minutes, second = np.divmod(seconds, 60)
    hour, minute = np.divmod(minutes, 60)
    n = len(ts_ms)
    text = np.frombuffer(b"0000-00-00T00:00:00.000Z" * n, dtype=np.uint8).reshape(n, 24).copy()
    milli_tens, milli_ones = np.divmod(milli, 100)
    for value, start in (
        (year // 100, 0), (year % 100, 2), (month, 5), (day, 8), (hour, 11), (minute, 14),
        (second, 17), (milli_ones, 21),
    ):  # fmt: skip
        text[:, start : start + 2] = _TWO_DIGITS[value]
    text[:, 20] = ord("0") + milli_tens
    offsets = np.arange(0, 24 * (n + 1), 24, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


@dataclass
class _Vectorized:
    """One block after the vectorized checks: what `_Block.finish` needs."""

    built: pa.Table
    ok: npt.NDArray[np.bool_]
    rescaled: int
    mapped: Counter[tuple[str, str]] = field(default_factory=Counter)
    lines: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    numbers: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    bulk: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))


class _Block:
    """Reads blocks of lines: plain rows in bulk, the others through `RowReader`."""

    def __init__(self, rows: RowReader) -> None:
        source, options, now = rows.source, rows.options, rows.now
        self.header = source.header
        self.options = options
        self.report = rows.report
        self.rows = rows
        self.latest_us = epoch_ms(now + MAX_CLOCK_SKEW) * 1000
        self.mapping = mapping = options.mapping()
        self.spellings = pa.array(list(mapping), pa.string())
        self.targets = pa.array(list(mapping.values()), pa.string())
        self.ours = pa.array([k == event_type_key(v) for k, v in mapping.items()])

    def vectorize(self, first: int, lines: pa.Array) -> _Vectorized:
        """The block's plain rows checked and built; safe to run on other threads."""
        numbers = np.arange(first, first + len(lines), dtype=np.int64)
        plain = pc.match_substring_regex(lines, _PLAIN)
        blank = pc.and_(plain, pc.match_substring_regex(lines, _BLANK))
        keep = pc.invert(blank)
        lines, plain, numbers = lines.filter(keep), plain.filter(keep), numbers[keep]
        split = pc.split_pattern(lines, ",")
        fits = pc.and_(plain, pc.equal(pc.list_value_length(split), len(self.header)))
        fitting = fits.to_numpy(zero_copy_only=False)
        values = split.filter(fits).flatten()
        width = len(self.header)
        count = int(fitting.sum())
        columns = {
            name: values.take(pa.array(np.arange(j, count * width, width)))
            for j, name in enumerate(self.header)
        }
        done = self._events(columns, count)
        done.lines, done.numbers = lines, numbers
        done.bulk = np.flatnonzero(fitting)[done.ok]
        return done

    def finish(self, done: _Vectorized) -> pa.Table:
        """The block's accepted rows as a spool table, in line order, after its other rows
        went through the row reader; on this thread, block after block."""
        report = self.report
        report.rows += len(done.bulk)
        report.accepted += len(done.bulk)
        report.rescaled += done.rescaled
        report.mapped.update(done.mapped)
        odd = np.ones(len(done.lines), dtype=np.bool_)
        odd[done.bulk] = False
        for index in np.flatnonzero(odd).tolist():
            text = done.lines[index].as_py()
            if text.count('"') % 2:
                raise GiveUp  # a quoted value may run on to the next line
            try:
                self.rows.take_text(int(done.numbers[index]), text)
            except csv.Error:
                raise GiveUp from None
        slow = self.rows.table()
        fast = (
            done.built.filter(pa.array(done.ok))
            .append_column("line", pa.array(done.numbers[done.bulk]))
            .select(SPOOL_SCHEMA.names)
        )
        table = pa.concat_tables([fast.cast(SPOOL_SCHEMA), slow])
        return table.sort_by("line")

    def _events(self, columns: dict[str, pa.Array], count: int) -> _Vectorized:
        """Each fitting row's event JSON (without id), time and shop name, and which rows
        this path vouches for."""
        ok = np.ones(count, dtype=bool)

        def need(mask: pa.Array) -> None:
            ok[:] &= np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))

        def ident(column: pa.Array) -> None:
            need(pc.match_substring_regex(column, _ID))
            need(pc.less_equal(pc.utf8_length(column), MAX_ID_LENGTH))

        user, item = columns["USER_ID"], columns["ITEM_ID"]
        ident(user)
        ident(item)
        event_type, shop = self._event_types(columns, count, need)
        stamp = columns["TIMESTAMP"]
        need(pc.match_substring_regex(stamp, _WHOLE))
        whole = pc.cast(pc.if_else(pa.array(ok), stamp, "0"), pa.int64()).to_numpy()
        scaled = whole >= _SECONDS_BELOW
        ts_ms = np.where(
            scaled, np.where(whole >= _MILLIS_BELOW, whole // 1000, whole), whole * 1000
        )
        ts_us = np.where(whole >= _MILLIS_BELOW, whole, ts_ms * 1000)
        ok &= ts_us <= self.latest_us
        ts_text = iso_ms(np.where(ok, ts_ms, 0))
        parts = [
            '{"user_id":"', user, '","item_id":"', item, '","event_type":"', event_type,
            '","ts":"', ts_text, '"',
        ]  # fmt: skip
        parts += self._optional(columns, need)
        parts.append("}")
        content = pc.binary_join_element_wise(*parts, "")
        shop_json = pc.binary_join_element_wise('"', shop, '"', "")
        size = pc.add(
            pc.utf8_length(content), pc.fill_null(pc.add(pc.utf8_length(shop_json), 19), 0)
        )
        need(pc.less_equal(pc.add(size, 50), MAX_EVENT_BYTES))
        done = _Vectorized(
            built=pa.table({"ts_ms": ts_ms, "shop": shop_json, "content": content}),
            ok=ok,
            rescaled=int((scaled & ok).sum()),
        )
        if "EVENT_TYPE" in columns:
            for entry in pc.value_counts(columns["EVENT_TYPE"].filter(pa.array(ok))).to_pylist():
                name = entry["values"]
                if name.strip():
                    done.mapped[(name, self.mapping[event_type_key(name)])] += entry["counts"]
        return done

    def _event_types(
        self, columns: dict[str, pa.Array], count: int, need: Callable[[pa.Array], None]
    ) -> tuple[pa.Array, pa.Array]:
        """Our event type of each row, and the shop's own name where it is not ours."""
        fixed = self.options.event_type
        raw = columns.get("EVENT_TYPE")
        if raw is None:
            assert fixed is not None  # the header check asks for --event-type
            return pa.array([fixed] * count, pa.string()), pa.nulls(count, pa.string())
        # A shop has few event names: work on each distinct one, then spread to the rows.
        encoded = raw.dictionary_encode()
        names, rows = encoded.dictionary, encoded.indices
        stripped = pc.utf8_trim_whitespace(names)
        key = pc.replace_substring_regex(pc.utf8_lower(names), r"[\s_\-]+", "")
        index = pc.take(pc.index_in(key, value_set=self.spellings), rows)
        stripped = pc.take(stripped, rows)
        empty = pc.equal(pc.utf8_length(stripped), 0)
        if fixed is None:
            need(pc.invert(empty))
        need(pc.or_(empty, pc.is_valid(index)))
        need(pc.less_equal(pc.utf8_length(stripped), MAX_ID_LENGTH))
        found = pc.take(self.targets, index)
        ours = pc.fill_null(pc.take(self.ours, index), True)
        if fixed is not None:
            found = pc.if_else(empty, fixed, found)
        # A row refused above gets a placeholder: it is never kept.
        event_type = pc.fill_null(found, "view")
        shop = pc.if_else(pc.or_(empty, ours), pa.scalar(None, pa.string()), stripped)
        return event_type, shop

    def _optional(
        self, columns: dict[str, pa.Array], need: Callable[[pa.Array], None]
    ) -> list[pa.Array | str]:
        """The JSON of the optional fields, in the contract's order: session, price,
        quantity, properties."""
        parts: list[pa.Array | str] = []
        empty = {name: pc.equal(column, "") for name, column in columns.items()}

        def present(name: str, rule: str, text: pa.Array) -> None:
            need(pc.or_(empty[name], pc.match_substring_regex(columns[name], rule)))
            parts.append(pc.if_else(empty[name], "", text))

        if "SESSION_ID" in columns:
            session = columns["SESSION_ID"]
            need(pc.less_equal(pc.utf8_length(session), MAX_ID_LENGTH))
            present(
                "SESSION_ID", _ID, pc.binary_join_element_wise(',"session_id":"', session, '"', "")
            )
        if "PRICE" in columns:
            prices = columns["PRICE"]
            good = pc.and_(pc.invert(empty["PRICE"]), pc.match_substring_regex(prices, _DECIMAL))
            numbers = pc.cast(pc.if_else(good, prices, "0"), pa.float64()).to_pylist()
            text = pydantic_core.to_json(numbers)[1:-1].decode().split(",") if numbers else []
            present(
                "PRICE",
                _DECIMAL,
                pc.binary_join_element_wise(',"price":', pa.array(text, pa.string()), ""),
            )
        if "QUANTITY" in columns:
            quantity = columns["QUANTITY"]
            small = pc.and_(
                pc.invert(empty["QUANTITY"]), pc.match_substring_regex(quantity, _QUANTITY)
            )
            numbers_q = pc.cast(pc.if_else(small, quantity, "1"), pa.int64())
            need(pc.or_(empty["QUANTITY"], pc.less_equal(numbers_q, 10_000)))
            present(
                "QUANTITY", _QUANTITY, pc.binary_join_element_wise(',"quantity":', quantity, "")
            )
        properties = [c for c in columns if c not in _FIELDS]
        if properties:
            pieces = []
            for name in properties:
                need(pc.less_equal(pc.utf8_length(columns[name]), MAX_PROPERTY_CHARS))
                piece = pc.binary_join_element_wise(f',"{name.lower()}":"', columns[name], '"', "")
                pieces.append(pc.if_else(empty[name], "", piece))
            # Each present value with a leading comma: the first one's opens the object.
            joined = pc.binary_join_element_wise(*pieces, "")
            parts.append(
                pc.if_else(
                    pc.equal(joined, ""),
                    "",
                    pc.binary_join_element_wise(
                        ',"properties":{', pc.utf8_slice_codeunits(joined, 1), "}", ""
                    ),
                )
            )
        return parts
