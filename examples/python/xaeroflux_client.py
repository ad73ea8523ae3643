#!/usr/bin/env python3
"""A XaeroFlux node client in plain Python (standard library only).

Talks to the local API of `xaeroflux daemon`: writes events, queries them and
follows the live stream (Server-Sent Events, resumable with Last-Event-ID).

    XAERO_DATA_DIR=~/.local/share/xaeroflux python3 xaeroflux_client.py

The address and token are read from DATA_DIR/api.addr and DATA_DIR/api.token, or
from XAERO_API_URL and XAERO_API_TOKEN.
"""

import json
import os
import sys
import urllib.error
import urllib.request


class ApiError(Exception):
    """An RFC 9457 problem returned by the node."""

    def __init__(self, problem):
        super().__init__(f"{problem.get('code')}: {problem.get('detail')}")
        self.problem = problem
        self.code = problem.get("code")


class Node:
    def __init__(self, url=None, token=None, data_dir=None):
        data_dir = data_dir or os.environ.get("XAERO_DATA_DIR")
        if url is None:
            url = os.environ.get("XAERO_API_URL")
        if url is None and data_dir:
            with open(os.path.join(data_dir, "api.addr")) as f:
                url = f.read().strip()
        if token is None:
            token = os.environ.get("XAERO_API_TOKEN")
        if token is None and data_dir:
            with open(os.path.join(data_dir, "api.token")) as f:
                token = f.read().strip()
        if not url or not token:
            raise SystemExit("set XAERO_DATA_DIR (or XAERO_API_URL and XAERO_API_TOKEN)")
        self.url = url.rstrip("/")
        self.token = token

    def _request(self, method, path, body=None, content_type="application/json", headers=None):
        h = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            h["Content-Type"] = content_type
        h.update(headers or {})
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=h)
        try:
            return urllib.request.urlopen(req, timeout=60)
        except urllib.error.HTTPError as e:
            try:
                raise ApiError(json.load(e)) from None
            except ValueError:
                raise ApiError({"code": "http", "detail": str(e)}) from None

    def _json(self, method, path, doc=None):
        body = None if doc is None else json.dumps(doc).encode()
        with self._request(method, path, body) as r:
            return json.load(r) if r.status != 204 else None

    def identity(self):
        return self._json("GET", "/v1/identity")

    def write(self, text=None, data=None, type=1000, group=None):
        """Writes one event; returns {id, position} once it is durable."""
        doc = {"type": type}
        if text is not None:
            doc["text"] = text
        else:
            import base64

            doc["base64"] = base64.b64encode(data).decode()
        if group:
            doc["group"] = group
        return self._json("POST", "/v1/events", doc)

    def write_batch(self, events):
        """Writes many events (dicts like write's arguments) in one durable batch."""
        lines = "".join(json.dumps(e) + "\n" for e in events).encode()
        with self._request("POST", "/v1/events/batch", lines, "application/x-ndjson") as r:
            return json.load(r)["ids"]

    def get(self, event_id, proof=False):
        return self._json("GET", f"/v1/events/{event_id}?proof={'true' if proof else 'false'}")

    def query(self, group=None, type=None, cursor=0, limit=100):
        q = f"cursor={cursor}&limit={limit}"
        if group:
            q += f"&group={group}"
        if type is not None:
            q += f"&type={type}"
        return self._json("GET", f"/v1/events?{q}")

    def subscribe(self, group=None, after=None, last_event_id=None):
        """Yields events as they are committed (after position `after`; -1 replays all)."""
        q = []
        if group:
            q.append(f"group={group}")
        if after is not None:
            q.append(f"after={after}")
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        with self._request("GET", "/v1/subscribe?" + "&".join(q), headers=headers) as r:
            data = []
            for raw in r:
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if data:
                        yield json.loads("\n".join(data))
                        data = []
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())


def main():
    node = Node()
    me = node.identity()
    print(f"node {me['short']} ({me['did']})")
    w = node.write(text="hello from python")
    print(f"wrote {w['id']} at position {w['position']}")
    ids = node.write_batch([{"text": f"python batch {i}", "type": 1001} for i in range(3)])
    print(f"batch of {len(ids)} durable")
    e = node.get(w["id"], proof=True)
    assert e["text"] == "hello from python"
    assert e["proof"]["verified"], e
    page = node.query(type=1001, cursor=w["position"])
    texts = [e["text"] for e in page["events"]]
    assert texts == [f"python batch {i}" for i in range(3)], texts
    seen = []
    for ev in node.subscribe(after=w["position"] - 1):
        seen.append(ev["text"])
        if len(seen) == 4:
            break
    assert seen == ["hello from python"] + texts, seen
    try:
        node.write(text="x", group="00" * 32)
        raise AssertionError("an unknown group must be refused")
    except ApiError as err:
        assert err.code == "unknown_group", err
    print("python client: write, batch, get with proof, query, subscribe: ok")


if __name__ == "__main__":
    sys.exit(main())
