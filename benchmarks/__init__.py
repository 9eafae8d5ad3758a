"""Benchmarks that write docs/benchmarks.md; run with `make bench`."""

from datetime import UTC, datetime
from typing import Final

#: Where every generated benchmark shop's history ends, so its counts are the same anywhere.
END: Final = datetime(2026, 11, 1, tzinfo=UTC)
