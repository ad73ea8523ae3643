// XaeroFlux node console: calls the node's API with the token of this tab.
"use strict";

const $ = (id) => document.getElementById(id);
const lastSync = {};
const state = { token: null, groups: [], identity: null, feedAbort: null, lastId: null, group: "" };

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k instanceof Node ? k : String(k));
  return e;
}
const short = (h) => (h ? h.slice(0, 10) : "");
const bytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);
const when = (ms) => new Date(ms).toLocaleString();
const ago = (ms) => { const s = Math.max(0, (Date.now() - ms) / 1000); return s < 60 ? `${s.toFixed(0)} s ago` : s < 3600 ? `${(s / 60).toFixed(0)} min ago` : `${(s / 3600).toFixed(1)} h ago`; };

async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { Authorization: `Bearer ${state.token}`, ...(opts.headers || {}) } });
  if (r.status === 401) { logout("The token was refused."); throw new Error("unauthorized"); }
  const body = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) throw new Error(body && body.detail ? `${body.code}: ${body.detail}` : `HTTP ${r.status}`);
  return body;
}

function logout(msg) {
  sessionStorage.removeItem("xf-token");
  state.token = null;
  $("main").classList.add("hidden");
  $("login").classList.remove("hidden");
  $("login-error").textContent = msg || "";
}

async function start() {
  const m = location.hash.match(/token=([0-9a-fA-F]+)/);
  if (m) { sessionStorage.setItem("xf-token", m[1]); history.replaceState(null, "", location.pathname); }
  state.token = sessionStorage.getItem("xf-token");
  if (!state.token) return logout();
  try { state.identity = await api("/v1/identity"); } catch (e) { return; }
  $("login").classList.add("hidden");
  $("main").classList.remove("hidden");
  renderIdentity();
  await refresh();
  followFeed();
  followSystem();
  setInterval(refresh, 3000);
}

function renderIdentity() {
  const i = state.identity;
  $("identity").replaceChildren(
    el("span", {}, "node ", el("b", { class: "mono", title: i.did }, i.short)),
    el("span", { class: "mono", title: i.did }, i.did.slice(0, 28) + "…"),
    i.endpoint ? el("span", {}, "endpoint ", el("b", { class: "mono" }, short(i.endpoint))) : null,
    i.addrs.length ? el("span", { class: "chip" }, i.addrs[0]) : null,
  );
  const c = $("conn");
  c.textContent = i.online ? "sync on" : "sync off";
  c.className = "pill " + (i.online ? "on" : "warn");
}

async function refresh() {
  try {
    const [stats, groups, peers] = await Promise.all([api("/v1/stats"), api("/v1/groups"), api("/v1/peers")]);
    renderStats(stats, groups, peers);
    renderGroups(groups);
    renderPeers(peers);
  } catch (e) { console.warn(e); }
}

function renderStats(s, groups, peers) {
  const stat = (k, v, t) => el("div", { class: "stat", title: t || "" }, el("div", { class: "v" }, v), el("div", { class: "k" }, k));
  $("stats").replaceChildren(
    stat("events", s.events.toLocaleString()),
    stat("groups", groups.length),
    stat("peers connected", `${peers.filter((p) => p.connected).length} / ${peers.length}`),
    stat("author logs", s.logs.length),
    stat("disk", bytes(s.lmdb_bytes + s.merkle_bytes)),
    stat("merkle root", s.mmr_root ? short(s.mmr_root) : "—", s.mmr_root || "empty"),
  );
}

function renderGroups(groups) {
  state.groups = groups;
  $("groups").replaceChildren(...groups.map((g) => el("li", {},
    el("span", { class: "mono grow", title: g.id }, short(g.id) + "…"),
    g.default ? el("span", { class: "chip" }, "default") : null,
    el("span", { class: "muted" }, `${g.events.toLocaleString()} events · ${g.logs} logs`))));
  const sel = $("feed-group");
  const want = ["", ...groups.map((g) => g.id)];
  const have = [...sel.options].map((o) => o.value);
  if (want.join() !== have.join()) {
    const cur = sel.value;
    sel.replaceChildren(el("option", { value: "" }, "all groups"),
      ...groups.map((g) => el("option", { value: g.id }, `${short(g.id)}${g.default ? " (default)" : ""}`)));
    sel.value = want.includes(cur) ? cur : "";
  }
}

