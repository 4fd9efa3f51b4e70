// Charts on lightweight-charts: the symbol's price from the live feed with the position's entry, stop-loss,
// take-profits and trailing stop as price lines; realized PnL per UTC day as a histogram.
// Prices become numbers only here, for drawing; every figure shown as text stays the API's decimal string.

import { html, useEffect, useRef, useState } from "../vendor/htm-preact.module.js";
import { createChart, HistogramSeries, LineSeries, LineStyle } from "../vendor/lightweight-charts.mjs";

const THEME = {
  layout: { background: { color: "#ffffff" }, textColor: "#334155", fontFamily: "system-ui, sans-serif" },
  grid: { vertLines: { color: "#eef2f7" }, horzLines: { color: "#eef2f7" } },
  rightPriceScale: { borderColor: "#d8dee8" },
  timeScale: { borderColor: "#d8dee8", timeVisible: true, secondsVisible: true },
};

const LINE_STYLE = {
  entry: { color: "#2563eb", lineStyle: LineStyle.Solid },
  "stop-loss": { color: "#dc2626", lineStyle: LineStyle.Dashed },
  "take-profit": { color: "#16a34a", lineStyle: LineStyle.Dashed },
  trailing: { color: "#d97706", lineStyle: LineStyle.Dotted },
  activation: { color: "#a16207", lineStyle: LineStyle.SparseDotted },
};

function sized(el, chart) {
  const observer = new ResizeObserver(() => chart.applyOptions({ width: el.clientWidth }));
  observer.observe(el);
  return observer;
}

// points: [{time: seconds, value: number}] ascending; lines: [{kind, title, price: "decimal string"}]
export function PriceChart({ symbol, points, lines }) {
  const box = useRef(null);
  const chart = useRef(null);
  const [drawn, setDrawn] = useState([]);
  useEffect(() => {
    const c = createChart(box.current, { ...THEME, height: 300, width: box.current.clientWidth });
    const series = c.addSeries(LineSeries, {
      color: "#0f172a",
      lineWidth: 2,
      priceFormat: { type: "price", precision: 2, minMove: 0.01 },
      // keep every drawn line in view, not only the traded range
      autoscaleInfoProvider: (original) => {
        const base = original();
        const prices = (chart.current?.lines || []).map((l) => l.options().price);
        if (!base && !prices.length) return null;
        const lo = Math.min(...prices, base ? base.priceRange.minValue : Infinity);
        const hi = Math.max(...prices, base ? base.priceRange.maxValue : -Infinity);
        return { priceRange: { minValue: lo, maxValue: hi }, margins: { above: 8, below: 8 } };
      },
    });
    chart.current = { chart: c, series, lines: [], count: 0 };
    const observer = sized(box.current, c);
    return () => {
      observer.disconnect();
      c.remove();
      chart.current = null;
    };
  }, []);
  useEffect(() => {
    const cur = chart.current;
    if (!cur) return;
    if (points.length < cur.count || cur.symbol !== symbol) {
      cur.series.setData(points);
    } else {
      for (const p of points.slice(Math.max(0, cur.count - 1))) cur.series.update(p);
    }
    cur.count = points.length;
    cur.symbol = symbol;
  }, [points, symbol]);
  useEffect(() => {
    const cur = chart.current;
    if (!cur) return;
    for (const l of cur.lines) cur.series.removePriceLine(l);
    const shown = lines.filter((l) => l.price != null && l.price !== "");
    cur.lines = shown.map((l) =>
      cur.series.createPriceLine({ price: Number(l.price), title: l.title, lineWidth: 2, axisLabelVisible: true, ...LINE_STYLE[l.kind] }),
    );
    // the legend lists what the chart really holds, read back from its price lines
    setDrawn(cur.lines.map((pl, i) => ({ kind: shown[i].kind, ...pl.options() })));
  }, [lines]);
  return html`<figure class="chart">
    <div class="chart-box" ref=${box} data-testid="price-chart" aria-label=${`price of ${symbol}`}></div>
    <figcaption>
      <strong>${symbol || "no symbol"}</strong>
      <ul class="chart-lines" data-testid="chart-lines">
        ${drawn.map((l) => html`<li data-line=${l.kind} data-price=${String(l.price)} style=${{ borderColor: l.color }}>${l.title} ${String(l.price)}</li>`)}
      </ul>
    </figcaption>
  </figure>`;
}

// items: [{date: "2026-11-21", net: "12.5", realized_pnl, fees}]
export function PnlChart({ items }) {
  const box = useRef(null);
  const series = useRef(null);
  useEffect(() => {
    const c = createChart(box.current, { ...THEME, height: 200, width: box.current.clientWidth, timeScale: { borderColor: "#d8dee8" } });
    series.current = c.addSeries(HistogramSeries, { priceFormat: { type: "price", precision: 2, minMove: 0.01 } });
    const observer = sized(box.current, c);
    return () => {
      observer.disconnect();
      c.remove();
    };
  }, []);
  useEffect(() => {
    series.current.setData(
      items.map((i) => ({ time: i.date, value: Number(i.net), color: String(i.net).startsWith("-") ? "#dc2626" : "#16a34a" })),
    );
  }, [items]);
  return html`<div class="chart-box small" ref=${box} data-testid="pnl-chart"></div>`;
}
