// The demo storefront: shelves by category, a product page with related items, and
// "recommended for you", each row a live API answer labelled with its source.
"use strict";

(() => {
  const { el, call, setUp, showError, number } = recs;
  const K = 8;
  const names = new Map(); // item id -> {title, category, price}
  let catalog = null;

  const user = () => document.getElementById("user").value;

  async function titles(ids) {
    const missing = ids.filter((id) => !names.has(id));
    if (missing.length) {
      const found = await call(`/ui/items?ids=${encodeURIComponent(missing.join(","))}`);
      for (const [id, item] of Object.entries(found.items)) names.set(id, item);
    }
    return ids.map((id) => ({ id, ...(names.get(id) || { title: id }) }));
  }

  function card(item, recommendationId) {
    const target = `#/item/${encodeURIComponent(item.id)}` +
      (recommendationId ? `?rid=${encodeURIComponent(recommendationId)}` : "");
    return el("a", { class: "product-card", href: target, "data-item": item.id },
      el("span", { class: "swatch", "aria-hidden": "true" }, (item.title || item.id).slice(0, 1)),
      el("span", { class: "title" }, item.title || item.id),
      el("span", { class: "meta" }, item.category || "", item.price != null ? ` · ${number(item.price, 2)}` : ""),
    );
  }

  async function row(id, heading, answer, list) {
    const items = await titles(list.map((entry) => entry.id));
    return el("section", { id, class: "row", "data-source": answer.source },
      el("h2", {}, heading, " ",
        el("span", { class: `source source-${answer.source}`, title: "where this answer came from" }, answer.source)),
      el("div", { class: "cards" }, items.map((item) => card(item, answer.recommendationId))),
      el("p", { class: "muted small" }, `model ${answer.modelVersion || "–"} · recommendationId ${answer.recommendationId}`),
    );
  }

  async function recommended() {
    const answer = await call(`/v1/recommendations/personalized?userId=${encodeURIComponent(user())}&k=${K}`);
    return row("recommended", "Recommended for you", answer, answer.items);
  }

  function untitled() {
    // Over half the catalog without titles: say why cards show ids, and how to add titles.
    if (!catalog.items || catalog.untitled * 2 <= catalog.items) return null;
    return el("p", { class: "demo-note", id: "no-titles" },
      `${number(catalog.untitled)} of ${number(catalog.items)} items have no title, so they show their id and category. `,
      "Import the catalog with its names: ",
      el("code", {}, "recs import --items items.csv --title-column NAME"),
      ", then ", el("code", {}, "recs etl"), ".");
  }

  function newest() {
    // Items nobody has touched yet: their product pages relate them by their attributes.
    if (!catalog.new || !catalog.new.length) return null;
    for (const item of catalog.new) names.set(item.id, item);
    return el("section", { id: "new-in", class: "row shelf", "data-source": "new" },
      el("h2", {}, "New in ",
        el("span", { class: "source source-new", title: "no events yet: related items come from their attributes" }, "no events yet")),
      el("div", { class: "cards" }, catalog.new.map((item) => card(item))));
  }

  async function home() {
    const view = document.getElementById("view");
    const parts = [untitled(), await recommended(), newest()];
    for (const shelf of catalog.categories) {
      for (const item of shelf.items) names.set(item.id, { ...item, category: shelf.name });
      // Each shelf is the shop's own list, ranked for the shopper by /v1/recommendations/ranking.
      const ranked = await call("/v1/recommendations/ranking", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ userId: user(), itemIds: shelf.items.map((item) => item.id) }),
      });
      const byId = new Map(shelf.items.map((item) => [item.id, item]));
      parts.push(el("section", { class: "row shelf", "data-source": ranked.source },
        el("h2", {}, shelf.name, " ",
          el("span", { class: `source source-${ranked.source}`, title: "ranked for this shopper by /v1/recommendations/ranking" }, `ranked · ${ranked.source}`)),
        el("div", { class: "cards" }, ranked.items.map((entry) =>
          card({ ...byId.get(entry.id), category: shelf.name }, ranked.recommendationId)))));
    }
    view.replaceChildren(...parts.filter(Boolean));
  }

  async function post(itemId, eventType, recommendationId) {
    const event = { userId: user(), itemId, event_type: eventType };
    if (recommendationId) event.recommendationId = recommendationId;
    await call("/v1/events", {
      method: "POST",
      headers: { "content-type": "application/json", "Idempotency-Key": crypto.randomUUID() },
      body: JSON.stringify(event),
    });
  }

  async function product(itemId, recommendationId) {
    const view = document.getElementById("view");
    const [item] = await titles([itemId]);
    await post(itemId, "view", recommendationId); // opening a product is a view
    const status = el("p", { id: "status", class: "muted", role: "status" });
    const act = (eventType, label) => el("button", {
      id: eventType === "add_to_cart" ? "add-to-cart" : "buy",
      onclick: async () => {
        try {
          await post(itemId, eventType, recommendationId);
          status.textContent = `${label}: posted to /v1/events.`;
          document.getElementById("recommended").replaceWith(await recommended());
        } catch (error) { showError(error.message); }
      },
    }, label);
    const related = await call(`/v1/recommendations/related?itemId=${encodeURIComponent(itemId)}&k=${K}`);
    view.replaceChildren(
      el("section", { class: "product" },
        el("a", { href: "#/" }, "← all products"),
        el("h1", { id: "product-title" }, item.title || itemId),
        el("p", { class: "muted" }, item.category || "", item.price != null ? ` · ${number(item.price, 2)}` : "", ` · ${itemId}`),
        el("div", { class: "actions" }, act("add_to_cart", "Add to cart"), act("purchase", "Buy now")),
        status),
      await row("related", "Related items", related, related.related),
      await recommended(),
    );
  }

  async function route() {
    showError("");
    const match = location.hash.match(/^#\/item\/([^?]+)(?:\?rid=(.+))?$/);
    try {
      if (match) await product(decodeURIComponent(match[1]), match[2] && decodeURIComponent(match[2]));
      else await home();
    } catch (error) { showError(error.message); }
  }

  async function start() {
    try {
      if (!(await setUp(start))) return;
      catalog = await call("/ui/catalog");
      const picker = document.getElementById("user");
      const visitor = `visitor-${crypto.randomUUID().slice(0, 8)}`;
      picker.replaceChildren(
        ...catalog.users.map((id) => el("option", { value: id }, id)),
        el("option", { value: visitor }, "New visitor"),
      );
      picker.onchange = route;
      window.onhashchange = route;
      await route();
    } catch (error) { showError(error.message); }
  }

  start();
})();
