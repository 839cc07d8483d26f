// Prometheus-style pages: /graph (an expression as a table or a graph, with
// range, end and step, and a link that restores the view, in Prometheus's
// `g0.*` URL parameters), /targets, /service-discovery, /status and
// /tsdb-status. They read raymon's HTTP API; every URL is relative to the
// page's <base>, so they work under a path prefix and behind a proxy.

import { align } from './panel.js';

const body = document.body;
const page = body.dataset.mode;
const params = new URLSearchParams(location.search);
body.classList.add('theme-light', 'prom');

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

async function api(path) {
  const r = await fetch(path, { headers: { Accept: 'application/json' } });
  const j = await r.json().catch(() => null);
  if (!j) throw new Error(`${path}: HTTP ${r.status}`);
  if (j.status !== 'success') throw new Error(`${j.errorType}: ${j.error}`);
  return j.data;
}

function labelText(metric) {
  const name = metric.__name__ ?? '';
  const rest = Object.entries(metric).filter(([k]) => k !== '__name__').map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `${name}{${rest.join(', ')}}`;
}

function nav() {
  const bar = el('nav', 'prom-nav');
  for (const [href, text] of [['graph', 'Graph'], ['targets', 'Targets'], ['service-discovery', 'Service Discovery'],
    ['status', 'Status'], ['tsdb-status', 'TSDB Status'], ['dashboards', 'Dashboards']]) {
    const a = el('a', href === page ? 'active' : null, text);
    a.href = href;
    bar.append(a);
  }
  body.append(bar);
}

function table(headers, rows) {
  const t = el('table', 'prom-table');
  const head = el('tr');
  for (const h of headers) head.append(el('th', null, h));
  t.append(head);
  for (const r of rows) {
    const tr = el('tr');
    for (const c of r) {
      const td = el('td');
      if (c instanceof Node) td.append(c);
      else td.textContent = c ?? '';
      tr.append(td);
    }
    t.append(tr);
  }
  return t;
}

function failure(box, e) {
  const d = el('div', 'prom-error', e.message);
  d.dataset.state = 'error';
  box.replaceChildren(d);
}

// Prometheus's durations as the range and step inputs take them: 1h, 30m, 15s.
function seconds(text) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)$/.exec((text || '').trim());
  if (!m) return null;
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 }[m[2]];
}

function graphPage() {
  const form = el('form', 'prom-form');
  const expr = el('textarea', 'prom-expr');
  expr.name = 'expr';
  expr.rows = 2;
  expr.placeholder = 'Expression (press Shift+Enter for newlines)';
  expr.value = params.get('g0.expr') ?? '';
  const tab = el('select', 'prom-tab');
  for (const [v, t] of [['1', 'Table'], ['0', 'Graph']]) {
    const o = el('option', null, t);
    o.value = v;
    o.selected = (params.get('g0.tab') ?? '1') === v;
    tab.append(o);
  }
  const range = el('input', 'prom-range');
  range.value = params.get('g0.range_input') ?? '1h';
  range.title = 'Range';
  const end = el('input', 'prom-end');
  end.placeholder = 'End time (now)';
  end.value = params.get('g0.end_input') ?? '';
  const step = el('input', 'prom-step');
  step.placeholder = 'Res. (s)';
  step.value = params.get('g0.step_input') ?? '';
  const run = el('button', 'prom-execute', 'Execute');
  run.type = 'submit';
  const link = el('a', 'prom-link', 'Link to this view');
  form.append(expr, el('br'), tab, range, end, step, run, link);
  const out = el('div', 'prom-output');
  body.append(form, out);
  expr.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    q.set('g0.expr', expr.value);
    q.set('g0.tab', tab.value);
    q.set('g0.range_input', range.value);
    if (end.value) q.set('g0.end_input', end.value);
    if (step.value) q.set('g0.step_input', step.value);
    history.replaceState(null, '', `${location.pathname}?${q}`);
    link.href = `graph?${q}`;
    execute(expr.value, tab.value, range.value, end.value, step.value, out);
  });
  if (expr.value) form.requestSubmit();
}

