// The ops page: is production healthy, did last night go well, what is the shop doing.
"use strict";

(() => {
  const { el, svg, call, setUp, showError, number } = recs;

  const fill = (id, ...children) =>
    document.querySelector(`#${id} .body`).replaceChildren(...children.filter((c) => c != null));

  function table(headings, rows, attrs = {}) {
    return el("table", attrs,
      el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))));
  }

  function bars(series, width = 420, height = 120) {
    // One bar per value, scaled to the largest; values labelled.
    const top = Math.max(...series.map((s) => s.value || 0), 1e-9);
    const step = width / Math.max(series.length, 1);
    const pad = 16; // room for the tallest bar's label
    return svg("svg", { viewBox: `0 -${pad} ${width} ${height + 30 + pad}`, class: "chart", role: "img" },
      series.map((s, i) => {
        const h = Math.round(((s.value || 0) / top) * height);
        return svg("g", {},
          svg("rect", { x: i * step + 8, y: height - h, width: step - 16, height: h, class: `bar bar-${i}` }),
          svg("text", { x: i * step + step / 2, y: height - h - 4, "text-anchor": "middle" }, number(s.value, 4)),
          svg("text", { x: i * step + step / 2, y: height + 18, "text-anchor": "middle" }, s.label));
      }));
  }

  function lines(days, keys, width = 640, height = 140) {
    // One polyline per key, each scaled to its own maximum (views dwarf purchases).
    const x = (i) => 10 + (i * (width - 20)) / Math.max(days.length - 1, 1);
    return svg("svg", { viewBox: `0 0 ${width} ${height + 24}`, class: "chart", role: "img" },
      keys.map((key, k) => {
        const top = Math.max(...days.map((d) => d[key]), 1);
        const points = days.map((d, i) => `${x(i)},${height - (d[key] / top) * (height - 10)}`);
        return svg("polyline", { points: points.join(" "), class: `line line-${k}` });
      }),
      days.length ? [
        svg("text", { x: 10, y: height + 18 }, days[0].day),
        svg("text", { x: width - 10, y: height + 18, "text-anchor": "end" }, days[days.length - 1].day),
      ] : []);
  }

  function model(data) {
    const live = data.production;
    if (!live) return fill("model", el("p", {}, "No version is in production yet: run `make pipeline`."));
    const previous = data.previous;
    const series = [
      { label: `live ${live.version}`, value: live.ndcg10 },
      { label: "popularity", value: live.popularityNdcg10 },
    ];
    // Where the version lets shoppers' own items come back, the gate's other bar.
    if (live.ownHistoryNdcg10 != null) {
      series.push({ label: "own items, then popular", value: live.ownHistoryNdcg10 });
    }
    if (previous) series.push({ label: `previous ${previous.version}`, value: previous.ndcg10 });
    fill("model",
      el("p", {}, el("strong", { id: "model-version" }, live.version), " ",
        el("span", { class: "state" }, live.state), ` · ${live.chosen} · ${live.backend}`),
      el("p", { class: "muted" }, `trained ${live.trainedAt || "–"} · ${data.versions} versions in the lake`),
      el("p", {}, "NDCG@10 on its holdout"),
      bars(series),
      live.reasons.length ? el("p", { class: "muted" }, `gate: ${live.reasons.join("; ")}`) : null);
  }

  const percent = (rate) => `${(100 * rate).toFixed(2)}%`;
  const signed = (rate) => `${rate >= 0 ? "+" : "−"}${(100 * Math.abs(rate)).toFixed(2)}`;

  function experiment(found) {
    // The last experiment: each arm's rates with 95% intervals, and whether it is clear.
    if (!found) {
      return fill("experiment", el("p", {}, "No experiment has run: `recs models experiment start VERSION --share 0.1` starts one."));
    }
    const e = found.experiment;
    const outcomes = ["click-through", "add-to-cart", "conversion"];
    const rate = (arm, metric) => {
      const r = arm[metric];
      return `${percent(r.rate)} (${percent(r.interval[0])}–${percent(r.interval[1])})`;
    };
    const difference = (metric) => {
      const d = found.differences[metric];
      return `${signed(d.estimate)} pts (${signed(d.interval[0])} to ${signed(d.interval[1])})`;
    };
    const arms = [["control", found.arms.control], [`candidate, ${Math.round(e.share * 100)}%`, found.arms.candidate]];
    fill("experiment",
      el("p", {}, el("strong", { id: "experiment-id" }, e.id), " ",
        el("span", { class: "state" }, e.stopped_at ? `stopped (${e.ended})` : "running"),
        ` · since ${e.started_at} · day ${number(found.days, 1)} of at least ${e.min_days} · decided on ${e.metric}`),
      table(["arm", "version", "shoppers", ...outcomes], arms.map(([name, arm]) =>
        [name, arm.version, number(arm.shoppers), ...outcomes.map((m) => rate(arm, m))]),
        { id: "experiment-arms" }),
      table(["candidate − control", ...outcomes],
        [["difference, 95% interval", ...outcomes.map(difference)]]),
      el("p", { id: "experiment-verdict", class: `verdict verdict-${found.verdict}` }, found.says),
      found.won && !e.stopped_at
        ? el("p", { class: "muted small" }, "`recs models experiment stop --promote` puts the candidate in production.")
        : null);
  }

  function api(counters) {
    fill("api", table(
      ["requests", "p50", "p99", "4xx", "5xx"],
      [[number(counters.requests), `${number(counters.p50Ms, 1)} ms`, `${number(counters.p99Ms, 1)} ms`,
        number(counters.errors4xx), number(counters.errors5xx)]]),
      el("p", { class: "muted small" }, `this server worker, over its last ${number(counters.over)} API requests`));
  }

  function runs(list) {
    if (!list.length) return fill("runs", el("p", {}, "No pipeline run yet: `make pipeline` starts one."));
    fill("runs", table(["run", "status", "steps"], list.map((run) => [
      run.runId,
      el("span", { class: `state state-${run.status}` }, run.status),
      el("span", { class: "steps" }, run.steps.map((s) => el("span", {
        class: `step step-${s.status}`, title: s.error || `${s.name}: ${s.status}`,
      }, `${s.name} ${s.seconds == null ? "" : s.seconds + " s"}`))),
    ]), { id: "runs-table" }));
  }

  function funnel(days) {
    if (!days.length) return fill("funnel", el("p", {}, "Nothing curated yet."));
    fill("funnel",
      lines(days, ["views", "carts", "purchases"]),
      el("p", { class: "legend" },
        el("span", { class: "key key-0" }, "views"), el("span", { class: "key key-1" }, "carts"),
        el("span", { class: "key key-2" }, "purchases"), " (each scaled to its own peak)"),
      table(["day", "views", "carts", "purchases", "from a recommendation"], days.map((d) =>
        [d.day, number(d.views), number(d.carts), number(d.purchases), number(d.from_recommendations)])));
  }

  function quarantine(q) {
    fill("quarantine",
      table(["zone", "run", "refused records", "taken in by a later import"], q.runs.map((r) =>
        [r.zone, r.run, number(r.refused), r.zone === "import" ? number(r.taken) : "–"]), { id: "quarantine-runs" }),
      el("p", { class: "muted small" }, `counted over the newest ${q.countedFiles} of ${q.files} files`),
      q.latest.length ? el("ul", {}, q.latest.map((r) => el("li", {}, `${r.zone}: ${r.reason}`))) :
        el("p", {}, "Nothing refused."));
  }

  async function refresh() {
    try {
      const data = await call("/ui/ops");
      showError("");
      model(data);
      experiment(data.experiment);
      api(data.api);
      runs(data.runs);
      funnel(data.funnel);
      fill("top", table(["item", "purchases", "interactions"],
        data.topItems.map((t) => [`${t.title} (${t.id})`, number(t.purchases), number(t.interactions)])));
      quarantine(data.quarantine);
      document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) { showError(error.message); }
  }

  async function start() {
    try {
      if (!(await setUp(start))) return;
      await refresh();
      setInterval(refresh, 15000);
    } catch (error) { showError(error.message); }
  }

  start();
})();
