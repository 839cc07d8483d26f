// Dashboard pages as Grafana serves them to Ray's dashboard: /d/<uid>/<slug>
// (the whole dashboard: rows, gridPos layout, variables, time range and
// refresh) and /d-solo/<uid>/<slug>?panelId=N (one panel). Reads the query
// parameters Ray's UI sends: orgId, theme, kiosk, refresh, from, to,
// timezone and var-*. Every URL is relative to the page's <base>.

import { Panel } from './panel.js';

const params = new URLSearchParams(location.search);
const body = document.body;
const uid = body.dataset.uid;
const mode = body.dataset.mode;
const theme = params.get('theme') === 'light' ? 'light' : 'dark';
body.classList.add(`theme-${theme}`);
const kiosk = params.has('kiosk');
if (kiosk) body.classList.add('kiosk');

// Grafana's grid: 24 columns, rows of 30 px with 8 px between.
const CELL = 30;
const GAP = 8;
const RANGES = ['5m', '15m', '30m', '1h', '3h', '6h', '12h', '24h', '2d', '7d'];
const REFRESHES = ['', '5s', '10s', '30s', '1m', '5m'];

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function fail(message) {
  const box = el('div', 'page-error', message);
  box.dataset.pageState = 'error';
  body.append(box);
}

function seconds(text) {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text || '');
  if (!m) return 0;
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
}

// The time zone: Grafana's `browser` and empty mean the browser's.
function zone() {
  const tz = params.get('timezone');
  if (!tz || tz === 'browser') return null;
  const name = tz === 'utc' ? 'Etc/UTC' : tz;
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return name;
  } catch {
    return null;
  }
}

function utcOffsetSeconds(tz) {
  if (!tz) return -new Date().getTimezoneOffset() * 60;
  const now = new Date();
  const local = new Date(now.toLocaleString('en-US', { timeZone: tz }));
  const utc = new Date(now.toLocaleString('en-US', { timeZone: 'Etc/UTC' }));
  return Math.round((local - utc) / 1000);
}

// The dashboard-level query: time range and variables, as in the URL.
function dashboardQuery(extra = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of params) if (k === 'from' || k === 'to' || k.startsWith('var-')) q.append(k, v);
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return q;
}

async function getJson(url) {
  const r = await fetch(url, { headers: { Accept: 'application/json' } });
  const j = await r.json().catch(() => null);
  if (!r.ok || !j) throw new Error(j?.error || `${url}: HTTP ${r.status}`);
  return j;
}

// Top-level panels in order, with collapsed rows' panels laid out below
// their row when it is open, and everything after pushed down.
function layout(panels, open) {
  const items = [];
  let shift = 0;
  const sorted = [...panels].sort((a, b) => (a.gridPos?.y ?? 0) - (b.gridPos?.y ?? 0) || (a.gridPos?.x ?? 0) - (b.gridPos?.x ?? 0));
  for (const p of sorted) {
    const g = { x: 0, y: 0, w: 12, h: 8, ...p.gridPos };
    items.push({ panel: p, x: g.x, y: g.y + shift, w: g.w, h: g.h });
    if (p.type === 'row' && p.collapsed && open.has(p.id) && p.panels?.length) {
      const top = Math.min(...p.panels.map((c) => c.gridPos?.y ?? 0));
      let bottom = 0;
      for (const c of p.panels) {
        const cg = { x: 0, y: 0, w: 12, h: 8, ...c.gridPos };
        const y = g.y + shift + 1 + (cg.y - top);
        items.push({ panel: c, x: cg.x, y, w: cg.w, h: cg.h });
        bottom = Math.max(bottom, cg.y - top + cg.h);
      }
      shift += bottom;
    }
  }
  return items;
}

class Dashboard {
  constructor(model) {
    this.model = model;
    this.tz = zone();
    this.panels = [];
    this.open = new Set();
    this.ctx = {
      theme,
      noVendor: typeof uPlot === 'undefined',
      syncKey: `raymon-${uid}`,
      sharedCrosshair: (model.graphTooltip ?? 0) > 0,
      tzDate: this.tz ? (ts) => uPlot.tzDate(new Date(ts * 1000), this.tz) : undefined,
      panelUrl: (id, width) => {
        const q = dashboardQuery({ maxDataPoints: width, utcOffset: utcOffsetSeconds(this.tz) });
        return `api/dashboards/uid/${encodeURIComponent(uid)}/panels/${id}/query?${q}`;
      },
    };
  }

  // Fills the URL with the variables' current values, as Grafana does.
  async variables() {
    const j = await getJson(`api/dashboards/uid/${encodeURIComponent(uid)}/variables?${dashboardQuery()}`);
    this.vars = j.data;
    for (const v of this.vars) {
      if (!params.has(`var-${v.name}`) && v.type !== 'datasource') {
        for (const c of v.current) params.append(`var-${v.name}`, c);
      }
    }
  }

