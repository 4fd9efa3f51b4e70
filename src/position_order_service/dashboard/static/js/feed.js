// The live feed (/api/v1/ws): authenticated without putting the token in a URL (the Sec-WebSocket-Protocol
// ["bearer", token], or a first {"op": "auth"} message for a token that is not a valid protocol name),
// resubscribed after every reconnect, user events resumed from the last seq seen (nothing lost, nothing twice).

import { token } from "./api.js";

const PROTOCOL_SAFE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TAIL = 200; // events of a user's recent past shown when first subscribed

export class Feed {
  constructor() {
    this.users = new Map(); // user id -> last seq seen (null: none yet)
    this.prices = new Set(); // "exchange|symbol"
    this.accounts = false;
    this.handlers = { event: new Set(), price: new Set(), accounts: new Set(), status: new Set(), auth: new Set() };
    this.retry = 0;
    this.stopped = false;
    this.state = "connecting";
    this.reconnects = 0;
  }

  on(kind, fn) {
    this.handlers[kind].add(fn);
    return () => this.handlers[kind].delete(fn);
  }

  emit(kind, ...args) {
    for (const fn of this.handlers[kind]) fn(...args);
  }

  setState(state) {
    this.state = state;
    this.emit("status", state);
  }

  start() {
    const t = token.get();
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/ws`;
    const viaProtocol = t && PROTOCOL_SAFE.test(t);
    const ws = viaProtocol ? new WebSocket(url, ["bearer", t]) : new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 0;
      if (t && !viaProtocol) this.send({ op: "auth", token: t });
      this.setState("live");
      for (const [user, seq] of this.users) this.sendSubscribe(user, seq);
      for (const key of this.prices) {
        const [exchange, symbol] = key.split("|");
        this.send({ op: "subscribe_prices", exchange, symbol });
      }
      if (this.accounts) this.send({ op: "subscribe_accounts" });
    };
    ws.onmessage = (m) => this.dispatch(JSON.parse(m.data));
    ws.onclose = (e) => {
      if (this.ws !== ws || this.stopped) return;
      if (e.code === 4401) {
        this.setState("unauthorized");
        this.emit("auth", e.reason || "invalid token");
        return;
      }
      this.setState("reconnecting");
      this.reconnects += 1;
      const delay = Math.min(5000, 250 * 2 ** this.retry++);
      this.timer = setTimeout(() => this.start(), delay);
    };
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
  }

  // a dropped connection, as a network would drop it, kept down for `pauseMs` (the page then reconnects and
  // resumes from the last seq it saw); the browser tests use it
  drop(pauseMs = 0) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    ws.onclose = null;
    ws.close(4000, "dropped by the page");
    this.setState("reconnecting");
    this.reconnects += 1;
    this.timer = setTimeout(() => this.start(), pauseMs);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  sendSubscribe(user, seq) {
    this.send(seq == null ? { op: "subscribe", user_id: user, tail: TAIL } : { op: "subscribe", user_id: user, from_seq: seq + 1 });
  }

  dispatch(msg) {
    if (msg.type === "event") {
      const last = this.users.get(msg.user_id);
      if (last === undefined) return; // unsubscribed meanwhile
      if (last != null && msg.seq != null && msg.seq <= last) return; // already seen
      if (msg.seq != null) this.users.set(msg.user_id, msg.seq);
      this.emit("event", msg.user_id, msg.event);
    } else if (msg.type === "price") {
      this.emit("price", msg.event);
    } else if (msg.type === "accounts") {
      this.emit("accounts", msg);
    } else if (msg.type === "error") {
      console.warn("feed:", msg.message);
    }
  }

  subscribeUser(user) {
    if (!this.users.has(user)) {
      this.users.set(user, null);
      this.sendSubscribe(user, null);
    }
  }

  unsubscribeUser(user) {
    if (this.users.delete(user)) this.send({ op: "unsubscribe", user_id: user });
  }

  subscribePrices(exchange, symbol) {
    const key = `${exchange}|${symbol}`;
    if (!this.prices.has(key)) {
      this.prices.add(key);
      this.send({ op: "subscribe_prices", exchange, symbol });
    }
  }

  subscribeAccounts() {
    if (!this.accounts) {
      this.accounts = true;
      this.send({ op: "subscribe_accounts" });
    }
  }

  unsubscribeAccounts() {
    if (this.accounts) {
      this.accounts = false;
      this.send({ op: "unsubscribe_accounts" });
    }
  }
}
