// One dashboard panel: asks raymon for its series (the panel's own queries,
// run with Grafana's rules) and draws them as Grafana's graph panel does:
// lines, fill, stack, points, series overrides, y-axis unit and range, a
// legend with current/min/max/avg, and a shared tooltip. The element carries
// `data-panel-state` (loading, ok, nodata, error; unsupported for panel
// types not drawn) and, once drawn, `element.raymon` with the data drawn.

import { formatter } from './units.js';

// Grafana's classic palette, in order.
const PALETTE = ['#7EB26D', '#EAB839', '#6ED0E0', '#EF843C', '#E24D42', '#1F78C1', '#BA43A9', '#705DA0',
  '#508642', '#CCA300', '#447EBC', '#C15C17', '#890F02', '#0A437C', '#6D1F62', '#584477', '#B7DBAB',
  '#F4D598', '#70DBED', '#F9BA8F', '#F29191', '#82B5D8', '#E5A8E2', '#AEA2E0', '#629E51', '#E5AC0E',
  '#64B0C8', '#E0752D', '#BF1B00', '#0A50A1', '#962D82', '#614D93', '#9AC48A', '#F2C96D', '#65C5DB',
  '#F9934E', '#EA6460', '#5195CE', '#D683CE', '#806EB7', '#3F6833', '#967302', '#2F575E', '#99440A'];

const DRAWN = new Set(['graph', 'timeseries']);
const VALUES = new Set(['stat', 'gauge', 'piechart', 'singlestat', 'bargauge']);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

// Whether a series override's alias (a name or a /regex/) names `name`.
function aliasMatches(alias, name) {
  if (typeof alias !== 'string') return false;
  const m = alias.match(/^\/(.*)\/([gimsuy]*)$/);
  if (!m) return alias === name;
  try {
    return new RegExp(m[1], m[2]).test(name);
  } catch {
    return false;
  }
}

// How a series is drawn: the panel's settings, then matching overrides.
function styleOf(panel, name, index) {
  const s = {
    lines: panel.lines ?? true,
    fill: panel.fill ?? 1,
    linewidth: panel.linewidth ?? 1,
    points: panel.points ?? false,
    pointradius: panel.pointradius ?? 2,
    stack: !!panel.stack,
    dashes: !!panel.dashes,
    steppedLine: !!panel.steppedLine,
    color: (panel.aliasColors || {})[name] || PALETTE[index % PALETTE.length],
    hidden: false,
  };
  for (const o of panel.seriesOverrides || []) {
    if (!aliasMatches(o.alias, name)) continue;
    for (const k of ['lines', 'fill', 'linewidth', 'points', 'pointradius', 'stack', 'dashes', 'steppedLine', 'color']) {
      if (o[k] !== undefined) s[k] = o[k];
    }
    if (o.hiddenSeries !== undefined) s.hidden = !!o.hiddenSeries;
  }
  return s;
}

// Every target's series on one time axis (the union of their timestamps).
export function align(targets) {
  const times = new Set();
  for (const t of targets) for (const s of t.series || []) for (const p of s.values) times.add(p[0]);
  const x = [...times].sort((a, b) => a - b);
  const at = new Map(x.map((t, i) => [t, i]));
  const series = [];
  for (const t of targets) {
    for (const s of t.series || []) {
      const values = new Array(x.length).fill(null);
      for (const [ts, v] of s.values) values[at.get(ts)] = v;
      series.push({ name: s.name, labels: s.labels, refId: t.refId, values });
    }
  }
  return { x, series };
}

// Label names and values compare as the server sorts them: by code point
// (the order of their UTF-8 bytes), pair by pair.
function compareText(a, b) {
  if (a === b) return 0;
  const x = [...a], y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i].codePointAt(0) - y[i].codePointAt(0);
  }
  return x.length - y.length;
}

function compareLabels(a, b) {
  const x = Object.entries(a || {}), y = Object.entries(b || {});
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const c = compareText(x[i][0], y[i][0]) || compareText(x[i][1], y[i][1]);
    if (c) return c;
  }
  return x.length - y.length;
}

// The answer's targets with every step: a target that kept steps
// (`keep: [from, to]`, seconds) carries only the steps after them, joined
// here to the held series' points in that span. Null when a target kept
// steps that are not held.
function whole(targets, held) {
  const out = [];
  for (const t of targets) {
    if (!t.keep) {
      out.push(t);
      continue;
    }
    const before = held?.targets.get(t.refId);
    if (!before) return null;
    const { keep, ...rest } = t;
    out.push({ ...rest, series: joinSeries(before.series || [], t.series || [], keep[0], keep[1]) });
  }
  return out;
}

