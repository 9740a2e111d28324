/*
 * notify.js: a client for the notification gateway (docs/protocol.md).
 * A dependency-free ES module; the gateway serves it at /notify.js.
 *
 *   import { connect } from "/notify.js";
 *   const client = connect({
 *     getToken: async () => (await fetch("/my-token")).text(), // or userId: "u1" with auth off
 *     onNotification: (n) => show(n),   // each id once, oldest first
 *     onRead: (id) => markRead(id),     // another tab of the user acknowledged it
 *     onStatus: (s) => console.log(s.state, s.code, s.reason),
 *   });
 *   const { id } = await client.send({ toUser: "u2", message: "hi" });
 *   await client.subscribe({ rooms: ["ops"], types: ["alert"] }); // or options rooms, types
 *
 * What it does for the app: speaks protocol v2 (tokens in the first
 * message, never in the URL); acknowledges every copy after onNotification
 * returns (autoAck, the default) or when the app calls ack(id); drops
 * repeats by id (delivery is at least once); refreshes the token before it
 * runs out; reconnects per close code:
 *   1001, 1006, 1013 and others: backoff with jitter (0.5 s doubling to 30 s);
 *   4001 (token expired), 1008 (refused): again only with a new token from
 *     getToken(); the same token again stops;
 *   4002 (replaced by a newer tab), 4003 (revoked), 1009, 1007, 1003: stop.
 * A stop is reported through onStatus({state: "stopped", code, reason}).
 */

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30000;
const STABLE_MS = 5000; /* open this long: the backoff starts over */
const REFRESH_BEFORE_S = 30; /* a new token this long before exp */
const STOP_CODES = new Set([4002, 4003, 1009, 1007, 1003]);
const NEW_TOKEN_CODES = new Set([4001, 1008]);

/* The page's own gateway: ws(s)://host of an http(s) page. */
function defaultUrl() {
  const loc = globalThis.location;
  if (loc && (loc.protocol === "http:" || loc.protocol === "https:"))
    return (loc.protocol === "https:" ? "wss://" : "ws://") + loc.host;
  return "ws://localhost:8083";
}

/* A token's exp (seconds), or 0 when it cannot be read. */
function tokenExp(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4))).exp;
    return typeof exp === "number" ? exp : 0;
  } catch (e) {
    return 0;
  }
}

export class SendError extends Error {
  constructor(reason, message) {
    super(message || reason);
    this.reason = reason; /* forbidden, rate-limited, invalid, unavailable, disconnected */
  }
}

export class NotifyClient {
  constructor(options = {}) {
    this.url = options.url || defaultUrl();
    this.userId = options.userId || null;
    this.getToken = options.getToken || null;
    if (!this.getToken && !this.userId)
      throw new TypeError("notify.js: give getToken (--auth jwt) or userId (auth off)");
    this.autoAck = options.autoAck !== false;
    this.onNotification = options.onNotification || (() => {});
    this.onRead = options.onRead || (() => {});
    this.onStatus = options.onStatus || (() => {});
    this.onRepeat = options.onRepeat || (() => {});
    this.seenMax = options.seenMax || 10000;
    this.rooms = options.rooms || []; /* joined on every connect (within the token's) */
    /* Of rooms and broadcast, only these types; null or []: every type. */
    this.types = options.types && options.types.length ? options.types : null;
    this.subscribing = [];
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    this.stats = { received: 0, repeats: 0, acks: 0 };
    this.seen = new Set(); /* insertion-ordered: the oldest goes first */
    this.sends = new Map(); /* ref -> {resolve, reject} */
    this.nextRef = 1;
    this.ws = null;
    this.ready = false; /* welcomed: the gateway took this connection */
    this.nextToken = null; /* a token fetched to decide a retry, used by it */
    this.wanted = false;
    this.attempt = 0;
    this.token = null;
    this.openedAt = 0;
    this.timer = null;
    this.refreshTimer = null;
  }

