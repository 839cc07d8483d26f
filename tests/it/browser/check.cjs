// Opens a page in headless Chromium (Debian's, driven by playwright-core),
// waits until every dashboard panel in the page and its iframes has left
// the "loading" state, and prints what it saw as JSON: each panel's state,
// message and drawn data, console errors and uncaught exceptions, and load
// timings. Run by the Rust tests in tests/it/ui.rs.
//
// usage: node check.cjs '<json>' where json is
//   { url, screenshot?, timeoutMs?, viewport?: {width, height}, frames?: bool,
//     drawn?: [panelId...], repeat?: n, waitFor?: css selector, expandRows?: bool,
//     minPanels?: n, settleMs?: ms, read?: css selector of an element with data-state,
//     holdMs?: ms to keep the page open at the end, afterHold?: bool to read the
//     panels again after it (as `out.afterHold`) }
// Console errors and exceptions come with the URL of the frame that raised them.

const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

const args = JSON.parse(process.argv[2]);
const timeoutMs = args.timeoutMs ?? 60000;

// What the page's panels say, in this frame.
function panelsIn(frame, drawn) {
  return frame.evaluate((drawn) => {
    return [...document.querySelectorAll('[data-panel-state]')].map((e) => ({
      id: Number(e.dataset.panelId),
      type: e.dataset.panelType,
      title: e.querySelector('.panel-title')?.textContent ?? '',
      state: e.dataset.panelState,
      message: e.querySelector('.panel-message')?.textContent ?? '',
      // Numbers as JavaScript prints them (shortest round trip), so that the
      // test reads back exactly the doubles uPlot holds.
      drawn: drawn.includes(Number(e.dataset.panelId)) && e.raymon
        ? {
          targets: e.raymon.targets,
          x: e.raymon.x.map(String),
          plotted: (e.raymon.plotted ?? []).map((a) => a.map((v) => (v == null ? null : String(v)))),
          kept: e.raymon.kept ?? 0,
        }
        : undefined,
    }));
  }, drawn);
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raymon-chromium-'));
  // A fresh profile each run (playwright passes it as --user-data-dir).
  const browser = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    viewport: args.viewport ?? { width: 1600, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const errors = [];
  const out = { runs: [] };
  try {
    const page = browser.pages()[0] ?? (await browser.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push({ kind: 'console', text: m.text(), url: m.location()?.url ?? '' });
    });
    page.on('pageerror', (e) => errors.push({ kind: 'exception', text: e.message, url: page.url() }));
    for (let run = 0; run < (args.repeat ?? 1); run++) {
      const started = Date.now();
      await page.goto(args.url, { waitUntil: 'load', timeout: timeoutMs });
      if (args.waitFor) await page.waitForSelector(args.waitFor, { timeout: timeoutMs });
      if (args.expandRows) {
        // Opens every collapsed row, one at a time (each opening lays the
        // grid out again).
        await page.waitForSelector('.grid', { timeout: timeoutMs });
        for (;;) {
          const closed = await page.$('.row-header.closed');
          if (!closed) break;
          await closed.click();
        }
      }
      if (args.read) {
        // A page other than a dashboard: wait until the element is done.
        await page.waitForSelector(`${args.read}[data-state="ok"], ${args.read}[data-state="error"]`, { timeout: timeoutMs });
        const read = await page.$eval(args.read, (e) => ({
          state: e.dataset.state,
          text: e.innerText.slice(0, 20000),
          drawn: e.raymon ? { series: e.raymon.series.length, points: e.raymon.series.reduce((n, s) => n + s.values.filter((v) => v != null).length, 0) } : null,
        }));
        out.runs.push({ drawnMs: Date.now() - started, read, url: page.url() });
        continue;
      }
      let panels = [];
      let pageErrors = [];
      // Settled means no panel loading and the panel count unchanged for
      // settleMs (iframes may appear one after another).
      let stableSince = null;
      let lastCount = -1;
      for (;;) {
        panels = [];
        pageErrors = [];
        const frames = args.frames === false ? [page.mainFrame()] : page.frames();
        for (const f of frames) {
          try {
            for (const p of await panelsIn(f, args.drawn ?? [])) panels.push({ frame: f.url(), ...p });
            pageErrors.push(...(await f.evaluate(() => [...document.querySelectorAll('.page-error')].map((e) => e.textContent))));
          } catch (e) {
            // A frame navigating away; the next round sees it again.
          }
        }
        const quiet = panels.length > 0 && panels.every((p) => p.state !== 'loading') && panels.length >= (args.minPanels ?? 1);
        if (!quiet || panels.length !== lastCount) stableSince = null;
        else if (stableSince == null) stableSince = Date.now();
        lastCount = panels.length;
        const settled = stableSince != null && Date.now() - stableSince >= (args.settleMs ?? 0);
        if (settled || pageErrors.length || Date.now() - started > timeoutMs) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const drawnMs = (stableSince ?? Date.now()) - started;
      const timing = await page.evaluate(() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const res = performance.getEntriesByType('resource');
        const last = res.reduce((m, r) => Math.max(m, r.responseEnd), 0);
        return { domContentLoaded: nav?.domContentLoadedEventEnd ?? null, load: nav?.loadEventEnd ?? null, lastResourceEnd: last, resources: res.length };
      });
      out.runs.push({ drawnMs, timing, panels, pageErrors });
    }
    // Keeps the page open (its refresh timer running), for CPU measurements.
    if (args.holdMs) await new Promise((r) => setTimeout(r, args.holdMs));
    if (args.afterHold) {
      out.afterHold = [];
      for (const f of page.frames()) out.afterHold.push(...(await panelsIn(f, args.drawn ?? [])));
    }
    if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
    out.url = page.url();
  } finally {
    await browser.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  out.errors = errors;
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String(e.stack || e));
  process.exit(2);
});
