// Shared pieces: a virtualized table (1,000 rows render as the ~20 in view), the confirmation dialog every
// action goes through, toasts, and formatting of the API's decimal strings.

import { html, useState, useRef, useEffect } from "../vendor/htm-preact.module.js";

// -- formatting (decimals arrive as strings: shown as given, trimmed, never through float arithmetic) ------
export function dec(value, places) {
  if (value === null || value === undefined || value === "") return "—";
  const s = String(value);
  if (places === undefined || !/^-?\d+(\.\d+)?$/.test(s)) return s;
  const [int, frac = ""] = s.split(".");
  const cut = frac.slice(0, places).replace(/0+$/, "");
  return cut ? `${int}.${cut}` : int;
}

export function pct(rate) {
  if (rate === null || rate === undefined) return "—";
  const s = String(rate);
  // a fraction as a percentage, by moving the decimal point (no float)
  const m = /^(-?)(\d*)\.?(\d*)$/.exec(s);
  if (!m) return s;
  const digits = (m[2] || "0") + (m[3] || "").padEnd(2, "0");
  const point = (m[2] || "0").length + 2;
  const int = digits.slice(0, point).replace(/^0+(?=\d)/, "");
  const frac = digits.slice(point).replace(/0+$/, "");
  return `${m[1]}${int}${frac ? "." + frac : ""}%`;
}

export function sign(value) {
  if (value === null || value === undefined) return "";
  return String(value).startsWith("-") ? "neg" : /^0(\.0*)?$/.test(String(value)) ? "" : "pos";
}

export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().replace("T", " ").slice(0, 19);
}

export function ago(iso, now) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

export function duration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// a clock for "n s ago" labels: re-renders its user every second (display only; data comes pushed)
export function useNow(everyMs = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(id);
  }, [everyMs]);
  return now;
}

// -- the virtualized table ------------------------------------------------------------------------------------
export function VirtualTable({ columns, rows, rowKey, testid, rowHeight = 32, maxHeight = 384, empty = "none", onRow, selected }) {
  const [scrollTop, setScrollTop] = useState(0);
  const body = useRef(null);
  const template = columns.map((c) => c.width || "1fr").join(" ");
  const total = rows.length;
  const height = Math.min(maxHeight, Math.max(1, total) * rowHeight);
  const overscan = 6;
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(total, Math.ceil((scrollTop + height) / rowHeight) + overscan);
  const slice = rows.slice(first, last);
  return html`
    <div class="vtable" role="table" data-testid=${testid} data-rows=${total}>
      <div class="vhead" role="row" style=${{ gridTemplateColumns: template }}>
        ${columns.map((c) => html`<div role="columnheader" class=${c.cls || ""}>${c.label}</div>`)}
      </div>
      ${total === 0
        ? html`<div class="vempty">${empty}</div>`
        : html`<div class="vbody" ref=${body} style=${{ height: `${height}px` }}
              onScroll=${(e) => setScrollTop(e.currentTarget.scrollTop)}>
            <div class="vspace" style=${{ height: `${total * rowHeight}px` }}>
              ${slice.map((r, i) => {
                const key = rowKey(r);
                return html`<div role="row" key=${key} data-key=${key}
                    class=${`vrow${onRow ? " clickable" : ""}${selected === key ? " selected" : ""}`}
                    style=${{ top: `${(first + i) * rowHeight}px`, height: `${rowHeight}px`, gridTemplateColumns: template }}
                    onClick=${onRow ? () => onRow(r) : undefined}>
                  ${columns.map((c) => html`<div role="cell" class=${c.cls || ""}>${c.render ? c.render(r) : r[c.key]}</div>`)}
                </div>`;
              })}
            </div>
          </div>`}
    </div>`;
}

// -- actions: confirm, run through the API, show the outcome ------------------------------------------------
// `action` = {title, body, confirm, fields: [{name, label, placeholder, value}], run: async (values) => message}
export function ActionDialog({ action, onClose, notify }) {
  const [values, setValues] = useState(() => Object.fromEntries((action.fields || []).map((f) => [f.name, f.value || ""])));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const message = await action.run(values);
      notify(message || `${action.title}: done`, "ok");
      onClose();
    } catch (err) {
      setError(err.message || String(err));
      setBusy(false);
    }
  };
  return html`
    <div class="modal-backdrop">
      <form class="modal" role="dialog" aria-modal="true" aria-label=${action.title} data-testid="confirm-dialog" onSubmit=${submit}>
        <h2>${action.title}</h2>
        <p>${action.body}</p>
        ${(action.fields || []).map(
          (f) => html`<label>${f.label}
            <input name=${f.name} placeholder=${f.placeholder || ""} value=${values[f.name]}
              onInput=${(e) => setValues({ ...values, [f.name]: e.currentTarget.value })} /></label>`,
        )}
        ${error && html`<p class="error" role="alert" data-testid="dialog-error">${error}</p>`}
        <div class="buttons">
          <button type="button" class="secondary" onClick=${onClose} disabled=${busy}>Cancel</button>
          <button type="submit" class=${action.danger ? "danger" : ""} disabled=${busy} data-testid="confirm">
            ${busy ? "Working…" : action.confirm || "Confirm"}
          </button>
        </div>
      </form>
    </div>`;
}

export function Toasts({ items }) {
  return html`<div class="toasts" aria-live="polite">
    ${items.map((t) => html`<div key=${t.id} class=${`toast ${t.kind}`} role=${t.kind === "error" ? "alert" : "status"}>${t.text}</div>`)}
  </div>`;
}