function renderPeers(peers) {
  if (!peers.length) return $("peers").replaceChildren(el("li", { class: "empty" }, "no peers yet — share an invite: xaeroflux group ticket --invite"));
  $("peers").replaceChildren(...peers.map((p) => el("li", { class: "peer" },
    el("span", { class: "dot" + (p.connected ? " on" : "") }),
    el("span", { class: "mono grow", title: p.identity || p.endpoint }, short(p.endpoint)),
    el("span", { class: "chip" }, p.connected ? "connected" : "dialling"),
    el("span", { class: "muted small" }, `↓ ${p.events_received.toLocaleString()} events · ${bytes(p.bytes_received)} in · ${bytes(p.bytes_sent)} out`),
    el("span", { class: "muted small" }, lastSync[p.endpoint] ? `last sync ${ago(lastSync[p.endpoint])}` : "no sync since this page opened"))));
}

function eventRow(e, extra) {
  const text = e.text != null ? e.text : `binary · ${e.size} B`;
  return el("li", { class: "new", onclick: () => showEvent(e.id), "data-id": e.id },
    el("span", { class: "pos mono" }, extra != null ? extra : `#${e.position}`),
    el("span", { class: "body" + (e.text == null ? " muted" : "") }, text),
    el("span", { class: "meta" }, `type ${e.type} · ${short(e.author)} · ${new Date(e.time_ms).toLocaleTimeString()}`));
}

function addToFeed(e, live) {
  const feed = $("feed");
  const empty = feed.querySelector(".empty");
  if (empty) empty.remove();
  const row = eventRow(e);
  row.classList.add(live ? "live" : "history");
  feed.prepend(row);
  while (feed.children.length > 200) feed.lastChild.remove();
}

// Server-Sent Events over fetch (EventSource cannot send the Authorization header);
// reconnects with Last-Event-ID so nothing is lost or repeated.
async function sse(url, onEvent, onState, signal, lastId) {
  for (;;) {
    try {
      const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
      if (lastId != null) headers["Last-Event-ID"] = String(lastId);
      const r = await fetch(url, { headers, signal });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      onState(true);
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i); buf = buf.slice(i + 2);
          let data = "", id = null;
          for (const line of block.split("\n")) {
            if (line.startsWith("data:")) data += line.slice(5).trimStart();
            else if (line.startsWith("id:")) id = line.slice(3).trim();
          }
          if (id != null) lastId = id;
          if (data) onEvent(JSON.parse(data));
        }
      }
    } catch (e) {
      if (signal && signal.aborted) return;
    }
    onState(false);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function followFeed() {
  if (state.feedAbort) state.feedAbort.abort();
  const ctl = new AbortController();
  state.feedAbort = ctl;
  const g = $("feed-group").value;
  $("feed").replaceChildren(el("li", { class: "empty" }, "no events yet — write one with xaeroflux write \"hello\""));
  // The latest 30 events first, then live.
  const q = g ? `group=${g}&` : "";
  const stats = await api("/v1/stats");
  const from = Math.max(0, stats.events - 30);
  const page = await api(`/v1/events?${q}cursor=${from}&limit=30`);
  page.events.forEach((e) => addToFeed(e, false));
  const st = $("feed-state");
  sse(`/v1/subscribe?${q}after=${page.next_cursor - 1}`, (e) => addToFeed(e, true), (on) => { st.textContent = on ? "live" : "reconnecting"; st.className = "pill " + (on ? "on" : "off"); }, ctl.signal, null);
}

