/**
 * The dashboard page: static HTML, CSS and a browser script, assembled by `Dashboard.render` with the vendored
 * uPlot bundle and the page's configuration. The script is browser code (it runs in the user's tab, so it uses
 * `fetch`, `EventSource` and `Date.now`); it reads every value with `textContent`, never `innerHTML`, because
 * breaker names, keys and alert messages come from the server.
 *
 * @internal
 */

/** @internal */
export interface PageConfig {
  readonly title: string
  readonly api: string
  readonly health: string
  readonly refreshMillis: number
  readonly sparklineMillis: number
}

/** @internal */
export const style = `
:root { color-scheme: light dark; --bg: #f6f7f9; --fg: #1b1f24; --muted: #57606a; --card: #fff; --line: #d0d7de;
  --closed: #1a7f37; --open: #cf222e; --half: #9a6700; --forced: #8250df; --off: #57606a; --focus: #0969da; }
@media (prefers-color-scheme: dark) { :root { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --card: #161b22;
  --line: #30363d; --closed: #3fb950; --open: #f85149; --half: #d29922; --forced: #a371f7; --off: #9198a1;
  --focus: #4493f8; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg); }
header.top { display: flex; flex-wrap: wrap; gap: .75rem 1.5rem; align-items: center; padding: .75rem 1.25rem;
  border-bottom: 1px solid var(--line); background: var(--card); }
header.top h1 { font-size: 1.15rem; margin: 0; margin-right: auto; }
main { padding: 1rem 1.25rem; display: grid; gap: 1.25rem; grid-template-columns: repeat(auto-fit, minmax(min(100%, 30rem), 1fr)); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem; min-width: 0; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
.muted { color: var(--muted); }
.pill { display: inline-flex; gap: .35rem; align-items: center; border: 1px solid var(--line); border-radius: 999px; padding: .1rem .6rem; }
.cards { display: grid; gap: .75rem; grid-template-columns: repeat(auto-fill, minmax(17rem, 1fr)); }
.card { border: 1px solid var(--line); border-left: 6px solid var(--c, var(--off)); border-radius: 6px; padding: .6rem .75rem; }
.card h3 { font-size: .95rem; margin: 0; overflow-wrap: anywhere; }
.card header { display: flex; justify-content: space-between; gap: .5rem; align-items: baseline; }
.state { font-weight: 700; color: var(--c, var(--off)); margin: 0; white-space: nowrap; }
[data-state="closed"] { --c: var(--closed); } [data-state="open"] { --c: var(--open); }
[data-state="half_open"] { --c: var(--half); } [data-state="forced_open"] { --c: var(--forced); }
[data-state="disabled"], [data-state="metrics_only"] { --c: var(--off); }
dl.figures { display: grid; grid-template-columns: auto 1fr; gap: .1rem .75rem; margin: .5rem 0; }
dl.figures dt { color: var(--muted); } dl.figures dd { margin: 0; font-variant-numeric: tabular-nums; }
.spark { height: 48px; border-bottom: 1px solid var(--line); }
.spark-caption { font-size: .8rem; margin: .15rem 0 0; }
.actions { display: flex; flex-wrap: wrap; gap: .35rem; margin-top: .4rem; }
button { font: inherit; padding: .2rem .6rem; border-radius: 6px; border: 1px solid var(--line); background: var(--bg); color: var(--fg); cursor: pointer; }
button:hover { border-color: var(--focus); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); padding-bottom: .25rem; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
ol.timeline, ul.alerts { list-style: none; margin: 0; padding: 0; max-height: 22rem; overflow: auto; }
ol.timeline li, ul.alerts li { padding: .3rem 0; border-bottom: 1px solid var(--line); }
time { color: var(--muted); font-variant-numeric: tabular-nums; margin-right: .4rem; }
.level[data-level="0"] { color: var(--closed); } .level:not([data-level="0"]) { color: var(--half); }
dialog { border: 1px solid var(--line); border-radius: 8px; background: var(--card); color: var(--fg); max-width: 26rem; }
dialog::backdrop { background: rgb(0 0 0 / .4); }
dialog label { display: block; font-weight: 600; margin-bottom: .25rem; }
dialog input { width: 100%; font: inherit; padding: .3rem .4rem; }
dialog .buttons { display: flex; justify-content: flex-end; gap: .5rem; margin-top: .75rem; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
`

