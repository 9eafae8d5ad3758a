"""What `recs import` is told (`ImportOptions`) and what it reports (`ImportReport`): the
event-type spellings it knows, and how refusals are grouped into kinds for the summary."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from common.contract import EVENT_TYPES
from ingestion.csv_files import InvalidImportFile

#: Problems kept per file for the summary; every refused row is in the quarantine.
_PROBLEMS_KEPT: Final = 1000

#: Common spellings of our three event types in shops' exports; `--map` adds more. Keys are
#: compared with case, spaces, dashes and underscores ignored: "AddToCart" is "add_to_cart".
#: A favourite or a wish list is an intent to buy short of a cart; it is mapped to add_to_cart,
#: and the shop's own name stays in the curated `shop_event_type`, so an analyst (or a later
#: `--map fav=view`) can tell the two apart.
DEFAULT_EVENT_TYPE_MAP: Final = {
    "view": "view",
    "pv": "view",
    "page_view": "view",
    "click": "view",
    "detail": "view",
    "detail_view": "view",
    "product_view": "view",
    "add_to_cart": "add_to_cart",
    "cart": "add_to_cart",
    "fav": "add_to_cart",
    "favorite": "add_to_cart",
    "favourite": "add_to_cart",
    "wishlist": "add_to_cart",
    "add_to_wishlist": "add_to_cart",
    "purchase": "purchase",
    "order": "purchase",
    "buy": "purchase",
    "transaction": "purchase",
}
TITLE_COLUMNS: Final = ("TITLE", "NAME", "PRODUCT_NAME")
CATEGORY_COLUMNS: Final = ("CATEGORY", "CATEGORY_L1", "CATEGORIES")
_SPELLING: Final = re.compile(r"[\s_\-]+")


def event_type_key(name: str) -> str:
    """An event type's spelling with case, spaces, dashes and underscores ignored."""
    return _SPELLING.sub("", name.strip().lower())


@dataclass(frozen=True)
class ImportOptions:
    """How to read a shop's files: its event types, and which item columns mean what."""

    #: The shop's event type -> ours, on top of `DEFAULT_EVENT_TYPE_MAP`.
    event_types: Mapping[str, str] = field(default_factory=dict)
    #: Our type for rows with no EVENT_TYPE (or a file without the column).
    event_type: str | None = None
    #: The items column that holds the category (the first of a `|`-joined list).
    category_column: str | None = None
    #: The items column that holds the product's name.
    title_column: str | None = None
    #: The items column that holds the price (PRICE where not given).
    price_column: str | None = None
    #: The interactions file's columns, in order, for a file without a header row.
    columns: tuple[str, ...] | None = None

    def mapping(self) -> dict[str, str]:
        """Every known spelling -> our event type; refuses a target that is not ours."""
        mapping = {event_type_key(k): v for k, v in DEFAULT_EVENT_TYPE_MAP.items()}
        for name, target in self.event_types.items():
            if target not in EVENT_TYPES:
                raise InvalidImportFile(
                    f"--map {name}={target}: the target must be one of {', '.join(EVENT_TYPES)}"
                )
            mapping[event_type_key(name)] = target
        if self.event_type is not None and self.event_type not in EVENT_TYPES:
            raise InvalidImportFile(
                f"--event-type {self.event_type}: must be one of {', '.join(EVENT_TYPES)}"
            )
        return mapping


@dataclass
class ImportReport:
    """The outcome of importing one file: what landed, what was refused and where it went."""

    source: str
    kind: str
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    #: The first problems, (line, message); every refused row is in the quarantine.
    problems: list[tuple[int, str]] = field(default_factory=list)
    #: Event types no mapping covers, and how many rows each.
    unmapped: Counter[str] = field(default_factory=Counter)
    #: (the shop's event type, ours) -> rows, for every type that was mapped.
    mapped: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Rows whose TIMESTAMP was read as milliseconds or microseconds, not seconds.
    rescaled: int = 0
    #: Rows that repeat an earlier row of the file exactly; each is its own event.
    repeats: int = 0
    #: Accepted events whose id the lake did not hold yet (the rest were imported before).
    new: int = 0
    #: Rows earlier import runs refused that this one took in, by run.
    taken: dict[str, int] = field(default_factory=dict)
    #: Hints for the user: a column we could not place, for instance.
    notes: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    quarantine: str | None = None

    #: Refused rows by kind of problem (`problem_kind`), and the first examples of each.
    kinds: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    def refuse(self, line: int, message: str) -> None:
        """Count a refused row, keeping the first problems for the summary."""
        self.rejected += 1
        if len(self.problems) < _PROBLEMS_KEPT:
            self.problems.append((line, message))
        kind = problem_kind(message)
        self.kinds[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES_PER_KIND:
            shown.append((line, message))

    @property
    def mostly_refused(self) -> bool:
        """More than half the rows were refused: a wrong file, column or mapping, most
        likely, rather than a few bad rows."""
        return self.rejected * 2 > self.rows


#: Example lines shown for each kind of problem.
EXAMPLES_PER_KIND: Final = 3
_GOT: Final = re.compile(r"\s*\(got .*\)$")
_QUOTED: Final = re.compile(r"'[^']*'")
#: A number in a message, but not one of the fixed examples the message gives.
_NUMBER: Final = re.compile(r"(?<!RFC )(?<!such as )(?<![\d,.])\d[\d,.]*")


def problem_kind(message: str) -> str:
    """A refusal's message without what varies from row to row (the value it got, quoted
    names, numbers): rows refused for the same reason share it."""
    return _NUMBER.sub("N", _QUOTED.sub("'…'", _GOT.sub("", message)))
