// The dashboard's shell: sign-in (a bearer token kept in session storage; none needed on loopback without
// API_TOKENS), the hash routes (#/ overview, #/account/{user}/{exchange}), the feed, dialogs and toasts.

import { html, render, useEffect, useMemo, useState } from "../vendor/htm-preact.module.js";
import { api, token } from "./api.js";
import { Account } from "./account.js";
import { Feed } from "./feed.js";
import { Overview } from "./overview.js";
import { ActionDialog, Toasts } from "./ui.js";

function route(hash) {
  const m = /^#\/account\/([^/]+)\/([^/]+)$/.exec(hash);
  return m ? { page: "account", user: decodeURIComponent(m[1]), exchange: m[2] } : { page: "overview" };
}

function SignIn({ message, onToken }) {
  const [value, setValue] = useState("");
  return html`<section class="signin" data-testid="signin">
    <h1>position-order-service</h1>
    <p>This service requires a bearer token (one of API_TOKENS).</p>
    <form onSubmit=${(e) => (e.preventDefault(), onToken(value.trim()))}>
      <label>Token <input type="password" name="token" autocomplete="off" value=${value} onInput=${(e) => setValue(e.currentTarget.value)} /></label>
      <button type="submit" data-testid="signin-submit">Sign in</button>
    </form>
    ${message && html`<p class="error" role="alert" data-testid="signin-error">${message}</p>`}
  </section>`;
}

function Shell({ session, onSignOut }) {
  const [where, setWhere] = useState(route(location.hash));
  const [action, setAction] = useState(null);
  const [toasts, setToasts] = useState([]);
  const [feedState, setFeedState] = useState("connecting");
  const feed = useMemo(() => new Feed(), []);
  useEffect(() => {
    const onHash = () => setWhere(route(location.hash));
    window.addEventListener("hashchange", onHash);
    onHash(); // a navigation between the first render and this effect fired no event we could hear
    const offStatus = feed.on("status", setFeedState);
    const offAuth = feed.on("auth", (reason) => onSignOut(`the live feed refused the token: ${reason}`));
    feed.start();
    window.__dashboard = { feed }; // for the browser tests: drop the connection as a network would
    return () => {
      window.removeEventListener("hashchange", onHash);
      offStatus();
      offAuth();
      feed.stop();
    };
  }, [feed]);
  const notify = (text, kind = "ok") => {
    const id = Math.random().toString(36).slice(2);
    setToasts((cur) => [...cur, { id, text, kind }]);
    setTimeout(() => setToasts((cur) => cur.filter((t) => t.id !== id)), kind === "error" ? 8000 : 4000);
  };
  const go = (hash) => (location.hash = hash);
  return html`<div class="shell">
    <header class="top">
      <a class="brand" href="#/">position-order-service</a>
      <span class=${`feed-state ${feedState}`} data-testid="feed-state">live feed: ${feedState}</span>
      <span class="who">${session.users ? `token for ${session.users.join(", ")}` : session.token_required ? "admin token" : "open (loopback, no API_TOKENS)"}</span>
      ${session.token_required && html`<button class="secondary small" onClick=${() => onSignOut(null)}>Sign out</button>`}
    </header>
    <main>
      ${where.page === "account"
        ? html`<${Account} key=${`${where.user}|${where.exchange}`} user=${where.user} exchange=${where.exchange} feed=${feed} act=${setAction} />`
        : html`<${Overview} feed=${feed} go=${go} act=${setAction} />`}
    </main>
    ${action && html`<${ActionDialog} action=${action} onClose=${() => setAction(null)} notify=${notify} />`}
    <${Toasts} items=${toasts} />
  </div>`;
}

function App() {
  const [session, setSession] = useState(undefined); // undefined: asking the service
  const [message, setMessage] = useState(null);
  const check = async () => {
    try {
      const s = await api("GET", "/api/v1/session");
      if (s.authenticated) {
        setSession(s);
        setMessage(null);
      } else {
        if (token.get()) setMessage(s.detail || "the token was refused");
        token.clear();
        setSession(null);
      }
    } catch (e) {
      setSession(null);
      setMessage(e.message);
    }
  };
  useEffect(() => {
    check();
  }, []);
  if (session === undefined) return html`<p class="boot">Connecting…</p>`;
  if (session) return html`<${Shell} session=${session} onSignOut=${(reason) => (token.clear(), setSession(null), setMessage(reason))} />`;
  return html`<${SignIn} message=${message} onToken=${(t) => (token.set(t), check())} />`;
}

render(html`<${App} />`, document.getElementById("app"));