async function execute(expr, tab, rangeText, endText, stepText, out) {
  out.dataset.state = 'loading';
  out.replaceChildren(el('div', 'prom-loading', 'Loading...'));
  try {
    const endS = endText ? Date.parse(endText) / 1000 : Date.now() / 1000;
    if (Number.isNaN(endS)) throw new Error(`invalid end time ${JSON.stringify(endText)}`);
    if (tab === '1') {
      const data = await api(`api/v1/query?${new URLSearchParams({ query: expr, time: endS })}`);
      out.replaceChildren(instantTable(data));
      out.dataset.state = 'ok';
      return;
    }
    const span = seconds(rangeText);
    if (!span) throw new Error(`invalid range ${JSON.stringify(rangeText)}: use 5m, 1h, 1d`);
    const step = stepText ? Number(stepText) : Math.max(1, Math.round(span / 250));
    if (!(step > 0)) throw new Error(`invalid resolution ${JSON.stringify(stepText)}: seconds`);
    const q = new URLSearchParams({ query: expr, start: endS - span, end: endS, step });
    const data = await api(`api/v1/query_range?${q}`);
    drawRange(data, out, endS - span, endS);
    out.dataset.state = 'ok';
  } catch (e) {
    failure(out, e);
    out.dataset.state = 'error';
  }
}

function instantTable(data) {
  const rows = [];
  if (data.resultType === 'vector') for (const s of data.result) rows.push([labelText(s.metric), s.value[1]]);
  else if (data.resultType === 'matrix') for (const s of data.result) rows.push([labelText(s.metric), s.values.map((v) => `${v[1]} @${v[0]}`).join('\n')]);
  else rows.push(['', String(data.result[1])]);
  if (!rows.length) return el('div', 'prom-empty', 'Empty query result');
  return table(['Series', 'Value'], rows);
}

function drawRange(data, out, start, end) {
  if (data.resultType !== 'matrix') throw new Error(`a graph needs a range vector, got ${data.resultType}`);
  if (!data.result.length) {
    out.replaceChildren(el('div', 'prom-empty', 'Empty query result'));
    return;
  }
  const target = { series: data.result.map((s) => ({ name: labelText(s.metric), values: s.values.map(([t, v]) => [t, Number(v)]) })) };
  const aligned = align([target]);
  out.replaceChildren();
  const chart = el('div', 'prom-chart');
  out.append(chart);
  const series = [{}].concat(aligned.series.map((s, i) => ({ label: s.name, stroke: `hsl(${(i * 137) % 360} 60% 45%)`, width: 1.5 })));
  if (typeof uPlot === 'undefined') throw new Error('The charting library (uPlot) is not built into this raymon: run scripts/setup-deps, then cargo build.');
  const plot = new uPlot({ width: Math.max(300, out.clientWidth - 8), height: 400, series, scales: { x: { time: true, range: () => [start, end] } } },
    [aligned.x, ...aligned.series.map((s) => s.values)], chart);
  out.raymon = { x: aligned.x, series: aligned.series.map((s) => ({ name: s.name, values: s.values })), plotted: plot.data.slice(1).map((a) => Array.from(a)) };
}

function ago(iso) {
  const t = Date.parse(iso);
  if (!t || t < 0) return 'never';
  return `${((Date.now() - t) / 1000).toFixed(1)}s ago`;
}

function labelsCell(labels) {
  const box = el('div', 'labels');
  for (const [k, v] of Object.entries(labels || {})) box.append(el('span', 'label', `${k}="${v}"`));
  return box;
}