/** @internal */
export const body = `
<header class="top">
  <h1 id="title"></h1>
  <p class="pill" id="connection" role="status" aria-live="polite" data-connected="false"><span aria-hidden="true">&#9675;</span><span class="text">Connecting&hellip;</span></p>
  <p class="pill">Degradation: <strong class="level" id="degradation" data-level="0">level 0</strong></p>
  <p class="pill">Health: <strong id="overall">&hellip;</strong></p>
  <button type="button" id="forget-token" hidden>Forget admin token</button>
</header>
<p id="announcer" class="visually-hidden" aria-live="polite"></p>
<main>
  <section class="wide" aria-labelledby="breakers-title">
    <h2 id="breakers-title">Circuit breakers</h2>
    <p id="admin-result" role="status" aria-live="polite" class="muted"></p>
    <div class="cards" id="breakers"><p class="muted" id="no-breakers">Loading&hellip;</p></div>
  </section>
  <section aria-labelledby="timeline-title">
    <h2 id="timeline-title">Transitions</h2>
    <ol class="timeline" id="timeline" aria-live="polite"><li class="muted empty">No transitions since this page opened.</li></ol>
  </section>
  <section aria-labelledby="alerts-title">
    <h2 id="alerts-title">Alerts</h2>
    <ul class="alerts" id="alerts"><li class="muted empty">No alerts since this page opened.</li></ul>
  </section>
  <section class="wide" aria-labelledby="health-title">
    <h2 id="health-title">Health checks</h2>
    <table id="health">
      <caption id="health-caption">No health monitor reports to this server.</caption>
      <thead><tr><th scope="col">Check</th><th scope="col">Status</th><th scope="col">Last check</th><th scope="col">Response time</th><th scope="col">Consecutive failures</th><th scope="col">Total checks</th><th scope="col">Last error</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section class="wide" aria-labelledby="fleet-title" id="fleet-section" hidden>
    <h2 id="fleet-title">Fleet</h2>
    <p id="fleet-instances" class="muted"></p>
    <table id="fleet">
      <caption>Shared breakers: how each counts across the fleet, and its state on this instance.</caption>
      <thead><tr><th scope="col">Breaker</th><th scope="col">Counting</th><th scope="col">This instance</th><th scope="col">Keys</th><th scope="col">Queued</th><th scope="col">Pending</th><th scope="col">Local decisions</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
<dialog id="token-dialog" aria-labelledby="token-title">
  <form method="dialog" id="token-form">
    <h2 id="token-title">Admin token</h2>
    <p class="muted" id="token-help">Admin actions need the token (RESILIENCE_ADMIN_TOKEN). It is kept for this browser session only.</p>
    <label for="token-input">Token</label>
    <input id="token-input" name="token" type="password" autocomplete="off" aria-describedby="token-help">
    <div class="buttons">
      <button type="submit" value="cancel" formnovalidate>Cancel</button>
      <button type="submit" value="ok" id="token-submit">Use token</button>
    </div>
  </form>
</dialog>
`