  /* Connects, and keeps connecting, until close() or a stop. */
  connect() {
    this.wanted = true;
    this.attempt = 0;
    this._clearTimers();
    this._open();
    return this;
  }

  /* Closes for good: no retry. */
  close() {
    this.wanted = false;
    this._clearTimers();
    this._drop();
    this._status({ state: "stopped", code: 1000, reason: "closed by the app" });
  }

  /* Acknowledges id: the read mark for every tab of the user. */
  ack(id) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify({ type: "ack", id }));
    this.stats.acks++;
    return true;
  }

  /* Publishes {toUser | toRoom, message, data?}: resolves {id} once Kafka
   * has it, rejects with a SendError whose reason is the gateway's. */
  send({ toUser, toRoom, message, data } = {}) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== 1 || !this.ready) {
        reject(new SendError("disconnected", "not connected"));
        return;
      }
      const ref = "r-" + this.nextRef++;
      const frame = { type: "send", message, ref };
      if (toUser !== undefined) frame.toUser = toUser;
      if (toRoom !== undefined) frame.toRoom = toRoom;
      if (data !== undefined) frame.data = data;
      this.sends.set(ref, { resolve, reject });
      this.ws.send(JSON.stringify(frame));
    });
  }

  /* Takes these rooms (and of rooms and broadcast only these types, or
   * every type when types is null) from now on, and on every reconnect:
   * resolves with what the gateway applied ({rooms, types}); rooms the
   * token does not allow are left out (onStatus is not told: compare). */
  subscribe({ rooms = [], types = null } = {}) {
    this.rooms = rooms;
    this.types = types && types.length ? types : null; /* [] or null: every type */
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== 1 || !this.ready) {
        resolve({ rooms, types, pending: true }); /* applied at the next connect */
        return;
      }
      const frame = { type: "subscribe", rooms };
      if (this.types) frame.types = this.types;
      this.subscribing.push({ resolve, reject });
      this.ws.send(JSON.stringify(frame));
    });
  }

  /* ---- inside ---- */

  _status(s) {
    try { this.onStatus(s); } catch (e) { console.error(e); }
  }

  _clearTimers() {
    clearTimeout(this.timer);
    clearTimeout(this.refreshTimer);
    this.timer = this.refreshTimer = null;
  }

  _drop() {
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try { ws.close(1000, "client closed"); } catch (e) { /* closed already */ }
    }
    for (const { reject } of this.sends.values())
      reject(new SendError("disconnected", "the connection closed before the answer"));
    this.sends.clear();
    for (const { resolve } of this.subscribing)
      resolve({ rooms: this.rooms, types: this.types, pending: true });
    this.subscribing = [];
  }

  _address() {
    const u = new URL(this.url.replace(/^http/i, "ws"));
    u.searchParams.set("v", "2");
    if (this.getToken) u.searchParams.delete("userId");
    else u.searchParams.set("userId", this.userId);
    if (this.rooms.length) u.searchParams.set("rooms", this.rooms.join(","));
    if (this.types) u.searchParams.set("types", this.types.join(","));
    return u.toString();
  }

  async _open() {
    this._status({ state: "connecting", attempt: this.attempt });
    if (this.getToken) {
      try {
        this.token = this.nextToken || (await this.getToken());
        this.nextToken = null;
      } catch (e) {
        this._retry({ code: 0, reason: "getToken failed: " + e.message });
        return;
      }
      if (!this.wanted) return;
    }
    let ws;
    try {
      ws = new this.WebSocket(this._address());
    } catch (e) {
      this.wanted = false;
      this._status({ state: "stopped", code: 0, reason: e.message });
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.openedAt = Date.now();
      if (this.token) ws.send(JSON.stringify({ type: "auth", token: this.token }));
      /* Open once "welcome" says the gateway took it: a refused connection
       * opens too, then closes with its code. */
    };
    ws.onmessage = (ev) => this._frame(ev.data);
    ws.onclose = (ev) => this._closed(ws, ev);
  }

  _ready() {
    this.ready = true;
    this._status({ state: "open", userId: this.userId });
    this._scheduleRefresh();
  }

  _scheduleRefresh() {
    const exp = this.token ? tokenExp(this.token) : 0;
    if (!exp) return;
    const inMs = Math.max(1000, (exp - REFRESH_BEFORE_S) * 1000 - Date.now());
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(async () => {
      try {
        const token = await this.getToken();
        if (this.ws && this.ws.readyState === 1 && token && token !== this.token) {
          this.token = token;
          this.ws.send(JSON.stringify({ type: "refresh", token }));
          this._scheduleRefresh();
        }
      } catch (e) { /* the close at exp (4001) asks again */ }
    }, inMs);
  }

  _frame(data) {
    let m;
    try { m = JSON.parse(data); } catch (e) { return; }
    if (!m || typeof m !== "object") return;
    if (m.message === undefined && typeof m.type === "string") {
      this._control(m);
      return;
    }
    if (typeof m.id !== "string" || !m.id) return;
    if (this.seen.has(m.id)) {
      this.stats.repeats++;
      try { this.onRepeat(m); } catch (e) { console.error(e); }
    } else {
      this.seen.add(m.id);
      if (this.seen.size > this.seenMax) this.seen.delete(this.seen.values().next().value);
      this.stats.received++;
      try { this.onNotification(m); } catch (e) { console.error(e); }
    }
    if (this.autoAck) this.ack(m.id); /* every copy: the gateway holds it until then */
  }

  _control(m) {
    switch (m.type) {
      case "welcome":
        this.userId = m.userId;
        this._ready();
        break;
      case "acked":
        try { this.onRead(m.id); } catch (e) { console.error(e); }
        break;
      case "subscribed": {
        const waiting = this.subscribing.shift();
        if (waiting) waiting.resolve({ rooms: m.rooms, types: m.types || null });
        break;
      }
      case "error":
        if (!m.ref && this.subscribing.length && m.reason === "invalid") {
          /* A subscribe the gateway could not read: nothing was applied. */
          this.subscribing.shift().reject(new SendError(m.reason, m.message));
          break;
        }
      /* falls through: a send's answer */
      case "sent": {
        const waiting = this.sends.get(m.ref);
        if (!waiting) break;
        this.sends.delete(m.ref);
        if (m.type === "sent") waiting.resolve({ id: m.id });
        else waiting.reject(new SendError(m.reason, m.message));
        break;
      }
    }
  }

  async _closed(ws, ev) {
    if (ws !== this.ws) return;
    const stable = this.openedAt && Date.now() - this.openedAt >= STABLE_MS;
    this.openedAt = 0;
    this._drop();
    if (stable) this.attempt = 0;
    const close = { code: ev.code, reason: ev.reason || "" };
    if (!this.wanted) return;
    if (STOP_CODES.has(ev.code)) {
      this.wanted = false;
      this._status({ state: "stopped", ...close });
      return;
    }
    if (NEW_TOKEN_CODES.has(ev.code)) {
      /* Only a new token can help: the same one is refused again. */
      const old = this.token;
      let token = null;
      try { token = this.getToken ? await this.getToken() : null; } catch (e) { /* none */ }
      if (!token || token === old) {
        this.wanted = false;
        this._status({ state: "stopped", ...close });
        return;
      }
      this.nextToken = token;
    }
    this._retry(close);
  }

  /* Exponential backoff with jitter: each wait drawn between half and all
   * of the step, so that many tabs do not come back in step. */
  _retry(close) {
    const step = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = Math.round(step / 2 + (Math.random() * step) / 2);
    this.attempt++;
    this._status({ state: "retrying", retryInMs: delay, ...close });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { if (this.wanted) this._open(); }, delay);
  }
}

/* new NotifyClient(options).connect() */
export function connect(options) {
  return new NotifyClient(options).connect();
}
