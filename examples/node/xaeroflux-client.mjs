// A XaeroFlux node client for Node 20 (built-in fetch, no dependencies).
//
// Talks to the local API of `xaeroflux daemon`: writes events, queries them and
// follows the live stream (Server-Sent Events, resumable with Last-Event-ID).
//
//   XAERO_DATA_DIR=~/.local/share/xaeroflux node xaeroflux-client.mjs
//
// The address and token come from DATA_DIR/api.addr and DATA_DIR/api.token, or from
// XAERO_API_URL and XAERO_API_TOKEN.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";

export class ApiError extends Error {
  constructor(problem) {
    super(`${problem.code}: ${problem.detail}`);
    this.problem = problem;
    this.code = problem.code;
  }
}

export class XaeroFluxNode {
  constructor({ url, token, dataDir } = {}) {
    dataDir ??= process.env.XAERO_DATA_DIR;
    url ??= process.env.XAERO_API_URL ?? (dataDir && readFileSync(join(dataDir, "api.addr"), "utf8").trim());
    token ??= process.env.XAERO_API_TOKEN ?? (dataDir && readFileSync(join(dataDir, "api.token"), "utf8").trim());
    if (!url || !token) throw new Error("set XAERO_DATA_DIR (or XAERO_API_URL and XAERO_API_TOKEN)");
    this.url = url.replace(/\/$/, "");
    this.token = token;
  }

  async request(method, path, { json, body, contentType, headers = {} } = {}) {
    const h = { Authorization: `Bearer ${this.token}`, ...headers };
    if (json !== undefined) { body = JSON.stringify(json); contentType = "application/json"; }
    if (contentType) h["Content-Type"] = contentType;
    const r = await fetch(this.url + path, { method, headers: h, body });
    if (!r.ok) throw new ApiError(await r.json().catch(() => ({ code: "http", detail: `HTTP ${r.status}` })));
    return r;
  }

  async json(method, path, opts) {
    const r = await this.request(method, path, opts);
    return r.status === 204 ? null : r.json();
  }

  identity() { return this.json("GET", "/v1/identity"); }

  /** Writes one event; resolves to {id, position} once it is durable. */
  write({ text, data, type = 1000, group } = {}) {
    const doc = { type };
    if (text !== undefined) doc.text = text; else doc.base64 = Buffer.from(data).toString("base64");
    if (group) doc.group = group;
    return this.json("POST", "/v1/events", { json: doc });
  }

  async writeBatch(events) {
    const body = events.map((e) => JSON.stringify(e) + "\n").join("");
    return (await this.json("POST", "/v1/events/batch", { body, contentType: "application/x-ndjson" })).ids;
  }

  get(id, proof = false) { return this.json("GET", `/v1/events/${id}?proof=${proof}`); }

  query({ group, type, cursor = 0, limit = 100 } = {}) {
    const q = new URLSearchParams({ cursor, limit });
    if (group) q.set("group", group);
    if (type !== undefined) q.set("type", type);
    return this.json("GET", `/v1/events?${q}`);
  }

  /** Async iterator over committed events after position `after` (-1: all). */
  async *subscribe({ group, after, lastEventId, signal } = {}) {
    const q = new URLSearchParams();
    if (group) q.set("group", group);
    if (after !== undefined) q.set("after", after);
    const headers = { Accept: "text/event-stream" };
    if (lastEventId !== undefined) headers["Last-Event-ID"] = String(lastEventId);
    const r = await fetch(`${this.url}/v1/subscribe?${q}`, { headers: { Authorization: `Bearer ${this.token}`, ...headers }, signal });
    if (!r.ok) throw new ApiError(await r.json());
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of r.body) {
      buf += dec.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (data) yield JSON.parse(data);
      }
    }
  }
}

async function main() {
  const node = new XaeroFluxNode();
  const me = await node.identity();
  console.log(`node ${me.short} (${me.did})`);
  const w = await node.write({ text: "hello from node" });
  console.log(`wrote ${w.id} at position ${w.position}`);
  const ids = await node.writeBatch([0, 1, 2].map((i) => ({ text: `node batch ${i}`, type: 1002 })));
  assert.equal(ids.length, 3);
  const e = await node.get(w.id, true);
  assert.equal(e.text, "hello from node");
  assert.ok(e.proof.verified);
  const page = await node.query({ type: 1002, cursor: w.position });
  const texts = page.events.map((e) => e.text);
  assert.deepEqual(texts, ["node batch 0", "node batch 1", "node batch 2"]);
  const ctl = new AbortController();
  const seen = [];
  for await (const ev of node.subscribe({ after: w.position - 1, signal: ctl.signal })) {
    seen.push(ev.text);
    if (seen.length === 4) break;
  }
  ctl.abort();
  assert.deepEqual(seen, ["hello from node", ...texts]);
  await assert.rejects(node.write({ text: "x", group: "00".repeat(32) }), (err) => err.code === "unknown_group");
  console.log("node client: write, batch, get with proof, query, subscribe: ok");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => { console.error(e); process.exit(1); });
}
