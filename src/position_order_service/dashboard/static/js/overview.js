// Overview: every tracked account the token may read, with its stream health and open counts, and the
// service's figures. Pushed by the feed ({"op": "subscribe_accounts"}), read once over REST on arrival.

import { html, useEffect, useState } from "../vendor/htm-preact.module.js";
import { api } from "./api.js";
import { VirtualTable, ago, duration, time, useNow } from "./ui.js";

function Figure({ label, value, hint, tone, testid }) {
  return html`<div class=${`figure ${tone || ""}`} data-testid=${testid}>
    <span class="label">${label}</span><span class="value">${value}</span>${hint && html`<span class="hint">${hint}</span>`}
  </div>`;
}

function StateBadge({ account }) {
  const tone = account.connected ? "ok" : account.state === "starting" ? "warn" : "bad";
  return html`<span class=${`badge ${tone}`}>${account.connected ? "connected" : account.state}</span>`;
}

export function Overview({ feed, go, act }) {
  const [accounts, setAccounts] = useState(null);
  const [service, setService] = useState(null);
  const [error, setError] = useState(null);
  const now = useNow();
  useEffect(() => {
    let live = true;
    Promise.all([api("GET", "/api/v1/accounts"), api("GET", "/api/v1/service")])
      .then(([a, s]) => {
        if (!live) return;
        setAccounts((current) => current || a.accounts);
        setService((current) => current || s);
      })
      .catch((e) => live && setError(e.message));
    const off = feed.on("accounts", (msg) => {
      setAccounts(msg.accounts);
      setService(msg.service);
    });
    feed.subscribeAccounts();
    return () => {
      live = false;
      off();
      feed.unsubscribeAccounts();
    };
  }, [feed]);

  const activate = () =>
    act({
      title: "Activate a user",
      body: "Start tracking a user's accounts (their exchange credentials must be stored).",
      confirm: "Activate",
      fields: [
        { name: "user_id", label: "User id", placeholder: "user123" },
        { name: "exchanges", label: "Exchanges (comma separated)", value: "okx" },
      ],
      run: async (v) => {
        const exchanges = v.exchanges.split(",").map((x) => x.trim()).filter(Boolean);
        await api("POST", `/api/v1/users/${encodeURIComponent(v.user_id.trim())}/activate`, { exchanges });
        return `${v.user_id} activated on ${exchanges.join(", ")}`;
      },
    });

  const columns = [
    { label: "User", width: "1.2fr", render: (a) => html`<a href=${`#/account/${encodeURIComponent(a.user_id)}/${a.exchange}`}>${a.user_id}</a>` },
    { label: "Exchange", key: "exchange", width: "0.7fr" },
    { label: "Stream", width: "0.9fr", render: (a) => html`<${StateBadge} account=${a} />` },
    { label: "Last message", width: "0.9fr", render: (a) => ago(a.last_event_at, now) },
    { label: "Down for", width: "0.7fr", render: (a) => (a.connected ? "—" : duration(a.down_seconds)) },
    { label: "Last reconcile", width: "1.2fr", render: (a) => time(a.last_reconcile_at) },
    { label: "Positions", key: "positions", width: "0.6fr", cls: "num" },
    { label: "Open orders", key: "open_orders", width: "0.6fr", cls: "num" },
    { label: "Trailing stops", key: "trailing_stops", width: "0.6fr", cls: "num" },
    { label: "Rules", key: "rules", width: "0.5fr", cls: "num" },
    // no error: why it waits, if it does (its sockets' place at the service's own connection pacer)
    { label: "Last error", width: "2fr", render: (a) => html`<span class="muted" title=${a.last_error || a.detail || ""}>${a.last_error || a.detail || "—"}</span>` },
  ];
  return html`<section class="page" data-testid="overview">
    <div class="page-head">
      <h1>Overview</h1>
      <button onClick=${activate} data-testid="activate-user">Activate a user…</button>
    </div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${service &&
    html`<div class="figures" data-testid="service-figures">
      <${Figure} label="Accounts connected" value=${`${service.accounts_connected} / ${service.accounts}`} tone=${service.accounts_connected < service.accounts ? "warn" : "ok"} testid="figure-accounts" />
      <${Figure} label="Events / s" value=${service.events_per_s.toFixed(1)} hint=${`${service.events_total} since start`} testid="figure-events" />
      <${Figure} label="History writer lag" value=${service.history_writer_lag == null ? "off" : `${service.history_writer_lag} events`} tone=${service.history_writer_lag > 1000 ? "warn" : ""} testid="figure-lag" />
      <${Figure} label="Redis" value=${service.redis_reachable ? "reachable" : "unreachable"} tone=${service.redis_reachable ? "ok" : "bad"} testid="figure-redis" />
      <${Figure} label="Uptime" value=${duration(service.uptime_s)} hint=${`version ${service.version}`} testid="figure-uptime" />
    </div>`}
    <h2>Tracked accounts</h2>
    ${accounts === null
      ? html`<p class="muted">Loading…</p>`
      : html`<${VirtualTable} testid="accounts-table" columns=${columns} rows=${accounts}
          rowKey=${(a) => `${a.user_id}|${a.exchange}`} empty="No tracked account yet."
          onRow=${(a) => go(`#/account/${encodeURIComponent(a.user_id)}/${a.exchange}`)} />`}
  </section>`;
}