function followSystem() {
  const list = $("activity");
  sse("/v1/system/events", (e) => {
    if (e.kind === "flush_completed") return;
    if (e.kind === "sync_progress" || e.kind === "peer_connected") lastSync[e.endpoint] = Date.now();
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    const t = new Date().toLocaleTimeString();
    const msg = {
      peer_connected: () => `peer ${short(e.endpoint)} connected for group ${short(e.group)}`,
      peer_disconnected: () => `peer ${short(e.endpoint)} disconnected: ${e.reason}`,
      peer_rejected: () => `peer ${short(e.endpoint)} rejected: ${e.why}`,
      sync_progress: () => `received ${e.events} events (${bytes(e.bytes)}) from ${short(e.endpoint)}`,
      fork_detected: () => `FORK: author ${short(e.author)} forked its log at ${e.length}`,
      writer_failed: () => `storage writer failed: ${e.reason}`,
      store_opened: () => `store opened with ${e.events} events`,
    }[e.kind];
    list.prepend(el("li", { class: e.kind === "fork_detected" || e.kind === "writer_failed" ? "bad" : "" },
      el("span", { class: "muted mono" }, t), el("span", {}, msg ? msg() : e.kind)));
    while (list.children.length > 50) list.lastChild.remove();
  }, () => {}, null, null);
}

async function showEvent(id) {
  const e = await api(`/v1/events/${id}?proof=true`);
  const p = e.proof;
  const kv = (k, v) => [el("div", {}, k), el("div", {}, v)];
  $("detail-body").replaceChildren(
    el("div", { class: "kv" },
      ...kv("id", el("span", { class: "mono" }, e.id)),
      ...kv("position", `#${e.position}`),
      ...kv("group", el("span", { class: "mono" }, e.group)),
      ...kv("author", el("span", { class: "mono" }, `${e.author} (seq ${e.seq})`)),
      ...kv("type", e.type),
      ...kv("time", `${when(e.time_ms)} · counter ${e.time_counter}`),
      ...kv("size", bytes(e.size)),
      ...kv("merkle proof", p ? el("span", { class: p.verified ? "ok" : "bad" },
        p.verified ? `✓ verified: leaf ${p.leaf_index} of ${p.leaf_count}, ${p.items.length} hashes to root ${short(p.root)}…` : "✗ does not verify") : "—")),
    el("pre", { class: "payload" }, e.text != null ? e.text : `base64: ${e.base64}`));
  $("detail").classList.remove("hidden");
  $("detail").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

async function search(ev) {
  ev.preventDefault();
  const text = $("search").value.trim();
  if (!text) return;
  try {
    const hits = await api("/v1/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text, k: 20 }) });
    if (state.feedAbort) state.feedAbort.abort();
    $("feed-state").textContent = "search"; $("feed-state").className = "pill warn";
    $("search-clear").classList.remove("hidden");
    $("feed").replaceChildren(...(hits.length ? hits.map((h) => eventRow(h.event, el("span", { class: "sim" }, h.similarity.toFixed(2)))) : [el("li", { class: "empty" }, "no matches")]));
  } catch (e) { $("feed").replaceChildren(el("li", { class: "empty bad" }, String(e.message))); }
}

async function verify() {
  const bar = $("verify-bar"), out = $("verify-out");
  bar.classList.remove("hidden"); out.textContent = "verifying…"; out.className = "small";
  await api("/v1/verify", { method: "POST" });
  for (;;) {
    const j = await api("/v1/verify");
    bar.firstElementChild.style.width = j.total ? `${(100 * j.done) / j.total}%` : "0";
    if (j.state !== "running") {
      bar.classList.add("hidden");
      out.className = "small " + (j.state === "ok" ? "ok" : "bad");
      out.textContent = j.state === "ok"
        ? `✓ ${j.done.toLocaleString()} events re-hashed, ${j.logs} log roots recomputed, ${j.checkpoints} signatures verified`
        : `✗ verification failed: ${j.error}`;
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

$("login-form").addEventListener("submit", (e) => { e.preventDefault(); sessionStorage.setItem("xf-token", $("token").value.trim()); start(); });
$("feed-group").addEventListener("change", followFeed);
$("search-form").addEventListener("submit", search);
$("search-clear").addEventListener("click", () => { $("search").value = ""; $("search-clear").classList.add("hidden"); followFeed(); });
$("verify").addEventListener("click", () => verify().catch((e) => { $("verify-out").textContent = String(e.message); }));
$("detail-close").addEventListener("click", () => $("detail").classList.add("hidden"));
start();