/** @internal */
export const script = `
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const TOKEN_KEY = "effect-resilience.admin-token";
  const LABELS = { closed: "Closed", open: "Open", half_open: "Half-open", forced_open: "Forced open",
    disabled: "Disabled", metrics_only: "Metrics only" };
  // A shape per state as well as a colour and a word, so that no state is told by colour alone.
  const ICONS = { closed: "\\u25CF", open: "\\u2715", half_open: "\\u25D0", forced_open: "\\u25A0",
    disabled: "\\u25CB", metrics_only: "\\u25C7" };
  const ACTIONS = [["reset", "Reset"], ["force-open", "Force open"], ["force-close", "Force close"], ["disable", "Disable"]];
  const breakers = new Map();
  const $ = (id) => document.getElementById(id);

  const h = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v; else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
    return node;
  };
  const normState = (s) => s === undefined || s === null ? "closed" :
    String(s).replace(/([a-z])([A-Z])/g, "$1_$2").replace(/[- ]/g, "_").toLowerCase();
  const label = (s) => LABELS[s] || s;
  const toMillis = (t) => t === undefined || t === null ? null : typeof t === "number" ? t : Date.parse(t);
  const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
  const duration = (ms) => {
    if (ms === null || !Number.isFinite(ms)) return "\\u2014";
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  };
  // Rates are fractions on the wire (core's failureRate).
  const percent = (rate) => rate === undefined || rate === null ? null : rate * 100;
  const words = (tag) => String(tag).replace(/([a-z])([A-Z])/g, "$1 $2").replace(/_/g, " ").toLowerCase();
  const pct = (x) => Math.round(percent(x)) + "%";
  // Reasons as core publishes them (a _tag, or a snake_case type), in words.
  const reasonText = (r) => {
    if (r === undefined || r === null) return "";
    if (typeof r === "string") return words(r);
    const tag = words(r._tag ?? r.type ?? r.kind ?? "");
    switch (tag) {
      case "consecutive failures": return r.failures + " consecutive failures";
      case "failure rate": case "slow call rate":
        return tag + " " + pct(r.rate) + " \u2265 " + pct(r.threshold) + " over " + r.calls + " calls";
      case "open elapsed": return "open period elapsed, probing";
      case "probes succeeded": return r.successes + " probes succeeded";
      case "manual": return "manual " + words(r.action ?? "");
      case "quorum": return "quorum: " + r.votes + " of " + r.live + " instances";
      case "fleet": return "from fleet instance " + r.origin + ": " + reasonText(r.cause);
      default: return tag;
    }
  };
  const parseJson = (text) => { try { return JSON.parse(text); } catch { return null; } };
  const announce = (text) => { $("announcer").textContent = text; };
  // okStatuses: /health answers its report with 503 when the instance is unhealthy.
  const fetchJson = (url, okStatuses) => fetch(url, { headers: { accept: "application/json" }, cache: "no-store" })
    .then((r) => r.ok || (okStatuses || []).includes(r.status) ? r.json().catch(() => null) : null, () => null);

  // ---- breakers -------------------------------------------------------------------------------------------
  const card = (name) => {
    let b = breakers.get(name);
    if (b) return b;
    const id = "breaker-" + breakers.size;
    const stateText = h("span", { class: "state-text" });
    const icon = h("span", { "aria-hidden": "true" });
    const fig = {};
    const figures = h("dl", { class: "figures" });
    for (const [k, title] of [["rate", "Failure rate"], ["calls", "Calls"], ["failures", "Failures"],
      ["time", "Time in state"], ["retry", "Retry after"], ["keys", "Keys"]]) {
      fig[k] = h("dd", { "data-figure": k }, "\\u2014");
      const dt = h("dt", {}, title);
      if (k === "keys") { dt.hidden = true; fig[k].hidden = true; }
      figures.append(dt, fig[k]);
    }
    const spark = h("div", { class: "spark", role: "img",
      "aria-label": "Failure rate of " + name + " over the last " + duration(config.sparklineMillis) });
    const actions = h("div", { class: "actions", role: "group", "aria-label": "Admin actions for " + name });
    for (const [action, text] of ACTIONS) {
      actions.append(h("button", { type: "button", "data-action": action, "aria-label": text + " " + name }, text));
    }
    actions.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-action]");
      if (button) admin(name, button.getAttribute("data-action"), button);
    });
    const el = h("article", { class: "card", id, "data-breaker": name, "aria-labelledby": id + "-name" },
      h("header", {}, h("h3", { id: id + "-name" }, name), h("p", { class: "state" }, icon, " ", stateText)),
      figures, spark, h("p", { class: "spark-caption muted", "aria-hidden": "true" },
        "Failure rate, last " + duration(config.sparklineMillis) + " (0\u2013100 %)"), actions);
    $("no-breakers")?.remove();
    $("breakers").append(el);
    b = { name, el, stateText, icon, fig, spark, chart: null, samples: [[], []], state: null, enteredAt: null,
      retryAt: null, data: {} };
    breakers.set(name, b);
    return b;
  };

  // exact: enteredAt comes from the server's time_in_state_ms, not from when this page saw the change.
  const setState = (b, state, enteredAt, exact) => {
    if (b.state !== state) {
      if (b.state !== null) announce(b.name + " is now " + label(state));
      b.state = state;
      b.enteredAt = enteredAt;
    } else if (enteredAt !== null && (exact || b.enteredAt === null)) b.enteredAt = enteredAt;
    b.el.setAttribute("data-state", state);
    b.icon.textContent = ICONS[state] || "?";
    b.stateText.textContent = label(state);
    tick();
  };

  const applySnapshot = (name, d, now) => {
    const b = card(name);
    b.data = d;
    const state = normState(d.state);
    const exact = typeof d.time_in_state_ms === "number";
    const entered = exact ? now - d.time_in_state_ms : state === "open" ? toMillis(d.opened_at) : null;
    b.retryAt = typeof d.retry_after_ms === "number" ? now + d.retry_after_ms : null;
    setState(b, state, entered, exact);
    const rate = percent(d.failure_rate);
    b.fig.rate.textContent = rate === null ? "\\u2014" : rate.toFixed(1) + " %";
    b.fig.calls.textContent = String(d.total_calls ?? "\\u2014");
    b.fig.failures.textContent = String(d.failure_count ?? 0) + (d.failure_threshold ? " / " + d.failure_threshold : "");
    if (d.keys && typeof d.keys === "object") {
      const shown = Object.keys(d.keys).length;
      const more = d.keys_not_shown ?? d.keys_hidden ?? 0;
      const open = Object.values(d.keys).filter((k) => normState(k.state) !== "closed").length;
      b.fig.keys.textContent = (shown + more) + " (" + open + " not closed)";
      b.fig.keys.hidden = false; b.fig.keys.previousSibling.hidden = false;
    }
    if (rate !== null) {
      b.samples[0].push(now / 1000); b.samples[1].push(rate);
      const cutoff = (now - config.sparklineMillis) / 1000;
      while (b.samples[0].length > 2 && b.samples[0][0] < cutoff) { b.samples[0].shift(); b.samples[1].shift(); }
      drawSpark(b);
    }
  };

  const drawSpark = (b) => {
    if (typeof uPlot === "undefined") return;
    const width = Math.max(120, b.spark.clientWidth || 240);
    if (b.chart === null) {
      const color = getComputedStyle(document.documentElement).getPropertyValue("--open").trim() || "#cf222e";
      b.chart = new uPlot({ width, height: 48, legend: { show: false }, cursor: { show: false },
        // A fixed time range, so that a sparkline with few samples still shows when they were taken.
        scales: { x: { time: true, range: () => [(Date.now() - config.sparklineMillis) / 1000, Date.now() / 1000] },
          y: { range: [0, 100] } }, axes: [{ show: false }, { show: false }],
        series: [{}, { stroke: color, width: 1.5, fill: color + "22", points: { show: false } }] },
        b.samples, b.spark);
    } else b.chart.setData(b.samples);
  };

  const refreshBreakers = () => fetchJson(config.api + "/circuit-breakers").then((all) => {
    if (!all) return;
    const now = Date.now();
    for (const [name, d] of Object.entries(all)) applySnapshot(name, d, now);
    if (breakers.size === 0) $("no-breakers").textContent = "No circuit breakers are registered.";
  });

  function tick() {
    const now = Date.now();
    for (const b of breakers.values()) {
      b.fig.time.textContent = b.enteredAt === null ? "\\u2014" : duration(now - b.enteredAt);
      b.fig.retry.textContent = b.state === "forced_open" ? "until reset" : b.state === "half_open" ? "probing" :
        b.state === "open" && b.retryAt !== null ? duration(b.retryAt - now) : "\\u2014";
    }
  }

  // ---- timeline, alerts, health, degradation, fleet -------------------------------------------------------
  const prepend = (list, item, max) => {
    list.querySelector(".empty")?.remove();
    list.prepend(item);
    while (list.children.length > max) list.lastElementChild.remove();
  };

  const onTransition = (t) => {
    const name = t.breaker ?? t.name;
    if (!name) return;
    const at = toMillis(t.at ?? t.timestamp) ?? Date.now();
    const to = normState(t.to ?? t.state);
    const from = normState(t.from);
    const key = t.key === null || t.key === undefined || t.key === "default" ? "" : " [" + t.key + "]";
    const reason = t.description || reasonText(t.reason);
    prepend($("timeline"), h("li", { "data-breaker": name, "data-to": to, "data-shadow": t.shadow ? "true" : null },
      h("time", { datetime: new Date(at).toISOString() }, clock(at)),
      h("strong", {}, name + key), " " + label(from) + " \\u2192 " + label(to), reason ? " \\u00B7 " + reason : ""), 200);
    if (!key && breakers.has(name)) setState(breakers.get(name), to, at);
    scheduleRefresh();
  };

  const onAlert = (a) => {
    const at = toMillis(a.at) ?? Date.now();
    const severity = String(a.severity ?? "info");
    prepend($("alerts"), h("li", { "data-severity": severity },
      h("time", { datetime: new Date(at).toISOString() }, clock(at)),
      h("strong", {}, severity.toUpperCase()), " " + (a.service ?? "") + ": " + (a.from ?? "?") + " \u2192 " +
        (a.to ?? "?") + (a.error ? " \u00B7 " + a.error : "") + (a.count > 1 ? " (" + a.count + " times)" : "") +
        (a.suppressed ? " (suppressed: maintenance)" : "")), 100);
  };

  const onDegradation = (d) => {
    const level = d.level ?? d.degradation_level ?? 0;
    const el = $("degradation");
    el.setAttribute("data-level", String(level));
    el.textContent = "level " + level + (d.description ? " (" + d.description + ")" : "");
    el.title = Array.isArray(d.down) && d.down.length ? "Down: " + d.down.join(", ") : "";
  };

  const renderHealth = (r) => {
    if (!r) return;
    $("overall").textContent = r.status ?? "unknown";
    if (r.degradation_level !== undefined && typeof r.degradation_level !== "object") onDegradation({ level: r.degradation_level });
    else if (r.degradation_level) onDegradation(r.degradation_level);
    const services = r.services ?? {};
    const names = Object.keys(services);
    const tbody = $("health").tBodies[0];
    tbody.replaceChildren();
    $("health-caption").textContent = names.length === 0 ? "No health monitor reports to this server." :
      names.length + " checks" + (r.summary ? ": " + r.summary.healthy + " healthy, " + r.summary.degraded +
        " degraded, " + r.summary.unhealthy + " unhealthy, " + r.summary.unknown + " unknown" : "");
    for (const name of names) {
      const s = services[name];
      const rt = s.response_time;
      tbody.append(h("tr", { "data-status": s.status },
        h("th", { scope: "row" }, name), h("td", {}, s.status ?? "unknown"),
        h("td", {}, s.last_check ? clock(toMillis(s.last_check)) : "\\u2014"),
        h("td", {}, rt === null || rt === undefined ? "\\u2014" : Math.round(rt) + " ms"),
        h("td", {}, String(s.consecutive_failures ?? 0)), h("td", {}, String(s.total_checks ?? 0)),
        h("td", {}, s.last_error ?? "\\u2014")));
    }
  };
  const refreshHealth = () => fetchJson(config.health, [503]).then(renderHealth);

  const refreshFleet = () => fetchJson(config.api + "/fleet").then((f) => {
    if (!f) return;
    $("fleet-section").hidden = false;
    const instances = Array.isArray(f.live_instances) ? f.live_instances : [];
    $("fleet-instances").textContent = "This instance: " + (f.instance ?? "?") + ". " + instances.length +
      " live instances: " + instances.map((i) => i.instance).join(", ") +
      (f.unreadable ? " (" + f.unreadable + " unreadable)" : "");
    const tbody = $("fleet").tBodies[0];
    tbody.replaceChildren();
    for (const b of Array.isArray(f.breakers) ? f.breakers : []) {
      const local = b.local_state === null || b.local_state === undefined ? null : normState(b.local_state);
      tbody.append(h("tr", {}, h("th", { scope: "row" }, b.name), h("td", {}, b.counting ?? "\u2014"),
        h("td", local === null ? {} : { "data-state": local },
          local === null ? "not registered here" : ICONS[local] + " " + label(local)),
        h("td", {}, String(b.keys ?? 0)), h("td", {}, String(b.queued ?? 0)), h("td", {}, String(b.pending ?? 0)),
        h("td", {}, String(b.local_decisions ?? 0))));
    }
  });

  let pending = null;
  const scheduleRefresh = () => {
    if (pending !== null) return;
    // The health too: a breaker forced open or tripped changes /health at once (critical breakers, degradation).
    pending = setTimeout(() => { pending = null; refreshBreakers(); refreshHealth(); refreshFleet(); }, 150);
  };

  // ---- admin ----------------------------------------------------------------------------------------------
  // One prompt at a time: a second admin click while the form is open waits for the same answer.
  let asking = null;
  const askToken = (message) => asking ?? (asking = new Promise((resolve) => {
    const dialog = $("token-dialog");
    if (message) $("token-help").textContent = message;
    $("token-input").value = "";
    dialog.addEventListener("close", () => {
      const token = $("token-input").value.trim();
      asking = null;
      resolve(dialog.returnValue === "ok" && token ? token : null);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    $("token-input").focus();
  }));
  const token = (message) => {
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved && !message) return Promise.resolve(saved);
    return askToken(message).then((t) => {
      if (t) { sessionStorage.setItem(TOKEN_KEY, t); $("forget-token").hidden = false; }
      return t;
    });
  };
  const result = (text) => { $("admin-result").textContent = text; };
  const admin = (name, action, button, retried) => token(retried).then((t) => {
    if (!t) return result("Cancelled: " + action + " " + name + " needs the admin token.");
    button.disabled = true;
    const url = config.api + "/circuit-breakers/" + encodeURIComponent(name) + "/" + action;
    return fetch(url, { method: "POST", headers: { authorization: "Bearer " + t, accept: "application/json" } })
      .then((r) => r.json().catch(() => ({})).then((body) => [r, body]))
      .then(([r, body]) => {
        button.disabled = false;
        if (r.status === 401 && !retried) {
          sessionStorage.removeItem(TOKEN_KEY);
          return admin(name, action, button, "The token was rejected; enter it again.");
        }
        if (!r.ok) return result(action + " " + name + " failed (" + r.status + "): " + (body.detail ?? body.title ?? body.message ?? r.statusText));
        result(action + " " + name + ": done.");
        scheduleRefresh();
      }, (e) => { button.disabled = false; result(action + " " + name + " failed: " + e.message); });
  });
  $("forget-token").hidden = sessionStorage.getItem(TOKEN_KEY) === null;
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY); $("forget-token").hidden = true; result("Admin token forgotten.");
  });

  // ---- live events ----------------------------------------------------------------------------------------
  // The event names and data of Events.ts (snake_case, ISO times).
  const handlers = {
    transition: onTransition,
    health: () => refreshHealth(),
    alert: onAlert,
    degradation: onDegradation,
    admin: () => scheduleRefresh(),
    // The server no longer holds the events after our Last-Event-ID: reload the whole state.
    reset: () => { refreshBreakers(); refreshHealth(); refreshFleet(); }
  };
  const status = $("connection");
  const setConnected = (on, text) => {
    status.setAttribute("data-connected", String(on));
    status.firstElementChild.textContent = on ? "\\u25CF" : "\\u25CB";
    status.lastElementChild.textContent = text;
  };
  // The browser reconnects a dropped stream by itself, but not one answered with anything but a 200 (a restarting
  // server's 503, a proxy's 502): that EventSource is closed for good, so the page opens another, 1 s to 30 s apart.
  // Nor does it give up on a stream that hangs: a reconnection never answered (a stalled server or proxy) waits as
  // long as its socket lives, and an open stream whose connection died without a reset stays silent for ever. The
  // page gives up on those (see watch) and opens another the same way.
  // A new EventSource cannot send Last-Event-ID, so it resumes with the last_event_id parameter instead.
  let lastEventId = "";
  let backoff = 1000;
  let source = null;
  // When the stream last started connecting or last said something (an event or a heartbeat), and the heartbeats'
  // interval, which the server announces as the stream opens.
  let since = 0;
  let heartbeatMillis = 0;
  const reopenLater = () => {
    setConnected(false, "Reconnecting\u2026");
    // Jittered, so that the dashboards open on a restarted server do not all come back in the same instant.
    setTimeout(connect, backoff * (0.5 + Math.random() / 2));
    backoff = Math.min(backoff * 2, 30000);
  };
  const connect = () => {
    const current = new EventSource(config.api + "/events" +
      (lastEventId ? "?last_event_id=" + encodeURIComponent(lastEventId) : ""));
    source = current;
    since = Date.now();
    heartbeatMillis = 0;
    // What changed while the page was not following: the full state, once per (re)connection.
    current.addEventListener("open", () => {
      backoff = 1000;
      since = Date.now();
      setConnected(true, "Live");
      refreshBreakers(); refreshHealth(); refreshFleet();
    });
    current.addEventListener("error", () => {
      if (source !== current) return;
      since = Date.now();
      setConnected(false, "Reconnecting\u2026");
      if (current.readyState === EventSource.CLOSED) reopenLater();
    });
    current.addEventListener("heartbeat", (e) => {
      since = Date.now();
      const data = parseJson(e.data);
      if (data !== null && typeof data === "object" && Number.isFinite(data.interval_ms)) {
        heartbeatMillis = data.interval_ms;
      }
    });
    for (const [type, handle] of Object.entries(handlers)) {
      current.addEventListener(type, (e) => {
        since = Date.now();
        if (e.lastEventId) lastEventId = e.lastEventId;
        const data = parseJson(e.data);
        if (data !== null && typeof data === "object") handle(data);
      });
    }
  };
  // Gives up on a stream not open 15 s after it started connecting (the browser's own reconnections included: it
  // waits 3 s before each), or open and silent for two heartbeats and 5 s more, and opens another.
  const watch = () => {
    if (source === null || source.readyState === EventSource.CLOSED) return;
    const silent = Date.now() - since;
    const stalled = source.readyState === EventSource.CONNECTING
      ? silent > 15000
      : heartbeatMillis > 0 && silent > 2 * heartbeatMillis + 5000;
    if (!stalled) return;
    source.close();
    source = null;
    reopenLater();
  };

  document.title = config.title;
  $("title").textContent = config.title;
  refreshBreakers().then(tick);
  refreshHealth();
  refreshFleet();
  connect();
  setInterval(tick, 1000);
  setInterval(watch, 1000);
  // Rates move without events, and a health report can change between events (response times): poll both.
  setInterval(() => { refreshBreakers(); refreshHealth(); refreshFleet(); }, config.refreshMillis);
})();
`
