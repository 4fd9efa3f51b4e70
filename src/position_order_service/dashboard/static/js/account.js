// One account (user x exchange): positions with live marks and PnL, open orders, trailing stops, rules, the
// live event timeline, a price chart with the position's levels, realized PnL per day, and the actions.
// Data: the REST routes once, then the feed's events (each one patches its row at once, and the list is
// re-read shortly after for the fields an event does not carry).

import { html, useCallback, useEffect, useMemo, useRef, useState } from "../vendor/htm-preact.module.js";
import { api, enc } from "./api.js";
import { PnlChart, PriceChart } from "./charts.js";
import { VirtualTable, dec, pct, sign, time } from "./ui.js";

const MAX_TIMELINE = 1000;
const MAX_POINTS = 2000;
const TERMINAL_ORDER = new Set(["filled", "cancelled", "rejected", "expired"]);
const LIVE_STOP = new Set(["pending", "active", "triggered"]);

// re-read a list at most once per `ms` after events ask for it
function useRefetch(fn, ms) {
  const timer = useRef(null);
  return useCallback(() => {
    if (timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      fn();
    }, ms);
  }, [fn, ms]);
}

function summary(e) {
  const t = e.event_type || "";
  if (t.startsWith("position.")) return `${e.symbol} ${e.side} size ${dec(e.size)} @ ${dec(e.entry_price)} · uPnL ${dec(e.unrealized_pnl, 4)}`;
  if (t.startsWith("order.")) return `${e.symbol} ${e.side} ${e.order_type} ${dec(e.filled_qty)}/${dec(e.quantity)} ${e.price ? "@ " + dec(e.price) : ""} · ${e.status}`;
  if (t.startsWith("trailing_stop.")) return `${e.symbol} ${e.side} · stop ${dec(e.stop_price)} · extreme ${dec(e.extreme_price)}${e.reason ? " · " + e.reason : ""}`;
  if (t.startsWith("conditional.")) return `rule ${e.rule_id} · trigger ${e.trigger_order_id}${e.cancelled_ids?.length ? " · cancelled " + e.cancelled_ids.join(", ") : ""}`;
  if (t === "fill.created") return `${e.symbol} ${e.side} ${dec(e.size)} @ ${dec(e.price)} · fee ${dec(e.fee)}`;
  return "";
}

// distance from the last price to the stop, as a signed percentage string (display only)
function distance(stop, last) {
  if (!stop.stop_price || !last) return "—";
  const d = ((Number(last) - Number(stop.stop_price)) / Number(last)) * 100;
  return `${(stop.side === "short" ? -d : d).toFixed(2)}%`;
}