async function targetsPage() {
  const out = el('div', 'prom-output');
  body.append(out);
  try {
    const data = await api('api/v1/targets');
    const pools = new Map();
    for (const t of data.activeTargets) {
      if (!pools.has(t.scrapePool)) pools.set(t.scrapePool, []);
      pools.get(t.scrapePool).push(t);
    }
    for (const [pool, targets] of [...pools].sort()) {
      const up = targets.filter((t) => t.health === 'up').length;
      out.append(el('h2', null, `${pool} (${up}/${targets.length} up)`));
      out.append(table(['Endpoint', 'State', 'Labels', 'Last Scrape', 'Scrape Duration', 'Error'], targets.map((t) => {
        const state = el('span', `health health-${t.health}`, t.health.toUpperCase());
        const row = [t.scrapeUrl, state, labelsCell(t.labels), ago(t.lastScrape), `${(t.lastScrapeDuration * 1000).toFixed(1)}ms`, t.lastError];
        return row;
      })));
    }
    if (!pools.size) out.append(el('div', 'prom-empty', 'No targets'));
    out.dataset.state = 'ok';
  } catch (e) {
    failure(out, e);
  }
}

async function discoveryPage() {
  const out = el('div', 'prom-output');
  body.append(out);
  try {
    const data = await api('api/v1/targets?state=any');
    out.append(el('h2', null, 'Active targets'));
    out.append(table(['Pool', 'Discovered Labels', 'Target Labels'], data.activeTargets.map((t) => [t.scrapePool, labelsCell(t.discoveredLabels), labelsCell(t.labels)])));
    out.append(el('h2', null, 'Dropped targets'));
    out.append(table(['Discovered Labels', 'Target Labels'], data.droppedTargets.map((t) => [labelsCell(t.discoveredLabels), 'Dropped'])));
    out.dataset.state = 'ok';
  } catch (e) {
    failure(out, e);
  }
}

async function statusPage() {
  const out = el('div', 'prom-output');
  body.append(out);
  try {
    const [build, runtime, flags, config] = await Promise.all([
      api('api/v1/status/buildinfo'), api('api/v1/status/runtimeinfo'), api('api/v1/status/flags'), api('api/v1/status/config')]);
    out.append(el('h2', null, 'Runtime Information'), table(['', ''], Object.entries(runtime).map(([k, v]) => [k, String(v)])));
    out.append(el('h2', null, 'Build Information'), table(['', ''], Object.entries(build).map(([k, v]) => [k, String(v)])));
    out.append(el('h2', null, 'Command-Line Flags'), table(['Flag', 'Value'], Object.entries(flags).map(([k, v]) => [`--${k}`, v])));
    out.append(el('h2', null, 'Configuration'), el('pre', 'prom-config', config.yaml));
    out.dataset.state = 'ok';
  } catch (e) {
    failure(out, e);
  }
}

async function tsdbPage() {
  const out = el('div', 'prom-output');
  body.append(out);
  try {
    const d = await api('api/v1/status/tsdb');
    const h = d.headStats;
    out.append(el('h2', null, 'Head Stats'), table(['Number of Series', 'Number of Chunks', 'Number of Label Pairs', 'Current Min Time', 'Current Max Time'],
      [[h.numSeries, h.chunkCount, h.numLabelPairs, new Date(h.minTime).toISOString(), new Date(h.maxTime).toISOString()].map(String)]));
    for (const [key, title, col] of [['seriesCountByMetricName', 'Top 10 series count by metric names', 'Count'],
      ['labelValueCountByLabelName', 'Top 10 label names with value count', 'Count'],
      ['memoryInBytesByLabelName', 'Top 10 label names with high memory usage', 'Bytes'],
      ['seriesCountByLabelValuePair', 'Top 10 series count by label value pairs', 'Count']]) {
      out.append(el('h2', null, title), table(['Name', col], (d[key] || []).map((s) => [s.name, String(s.value)])));
    }
    out.dataset.state = 'ok';
  } catch (e) {
    failure(out, e);
  }
}

nav();
({ graph: graphPage, targets: targetsPage, 'service-discovery': discoveryPage, status: statusPage, 'tsdb-status': tsdbPage }[page])();