// The held series' points within [from, to] followed by the fresh ones
// (all later), in the server's order; a series left without points is
// dropped, as the server drops it.
export function joinSeries(held, fresh, from, to) {
  const byKey = new Map();
  for (const s of held) {
    const values = s.values.filter((p) => p[0] >= from && p[0] <= to);
    if (values.length) byKey.set(JSON.stringify(s.labels), { ...s, values });
  }
  for (const s of fresh) {
    const key = JSON.stringify(s.labels);
    const have = byKey.get(key);
    if (have) have.values = have.values.concat(s.values);
    else byKey.set(key, s);
  }
  return [...byKey.values()].sort((a, b) => compareLabels(a.labels, b.labels));
}

function stats(values) {
  let n = 0, sum = 0, min = Infinity, max = -Infinity, current = null, total = 0;
  for (const v of values) {
    if (v == null) continue;
    n++;
    sum += v;
    total += v;
    if (v < min) min = v;
    if (v > max) max = v;
    current = v;
  }
  return n ? { min, max, avg: sum / n, current, total, n } : { min: null, max: null, avg: null, current: null, total: null, n: 0 };
}

function rgba(hex, alpha) {
  const m = /^#([0-9a-f]{6})$/i.exec(hex || '');
  if (!m) return hex;
  const n = parseInt(m[1], 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${alpha})`;
}

export class Panel {
  constructor(model, ctx) {
    this.model = model;
    this.ctx = ctx;
    this.plot = null;
    this.signature = '';
    this.element = el('section', 'panel');
    this.element.dataset.panelId = model.id;
    this.element.dataset.panelType = model.type;
    this.element.dataset.panelState = 'loading';
    const head = el('header', 'panel-title', model.title || '');
    if (model.description) head.title = model.description;
    this.body = el('div', 'panel-body');
    this.element.append(head, this.body);
  }

  setState(state, message) {
    this.element.dataset.panelState = state;
    this.element.querySelector('.panel-message')?.remove();
    if (message) this.body.append(el('div', `panel-message ${state}`, message));
  }

  // Queries the panel's data and draws it; resolves when drawn.
  async load() {
    const type = this.model.type;
    if (!DRAWN.has(type) && !VALUES.has(type)) {
      this.body.replaceChildren();
      this.setState('unsupported', `Panel type "${type}" is not drawn by raymon.`);
      return;
    }
    if (this.ctx.noVendor && DRAWN.has(type)) {
      this.setState('error', 'The charting library (uPlot) is not built into this raymon: run scripts/setup-deps, then cargo build.');
      return;
    }
    const width = Math.max(100, Math.round(this.body.clientWidth || 600));
    // What this answer's token refers to, should another load replace it.
    const held = this.held;
    let answer = await this.fetchData(width, held?.token);
    let targets = answer.status === 'success' && whole(answer.data.targets, held);
    if (answer.status === 'success' && !targets) {
      // Steps were kept that this panel does not hold: ask for all.
      answer = await this.fetchData(width, null);
      targets = answer.status === 'success' && whole(answer.data.targets, null);
    }
    if (answer.status !== 'success' || !targets) {
      this.held = null;
      this.clearPlot();
      this.setState('error', answer.error || 'query failed');
      return;
    }
    const errors = targets.filter((t) => t.error).map((t) => `${t.refId}: ${t.error}`);
    // The steps held for the next refresh, which then asks only for what
    // is newer or changed (the answer's token says what this page holds).
    this.held = errors.length || !answer.data.token ? null : { token: answer.data.token, targets: new Map(targets.map((t) => [t.refId, t])) };
    const data = align(targets);
    if (this.model.nullPointMode === 'null as zero') {
      for (const s of data.series) s.values = s.values.map((v) => v ?? 0);
    }
    if (answer.data.targets.some((t) => t.keep)) this.kept = (this.kept ?? 0) + 1;
    this.element.raymon = { targets, x: data.x, series: data.series.map((s) => ({ name: s.name, values: s.values })), kept: this.kept ?? 0 };
    if (errors.length) {
      this.clearPlot();
      this.setState('error', errors.join('\n'));
      return;
    }
    const points = data.series.reduce((n, s) => n + s.values.filter((v) => v != null).length, 0);
    if (!points) {
      this.clearPlot();
      this.setState('nodata', 'No data');
      return;
    }
    if (VALUES.has(type)) this.drawValues(data);
    else this.drawGraph(data, answer.data);
    this.setState('ok');
  }

  async fetchData(width, token) {
    let url = this.ctx.panelUrl(this.model.id, width);
    if (token) url += `&since=${encodeURIComponent(token)}`;
    try {
      const r = await fetch(url, { headers: { Accept: 'application/json' } });
      const answer = await r.json().catch(() => ({ status: 'error', error: `HTTP ${r.status}` }));
      if (!r.ok && answer.status !== 'error') return { status: 'error', error: `HTTP ${r.status}` };
      return answer;
    } catch (e) {
      return { status: 'error', error: String(e) };
    }
  }

  clearPlot() {
    this.plot?.destroy();
    this.plot = null;
    this.signature = '';
    this.body.replaceChildren();
  }

  // Stat, gauge and pie panels: each series' last value.
  drawValues(data) {
    const d = this.model.fieldConfig?.defaults || {};
    const fmt = formatter(d.unit || 'short', d.decimals);
    const list = el('div', 'values');
    for (const s of data.series) {
      const row = el('div', 'value-row');
      row.append(el('span', 'value-name', s.name), el('span', 'value', fmt(stats(s.values).current)));
      list.append(row);
    }
    this.body.replaceChildren(list);
  }

  drawGraph(data, meta) {
    const p = this.model;
    const yaxis = (p.yaxes || [])[0] || {};
    const unit = yaxis.format || p.fieldConfig?.defaults?.unit || 'short';
    const fmt = formatter(unit, yaxis.decimals ?? p.decimals);
    const styles = data.series.map((s, i) => styleOf(p, s.name, i));
    const legendCfg = p.legend || {};
    const shown = data.series.map((s, i) => {
      const st = stats(s.values);
      if (legendCfg.hideEmpty && st.n === 0) return false;
      if (legendCfg.hideZero && st.n > 0 && st.min === 0 && st.max === 0) return false;
      return true;
    });
    // Stacking: each stacked series drawn on top of the stacked ones before.
    const plotted = [];
    let below = null;
    const bands = [];
    data.series.forEach((s, i) => {
      const st = styles[i];
      if (!st.stack || st.hidden) {
        plotted.push(s.values);
        return;
      }
      const vals = s.values.map((v, j) => (v == null && below == null ? null : (v ?? 0) + (below ? below.values[j] ?? 0 : 0)));
      if (below) bands.push({ series: [i + 1, below.index + 1], fill: rgba(st.color, st.fill / 10) });
      plotted.push(vals);
      below = { index: i, values: vals };
    });
    const stackedBelow = new Set(bands.map((b) => b.series[0]));
    const series = [{}].concat(data.series.map((s, i) => {
      const st = styles[i];
      const connected = p.nullPointMode === 'connected';
      return {
        label: s.name,
        show: !st.hidden,
        stroke: st.lines ? st.color : 'transparent',
        width: st.lines ? st.linewidth : 0,
        dash: st.dashes ? [p.dashLength || 10, p.spaceLength || 10] : undefined,
        fill: st.fill > 0 && !stackedBelow.has(i + 1) ? rgba(st.color, st.fill / 10) : undefined,
        spanGaps: connected,
        points: { show: !!st.points, size: (st.pointradius || 2) * 2, fill: st.color },
        paths: st.steppedLine ? uPlot.paths.stepped({ align: 1 }) : undefined,
        value: (u, v) => fmt(v),
      };
    }));
    const min = yaxis.min == null || yaxis.min === '' ? null : Number(yaxis.min);
    const max = yaxis.max == null || yaxis.max === '' ? null : Number(yaxis.max);
    const axisColor = this.ctx.theme === 'light' ? '#464c54' : '#c7d0d9';
    const gridColor = this.ctx.theme === 'light' ? 'rgba(0,0,0,0.08)' : 'rgba(255,255,255,0.08)';

    const legend = this.legend(data, styles, shown, fmt, legendCfg);
    this.body.replaceChildren();
    const chart = el('div', 'chart');
    this.body.append(chart);
    if (legend) this.body.append(legend);
    if (legendCfg.rightSide) this.body.classList.add('legend-right');
    const size = () => {
      const h = this.body.clientHeight - (legend && !legendCfg.rightSide ? legend.offsetHeight : 0);
      const w = this.body.clientWidth - (legend && legendCfg.rightSide ? legend.offsetWidth : 0);
      return { width: Math.max(50, w), height: Math.max(40, h) };
    };
    const opts = {
      ...size(),
      series,
      bands,
      legend: { show: false },
      cursor: { sync: this.ctx.sharedCrosshair ? { key: this.ctx.syncKey } : undefined, points: { show: false } },
      tzDate: this.ctx.tzDate,
      scales: {
        x: { time: true, range: () => [meta.from / 1000, meta.to / 1000] },
        y: {
          range: (u, dmin, dmax) => {
            let lo = min ?? dmin, hi = max ?? dmax;
            if (lo == null || hi == null) return [0, 1];
            if (lo === hi) hi = lo + 1;
            const [a, b] = uPlot.rangeNum(lo, hi, 0.1, true);
            return [min ?? a, max ?? b];
          },
        },
      },
      axes: [
        { stroke: axisColor, grid: { stroke: gridColor }, ticks: { stroke: gridColor } },
        {
          stroke: axisColor,
          grid: { stroke: gridColor },
          ticks: { stroke: gridColor },
          values: (u, ticks) => ticks.map(fmt),
          // Wide enough for the longest label (about 7 px a character).
          size: (u, values) => 14 + 7 * Math.max(3, ...(values || []).map((v) => String(v).length)),
          show: yaxis.show !== false,
        },
      ],
      hooks: { setCursor: [(u) => this.tooltip(u, data, styles, fmt)] },
    };
    this.plot?.destroy();
    this.plot = new uPlot(opts, [data.x, ...plotted], chart);
    this.element.raymon.plotted = this.plot.data.slice(1).map((a) => Array.from(a));
    this.resize = () => this.plot?.setSize(size());
  }

  legend(data, styles, shown, fmt, cfg) {
    if (cfg.show === false) return null;
    const cols = ['min', 'max', 'avg', 'current', 'total'].filter((c) => cfg[c] && (cfg.values !== false || cfg.alignAsTable));
    let rows = data.series.map((s, i) => ({ s, i, st: stats(s.values) })).filter((r) => shown[r.i]);
    if (cfg.sort && cols.includes(cfg.sort)) {
      rows.sort((a, b) => (a.st[cfg.sort] ?? -Infinity) - (b.st[cfg.sort] ?? -Infinity));
      if (cfg.sortDesc) rows.reverse();
    }
    const table = el('table', cfg.alignAsTable ? 'legend table' : 'legend list');
    if (cfg.alignAsTable && cols.length) {
      const head = el('tr');
      head.append(el('th'));
      for (const c of cols) head.append(el('th', null, c));
      table.append(head);
    }
    for (const r of rows) {
      const tr = el('tr', styles[r.i].hidden ? 'hidden-series' : null);
      const name = el('td', 'legend-name');
      const swatch = el('i', 'swatch');
      swatch.style.background = styles[r.i].color;
      name.append(swatch, document.createTextNode(r.s.name));
      tr.append(name);
      for (const c of cols) tr.append(el('td', 'legend-value', fmt(r.st[c])));
      tr.addEventListener('click', () => {
        const show = !this.plot.series[r.i + 1].show;
        this.plot.setSeries(r.i + 1, { show });
        tr.classList.toggle('hidden-series', !show);
      });
      table.append(tr);
    }
    const box = el('div', 'legend-box');
    box.append(table);
    return box;
  }

  // The shared tooltip: every series' value at the cursor.
  tooltip(u, data, styles, fmt) {
    let tip = this.element.querySelector('.tooltip');
    const idx = u.cursor.idx;
    if (idx == null || u.cursor.left < 0) {
      tip?.remove();
      return;
    }
    if (!tip) {
      tip = el('div', 'tooltip');
      this.body.append(tip);
    }
    const when = new Date(data.x[idx] * 1000).toLocaleString();
    tip.replaceChildren(el('div', 'tooltip-time', when));
    data.series.forEach((s, i) => {
      if (!u.series[i + 1].show || s.values[idx] == null) return;
      const row = el('div', 'tooltip-row');
      const sw = el('i', 'swatch');
      sw.style.background = styles[i].color;
      row.append(sw, document.createTextNode(`${s.name}: ${fmt(s.values[idx])}`));
      tip.append(row);
    });
    const left = u.cursor.left + 70;
    tip.style.left = `${Math.min(left, this.body.clientWidth - tip.offsetWidth - 4)}px`;
    tip.style.top = `${Math.max(0, u.cursor.top - 10)}px`;
  }
}