export function Account({ user, exchange, feed, act }) {
  const [positions, setPositions] = useState([]);
  const [orders, setOrders] = useState([]);
  const [stops, setStops] = useState([]);
  const [rules, setRules] = useState([]);
  const [pnl, setPnl] = useState({ items: [], error: null });
  const [timeline, setTimeline] = useState([]);
  const [errors, setErrors] = useState({});
  const [symbol, setSymbol] = useState(null);
  const [points, setPoints] = useState([]);
  const [last, setLast] = useState({});
  const base = `/api/v1`;

  const fail = (part) => (e) => setErrors((cur) => ({ ...cur, [part]: e.message }));
  const ok = (part) => setErrors((cur) => (cur[part] ? { ...cur, [part]: null } : cur));
  const loadPositions = useCallback(
    () => api("GET", `${base}/positions/${enc(user)}/${exchange}`).then((r) => (setPositions(r.positions), ok("positions")), fail("positions")),
    [user, exchange],
  );
  const loadOrders = useCallback(
    () => api("GET", `${base}/orders/${enc(user)}/${exchange}/open`).then((r) => (setOrders(r.orders), ok("orders")), fail("orders")),
    [user, exchange],
  );
  const loadStops = useCallback(
    () => api("GET", `${base}/trailing-stops/${enc(user)}?exchange=${exchange}`).then((r) => (setStops(r.trailing_stops), ok("stops")), fail("stops")),
    [user, exchange],
  );
  const loadRules = useCallback(
    () => api("GET", `${base}/conditional-rules/${enc(user)}`).then((r) => (setRules(r.rules.filter((x) => x.exchange === exchange)), ok("rules")), fail("rules")),
    [user, exchange],
  );
  const loadPnl = useCallback(
    () =>
      api("GET", `${base}/history/${enc(user)}/pnl?period=day&exchange=${exchange}`).then(
        (r) => setPnl({ items: r.items, error: null }),
        (e) => setPnl({ items: [], error: e.message }),
      ),
    [user, exchange],
  );
  const refetch = {
    positions: useRefetch(loadPositions, 300),
    orders: useRefetch(loadOrders, 300),
    stops: useRefetch(loadStops, 300),
    rules: useRefetch(loadRules, 300),
    pnl: useRefetch(loadPnl, 2000),
  };

  useEffect(() => {
    setTimeline([]);
    setSymbol(null);
    loadPositions();
    loadOrders();
    loadStops();
    loadRules();
    loadPnl();
    const off = feed.on("event", (uid, e) => {
      if (uid !== user || (e.exchange && e.exchange !== exchange)) return;
      setTimeline((cur) => [{ ...e, summary: summary(e) }, ...cur].slice(0, MAX_TIMELINE));
      const t = e.event_type || "";
      if (t.startsWith("position.")) {
        setPositions((cur) => {
          const rest = cur.filter((p) => !(p.symbol === e.symbol && p.side === e.side));
          if (t === "position.closed") return rest;
          const known = cur.find((p) => p.symbol === e.symbol && p.side === e.side);
          const patch = { size: e.size, entry_price: e.entry_price, current_price: e.current_price, leverage: e.leverage,
            pnl: { ...(known?.pnl || {}), unrealized: e.unrealized_pnl, realized: e.realized_pnl } };
          return known ? cur.map((p) => (p === known ? { ...p, ...patch } : p)) : cur;
        });
        if (t !== "position.updated") refetch.positions();
        if (t === "position.closed") refetch.pnl();
      } else if (t.startsWith("order.")) {
        if (TERMINAL_ORDER.has(e.status)) setOrders((cur) => cur.filter((o) => o.exchange_order_id !== e.order_id && o.id !== e.order_id));
        refetch.orders();
      } else if (t.startsWith("trailing_stop.")) {
        setStops((cur) => cur.map((s) => (s.symbol === e.symbol && s.side === e.side && LIVE_STOP.has(s.state)
          ? { ...s, state: e.state || s.state, extreme_price: e.extreme_price, stop_price: e.stop_price, activation_price: e.activation_price } : s)));
        refetch.stops();
      } else if (t.startsWith("conditional.")) {
        refetch.rules();
      } else if (t === "fill.created") {
        refetch.pnl();
      }
    });
    feed.subscribeUser(user);
    return () => {
      off();
      feed.unsubscribeUser(user);
    };
  }, [user, exchange, feed]);

  // the chart's symbol: the one picked, else the first position's, else the first order's
  const chartSymbol = symbol || positions[0]?.symbol || orders[0]?.symbol || stops.find((s) => LIVE_STOP.has(s.state))?.symbol || null;
  useEffect(() => {
    if (!chartSymbol) return;
    setPoints([]);
    feed.subscribePrices(exchange, chartSymbol);
    const off = feed.on("price", (e) => {
      if (e.symbol !== chartSymbol || (e.exchange && e.exchange !== exchange)) return;
      setLast((cur) => ({ ...cur, [e.symbol]: e.price }));
      const t = Math.floor(new Date(e.timestamp).getTime() / 1000);
      setPoints((cur) => {
        const value = Number(e.price);
        if (cur.length && cur[cur.length - 1].time > t) return cur;
        const next = cur.length && cur[cur.length - 1].time === t ? [...cur.slice(0, -1), { time: t, value }] : [...cur, { time: t, value }];
        return next.length > MAX_POINTS ? next.slice(-MAX_POINTS) : next;
      });
    });
    return off;
  }, [chartSymbol, exchange, feed]);

  const lines = useMemo(() => {
    if (!chartSymbol) return [];
    const out = [];
    for (const p of positions.filter((p) => p.symbol === chartSymbol)) {
      out.push({ kind: "entry", title: `entry ${p.side}`, price: p.entry_price });
      if (p.stop_loss_price) out.push({ kind: "stop-loss", title: "stop-loss", price: p.stop_loss_price });
      if (p.take_profit_price) out.push({ kind: "take-profit", title: "take-profit", price: p.take_profit_price });
    }
    const seen = new Set(out.map((l) => `${l.kind}|${l.price}`));
    for (const o of orders.filter((o) => o.symbol === chartSymbol && o.trigger_price)) {
      const kind = o.order_type === "take_profit" ? "take-profit" : o.order_type === "stop_loss" || o.order_type === "stop_market" ? "stop-loss" : null;
      if (kind && !seen.has(`${kind}|${o.trigger_price}`)) {
        seen.add(`${kind}|${o.trigger_price}`);
        out.push({ kind, title: kind === "take-profit" ? "take-profit" : "stop-loss", price: o.trigger_price });
      }
    }
    for (const s of stops.filter((s) => s.symbol === chartSymbol && LIVE_STOP.has(s.state))) {
      if (s.stop_price) out.push({ kind: "trailing", title: `trailing stop ${s.side}`, price: s.stop_price });
      else if (s.activation_price) out.push({ kind: "activation", title: "trailing activation", price: s.activation_price });
    }
    return out;
  }, [chartSymbol, positions, orders, stops]);

  // -- actions (each asks first, then goes through the same API routes as any client) ------------------------
  const closePosition = (p) =>
    act({
      title: `Close ${p.symbol} ${p.side}`,
      body: `Send a reduce-only market order for ${user} on ${exchange}. Leave the size empty to close all ${dec(p.size)}.`,
      confirm: "Close position",
      danger: true,
      fields: [{ name: "size", label: "Size (base currency)", placeholder: `all: ${dec(p.size)}` }],
      run: async (v) => {
        const body = { user_id: user, exchange, symbol: p.symbol, side: p.side, reason: "dashboard" };
        if (v.size.trim()) body.size = v.size.trim();
        const r = await api("POST", `${base}/positions/close`, body);
        return `close order ${r.order.exchange_order_id || r.order.id} sent`;
      },
    });
  const createStop = (p) =>
    act({
      title: `Trailing stop on ${p.symbol} ${p.side}`,
      body: `The stop follows the best price by the callback rate and closes the position when the price comes back.`,
      confirm: "Create trailing stop",
      fields: [
        { name: "callback", label: "Callback rate (%)", value: "1" },
        { name: "activation", label: "Activation price (empty: active at once)", placeholder: "" },
      ],
      run: async (v) => {
        const rate = v.callback.trim();
        if (!/^\d+(\.\d+)?$/.test(rate)) throw new Error("callback rate: a percentage such as 1 or 0.5");
        const body = { user_id: user, exchange, symbol: p.symbol, side: p.side, callback_rate: percentToFraction(rate) };
        if (v.activation.trim()) body.activation_price = v.activation.trim();
        const s = await api("POST", `${base}/trailing-stops`, body);
        setSymbol(p.symbol);
        setStops((cur) => [s, ...cur.filter((x) => !(x.symbol === s.symbol && x.side === s.side))]);
        return `trailing stop ${s.state}${s.stop_price ? " at " + s.stop_price : ""}`;
      },
    });
  const deleteStop = (s) =>
    act({
      title: `Delete the trailing stop on ${s.symbol} ${s.side}`,
      body: "The stop is cancelled; the position stays open.",
      confirm: "Delete trailing stop",
      danger: true,
      run: async () => {
        await api("DELETE", `${base}/trailing-stops/${enc(user)}/${enc(s.symbol)}/${s.side}?exchange=${exchange}`);
        refetch.stops();
        return "trailing stop cancelled";
      },
    });
  const cancelOrder = (o) =>
    act({
      title: `Cancel order ${o.exchange_order_id || o.id}`,
      body: `${o.symbol} ${o.side} ${o.order_type} ${dec(o.quantity)}${o.price ? " @ " + dec(o.price) : ""}${o.trigger_price ? " trigger " + dec(o.trigger_price) : ""}`,
      confirm: "Cancel order",
      danger: true,
      run: async () => {
        await api("POST", `${base}/orders/cancel`, { user_id: user, exchange, order_id: o.exchange_order_id || o.id, symbol: o.symbol });
        return "order cancelled";
      },
    });
  const setActive = (on) =>
    act({
      title: on ? `Activate ${user}` : `Deactivate ${user}`,
      body: on ? `Track ${user} on ${exchange} again.` : `Stop tracking ${user} on every exchange (sticks until activated again). Stops and rules stay stored.`,
      confirm: on ? "Activate" : "Deactivate",
      danger: !on,
      run: async () => {
        await api("POST", `${base}/users/${enc(user)}/${on ? "activate" : "deactivate"}`, on ? { exchanges: [exchange] } : undefined);
        return on ? `${user} activated` : `${user} deactivated`;
      },
    });

  const positionColumns = [
    { label: "Symbol", key: "symbol", width: "1.3fr" },
    { label: "Side", width: "0.6fr", render: (p) => html`<span class=${`side ${p.side}`}>${p.side}</span>` },
    { label: "Size", width: "0.8fr", cls: "num", render: (p) => dec(p.size) },
    { label: "Entry", width: "1fr", cls: "num", render: (p) => dec(p.entry_price) },
    { label: "Mark", width: "1fr", cls: "num", render: (p) => html`<span data-testid="mark">${dec(p.current_price)}</span>` },
    { label: "Unrealized PnL", width: "1fr", cls: "num", render: (p) => html`<span class=${sign(p.pnl?.unrealized)}>${dec(p.pnl?.unrealized, 4)}</span>` },
    { label: "Realized", width: "0.9fr", cls: "num", render: (p) => dec(p.pnl?.realized, 4) },
    { label: "Lev.", width: "0.5fr", cls: "num", render: (p) => `${p.leverage}x` },
    { label: "SL / TP", width: "1.2fr", cls: "num", render: (p) => `${dec(p.stop_loss_price, 2)} / ${dec(p.take_profit_price, 2)}` },
    {
      label: "",
      width: "1.4fr",
      render: (p) => html`<span class="row-actions">
        <button class="small" data-testid="trail" onClick=${(e) => (e.stopPropagation(), createStop(p))}>Trail</button>
        <button class="small danger" data-testid="close" onClick=${(e) => (e.stopPropagation(), closePosition(p))}>Close</button>
      </span>`,
    },
  ];
  const orderColumns = [
    { label: "Order id", width: "1.4fr", render: (o) => html`<span class="mono">${o.exchange_order_id || o.id}</span>` },
    { label: "Symbol", key: "symbol", width: "1.2fr" },
    { label: "Side", width: "0.5fr", render: (o) => html`<span class=${`side ${o.side}`}>${o.side}</span>` },
    { label: "Type", key: "order_type", width: "0.9fr" },
    { label: "Qty", width: "0.7fr", cls: "num", render: (o) => dec(o.quantity) },
    { label: "Filled", width: "0.7fr", cls: "num", render: (o) => dec(o.filled_qty) },
    { label: "Price", width: "0.9fr", cls: "num", render: (o) => dec(o.price, 2) },
    { label: "Trigger", width: "0.9fr", cls: "num", render: (o) => dec(o.trigger_price, 2) },
    { label: "Status", key: "status", width: "0.9fr" },
    { label: "", width: "0.8fr", render: (o) => html`<button class="small danger" data-testid="cancel" onClick=${(e) => (e.stopPropagation(), cancelOrder(o))}>Cancel</button>` },
  ];
  const stopColumns = [
    { label: "Symbol", key: "symbol", width: "1.2fr" },
    { label: "Side", key: "side", width: "0.5fr" },
    { label: "State", width: "0.8fr", render: (s) => html`<span class=${`badge ${LIVE_STOP.has(s.state) ? "ok" : s.state === "failed" ? "bad" : ""}`}>${s.state}</span>` },
    { label: "Callback", width: "0.7fr", cls: "num", render: (s) => pct(s.callback_rate) },
    { label: "Activation", width: "0.9fr", cls: "num", render: (s) => dec(s.activation_price, 2) },
    { label: "Extreme", width: "0.9fr", cls: "num", render: (s) => dec(s.extreme_price, 2) },
    { label: "Stop price", width: "0.9fr", cls: "num", render: (s) => html`<span data-testid="stop-price">${dec(s.stop_price, 2)}</span>` },
    { label: "To trigger", width: "0.8fr", cls: "num", render: (s) => (LIVE_STOP.has(s.state) ? distance(s, last[s.symbol]) : "—") },
    { label: "", width: "0.8fr", render: (s) => (LIVE_STOP.has(s.state) ? html`<button class="small danger" data-testid="delete-stop" onClick=${() => deleteStop(s)}>Delete</button>` : null) },
  ];
  const ruleColumns = [
    { label: "Rule", width: "1.2fr", render: (r) => html`<span class="mono">${r.id}</span>` },
    { label: "When", width: "1.4fr", render: (r) => `${r.trigger_order_id} ${r.condition}${r.price ? " " + r.direction + " " + dec(r.price) : ""}` },
    { label: "Cancel", width: "1.4fr", render: (r) => (r.cancel_order_ids || []).join(", ") },
    { label: "State", key: "state", width: "0.8fr" },
    { label: "Outcome", width: "1.6fr", render: (r) => outcome(r) },
  ];
  const timelineColumns = [
    { label: "Seq", key: "seq", width: "0.5fr", cls: "num" },
    { label: "Time (UTC)", width: "1.5fr", render: (e) => time(e.timestamp) },
    { label: "Event", key: "event_type", width: "1.5fr" },
    { label: "", key: "summary", width: "4fr" },
  ];
  const liveStops = stops.filter((s) => LIVE_STOP.has(s.state));
  const pastStops = stops.filter((s) => !LIVE_STOP.has(s.state));
  const total = pnl.items.reduce((acc, i) => acc + Number(i.net), 0);
  const selectedPosition = positions.find((p) => p.symbol === chartSymbol);
  const selectedKey = selectedPosition ? `${selectedPosition.symbol}|${selectedPosition.side}` : null;

  return html`<section class="page" data-testid="account">
    <div class="page-head">
      <h1><a href="#/">Overview</a> / ${user} <span class="muted">on ${exchange}</span></h1>
      <span class="row-actions">
        <button class="secondary" data-testid="activate" onClick=${() => setActive(true)}>Activate</button>
        <button class="danger" data-testid="deactivate" onClick=${() => setActive(false)}>Deactivate</button>
      </span>
    </div>
    ${Object.entries(errors).filter(([, m]) => m).map(([part, m]) => html`<p class="error" role="alert">${part}: ${m}</p>`)}
    <h2>Positions <span class="count">${positions.length}</span></h2>
    <${VirtualTable} testid="positions-table" columns=${positionColumns} rows=${positions} rowKey=${(p) => `${p.symbol}|${p.side}`}
      empty="No open position." onRow=${(p) => setSymbol(p.symbol)} selected=${selectedKey} />
    <div class="grid-2">
      <div><${PriceChart} symbol=${chartSymbol} points=${points} lines=${lines} /></div>
      <div>
        <h2>Trailing stops <span class="count">${liveStops.length}</span></h2>
        <${VirtualTable} testid="stops-table" columns=${stopColumns} rows=${[...liveStops, ...pastStops]} rowKey=${(s) => s.id} empty="No trailing stop." />
      </div>
    </div>
    <h2>Open orders <span class="count">${orders.length}</span></h2>
    <${VirtualTable} testid="orders-table" columns=${orderColumns} rows=${orders} rowKey=${(o) => o.id} empty="No open order." />
    <h2>Conditional rules <span class="count">${rules.length}</span></h2>
    <${VirtualTable} testid="rules-table" columns=${ruleColumns} rows=${rules} rowKey=${(r) => r.id} empty="No conditional rule." />
    <div class="grid-2">
      <div>
        <h2>Live events</h2>
        <${VirtualTable} testid="timeline" columns=${timelineColumns} rows=${timeline} rowKey=${(e) => e.event_id || `${e.seq}`} rowHeight=${28} empty="Waiting for events…" />
      </div>
      <div>
        <h2>Realized PnL per day <span class="count" data-testid="pnl-total">${pnl.items.length ? total.toFixed(2) : ""}</span></h2>
        ${pnl.error
          ? html`<p class="error" role="alert">${pnl.error}</p>`
          : pnl.items.length
            ? html`<${PnlChart} items=${pnl.items} />`
            : html`<p class="muted" data-testid="pnl-empty">No closed trade yet.</p>`}
      </div>
    </div>
  </section>`;
}

function outcome(r) {
  const parts = [];
  if (r.cancelled_ids?.length) parts.push(`cancelled ${r.cancelled_ids.join(", ")}`);
  if (r.already_closed_ids?.length) parts.push(`already closed ${r.already_closed_ids.join(", ")}`);
  if (r.failed_ids?.length) parts.push(`failed ${r.failed_ids.join(", ")}`);
  return parts.join(" · ") || "—";
}

// "1" -> "0.01", "0.5" -> "0.005", "12.25" -> "0.1225": a percentage as the API's fraction, without floats
export function percentToFraction(percent) {
  const [i, f = ""] = percent.split(".");
  const digits = (i.replace(/^0+/, "") + f) || "0";
  const point = i.replace(/^0+/, "").length - 2;
  const raw = point > 0 ? `${digits.slice(0, point)}.${digits.slice(point)}` : `0.${"0".repeat(-point)}${digits}`;
  return raw.replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}