  toolbar() {
    const bar = el('nav', 'toolbar');
    bar.append(el('span', 'dash-title', this.model.title || uid));
    for (const v of this.vars.filter((v) => v.hide !== 2)) {
      const label = el('label', 'var');
      if (v.hide !== 1) label.append(el('span', 'var-label', v.label || v.name));
      const sel = el('select');
      sel.multiple = v.multi;
      sel.dataset.var = v.name;
      const opts = (v.includeAll ? [{ text: 'All', value: '$__all' }] : []).concat(v.options);
      for (const o of opts) {
        const opt = el('option', null, o.text);
        opt.value = o.value;
        opt.selected = v.current.includes(o.value);
        sel.append(opt);
      }
      if (v.error) label.title = v.error;
      sel.addEventListener('change', () => {
        params.delete(`var-${v.name}`);
        for (const o of sel.selectedOptions) params.append(`var-${v.name}`, o.value);
        this.navigate();
      });
      label.append(sel);
      bar.append(label);
    }
    const range = el('select', 'range');
    const from = params.get('from') || this.model.time?.from || 'now-1h';
    for (const r of RANGES) {
      const o = el('option', null, `Last ${r}`);
      o.value = `now-${r}`;
      o.selected = from === o.value;
      range.append(o);
    }
    if (![...range.options].some((o) => o.selected)) {
      const o = el('option', null, `${from} to ${params.get('to') || 'now'}`);
      o.value = from;
      o.selected = true;
      range.prepend(o);
    }
    range.addEventListener('change', () => {
      params.set('from', range.value);
      params.set('to', 'now');
      this.navigate();
    });
    const refresh = el('select', 'refresh');
    for (const r of REFRESHES) {
      const o = el('option', null, r || 'Off');
      o.value = r;
      o.selected = (params.get('refresh') || '') === r;
      refresh.append(o);
    }
    refresh.addEventListener('change', () => {
      if (refresh.value) params.set('refresh', refresh.value);
      else params.delete('refresh');
      this.navigate();
    });
    bar.append(range, refresh);
    return bar;
  }

  navigate() {
    location.search = params.toString();
  }

  async render(solo) {
    await this.variables();
    history.replaceState(null, '', `${location.pathname}?${params}`);
    if (solo) {
      const id = Number(params.get('panelId'));
      const model = findPanel(this.model.panels || [], id);
      if (!params.get('panelId') || !model) {
        fail(`Panel ${params.get('panelId') ?? '(no panelId)'} not found in dashboard ${uid}`);
        return;
      }
      const p = new Panel(model, this.ctx);
      p.element.classList.add('solo');
      body.append(p.element);
      this.panels = [p];
    } else {
      if (!kiosk) body.append(this.toolbar());
      this.grid = el('main', 'grid');
      body.append(this.grid);
      this.place();
    }
    await this.loadAll();
    const every = seconds(params.get('refresh'));
    if (every > 0) setInterval(() => this.refresh(), Math.max(1, every) * 1000);
    window.addEventListener('resize', () => this.panels.forEach((p) => p.resize?.()));
  }

  // Which panels are on screen: a refresh reloads those, as Grafana does;
  // one that was off screen at a refresh reloads when it comes into view.
  watch(panel) {
    if (!this.observer) {
      this.visible = new Set();
      this.stale = new Set();
      this.observer = new IntersectionObserver((entries) => {
        for (const e of entries) {
          const p = this.panels.find((x) => x.element === e.target);
          if (!p) continue;
          if (!e.isIntersecting) {
            this.visible.delete(p);
            continue;
          }
          this.visible.add(p);
          if (this.stale.delete(p)) p.load();
        }
      });
    }
    this.observer.observe(panel.element);
  }

  refresh() {
    if (!this.observer) return this.loadAll();
    const shown = [];
    for (const p of this.panels) {
      if (this.visible.has(p)) shown.push(p);
      else this.stale.add(p);
    }
    return this.loadAll(shown);
  }

  place() {
    this.grid.replaceChildren();
    this.observer?.disconnect();
    this.visible?.clear();
    this.stale?.clear();
    this.panels = [];
    let rows = 0;
    for (const it of layout(this.model.panels || [], this.open)) {
      let node;
      if (it.panel.type === 'row') {
        node = el('div', 'row-header', it.panel.title || '');
        node.dataset.rowId = it.panel.id;
        if (it.panel.collapsed) {
          node.classList.add(this.open.has(it.panel.id) ? 'open' : 'closed');
          node.addEventListener('click', () => {
            if (this.open.has(it.panel.id)) this.open.delete(it.panel.id);
            else this.open.add(it.panel.id);
            this.place();
            this.loadAll();
          });
        }
      } else {
        const p = new Panel(it.panel, this.ctx);
        this.panels.push(p);
        this.watch(p);
        node = p.element;
      }
      node.style.gridColumn = `${it.x + 1} / span ${it.w}`;
      node.style.gridRow = `${it.y + 1} / span ${it.h}`;
      rows = Math.max(rows, it.y + it.h);
      this.grid.append(node);
    }
    this.grid.style.gridTemplateRows = `repeat(${rows}, ${CELL}px)`;
    this.grid.style.gap = `${GAP}px`;
  }

  // Loads panels a few at a time, as a browser's connection limit would.
  async loadAll(panels = this.panels) {
    const queue = [...panels];
    const worker = async () => {
      while (queue.length) await queue.shift().load();
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    body.dataset.loaded = String(Date.now());
  }
}

function findPanel(panels, id) {
  for (const p of panels) {
    if (p.id === id) return p;
    const inner = p.panels && findPanel(p.panels, id);
    if (inner) return inner;
  }
  return null;
}

async function index() {
  body.append(el('h1', 'index-title', 'Dashboards'));
  try {
    const j = await getJson('api/dashboards');
    const list = el('ul', 'index');
    for (const d of j.data) {
      const li = el('li');
      const a = el('a', null, d.title || d.uid);
      a.href = `d/${encodeURIComponent(d.uid)}/`;
      li.append(a);
      list.append(li);
    }
    body.append(list);
  } catch (e) {
    fail(e.message);
  }
}

async function main() {
  if (mode === 'index') return index();
  let model;
  try {
    model = (await getJson(`api/dashboards/uid/${encodeURIComponent(uid)}`)).dashboard;
  } catch (e) {
    fail(e.message);
    return;
  }
  document.title = `${model.title || uid} - raymon`;
  try {
    await new Dashboard(model).render(mode === 'solo');
  } catch (e) {
    fail(e.message);
  }
}

main();
