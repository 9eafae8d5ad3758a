"""A shopper's and an operator's tour of the pages in headless Chromium, with screenshots.

`python -m orchestration.ui.tour --base http://127.0.0.1:8000 --out docs/img` (what
`make screenshots` runs against the demo): open the store, pick a shopper, open a product,
add it to the cart, then open the ops page. The browser test runs the same tour and checks
what it saw; `--out` keeps a screenshot of each page.

The browser is Debian's Chromium (`make browser` installs it; Playwright's own download is
not reachable here), driven by Playwright's Python package; `RECS_CHROMIUM` names another.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic import Field

from common.settings import RecsSettings

#: Chromium's flags for a closed network and a root user (no sandbox), as the machine needs.
FLAGS: Final = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


class TourSettings(RecsSettings):
    """What the tour reads besides its flags."""

    chromium: str | None = Field(
        None,
        description="The Chromium the tour and the browser tests drive (else chromium on the PATH)",
    )


def chromium(named: str | None = None) -> str | None:
    """The Chromium to drive, if there is one: `named`, RECS_CHROMIUM, or the PATH's."""
    return (
        TourSettings.from_env(chromium=named).chromium
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


@dataclass
class Seen:
    """What the tour saw."""

    shopper: str = ""
    home_source: str | None = None
    product: str = ""
    after_view_source: str | None = None
    after_cart_source: str | None = None
    recommended_before: list[str] = field(default_factory=list)
    recommended_after: list[str] = field(default_factory=list)
    model_version: str = ""
    runs_shown: int = 0
    errors: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)


def _recommended(page: Any) -> list[str]:
    """The item ids of the "recommended for you" row, in order."""
    cards = page.locator("#recommended .product-card")
    return [cards.nth(i).get_attribute("data-item") or "" for i in range(cards.count())]


def tour(
    base: str, out: Path | None = None, *, shopper_index: int = 0, chromium_path: str | None = None
) -> Seen:
    """Walk the store and the ops page at `base`; screenshots into `out` if given."""
    from playwright.sync_api import sync_playwright

    executable = chromium(chromium_path)
    if executable is None:
        raise SystemExit("no Chromium found: `make browser` installs Debian's chromium")
    seen = Seen()

    def shot(page: object, name: str) -> None:
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=name == "ops")  # type: ignore[attr-defined]
            seen.shots.append(target)

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, args=list(FLAGS))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: seen.errors.append(str(e)))
            page.goto(f"{base}/")
            page.wait_for_selector("#recommended .product-card")
            picker = page.locator("#user option")
            seen.shopper = picker.nth(shopper_index).get_attribute("value") or ""
            page.select_option("#user", seen.shopper)
            page.wait_for_selector("#recommended .product-card")
            seen.home_source = page.get_attribute("#recommended", "data-source")
            seen.recommended_before = _recommended(page)
            shot(page, "store")
            page.locator(".shelf .product-card").first.click()
            page.wait_for_selector("#add-to-cart")
            seen.product = page.text_content("#product-title") or ""
            seen.after_view_source = page.get_attribute("#recommended", "data-source")
            page.click("#add-to-cart")
            page.wait_for_selector("#status:has-text('Add to cart')")
            seen.after_cart_source = page.get_attribute("#recommended", "data-source")
            seen.recommended_after = _recommended(page)
            shot(page, "product")
            page.goto(f"{base}/ops")
            page.wait_for_selector("#model-version")
            page.wait_for_selector("#runs .body table, #runs .body p")
            seen.model_version = page.text_content("#model-version") or ""
            seen.runs_shown = page.locator("#runs-table tbody tr").count()
            shot(page, "ops")
        finally:
            browser.close()
    return seen


def main(argv: list[str] | None = None) -> None:
    """Take the tour; print what it saw."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--chromium", help="the Chromium to drive [env RECS_CHROMIUM; default: the PATH's]"
    )
    args = parser.parse_args(argv)
    seen = tour(args.base, args.out, chromium_path=args.chromium)
    print(
        f"store: {seen.shopper} got {seen.home_source} recommendations; opened "
        f"{seen.product!r}; after add to cart: {seen.after_cart_source}\n"
        f"ops: production {seen.model_version}, {seen.runs_shown} runs shown\n"
        f"console errors: {len(seen.errors)}"
    )
    for path in seen.shots:
        print(f"wrote {path}")
    if seen.errors:
        sys.exit("the pages logged errors:\n" + "\n".join(seen.errors))


if __name__ == "__main__":
    main()
