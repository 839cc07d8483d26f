// Opens a page in headless Chromium (Debian's, driven by playwright-core),
// waits until every dashboard panel in the page and its iframes has left
// the "loading" state, and prints what it saw as JSON: each panel's state,
// message and drawn data, console errors and uncaught exceptions, and load
// timings. Run by the Rust tests in tests/it/ui.rs.
//
// usage: node check.cjs '<json>' where json is
//   { url, screenshot?, timeoutMs?, viewport?: {width, height}, frames?: bool,
//     drawn?: [panelId...], repeat?: n, waitFor?: css selector }

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
      drawn: drawn.includes(Number(e.dataset.panelId)) ? (e.raymon ?? null) : undefined,
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
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
    page.on('pageerror', (e) => errors.push(`exception: ${e.message}`));
    for (let run = 0; run < (args.repeat ?? 1); run++) {
      const started = Date.now();
      await page.goto(args.url, { waitUntil: 'load', timeout: timeoutMs });
      if (args.waitFor) await page.waitForSelector(args.waitFor, { timeout: timeoutMs });
      let panels = [];
      let pageErrors = [];
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
        const settled = panels.length > 0 && panels.every((p) => p.state !== 'loading');
        if (settled || pageErrors.length || Date.now() - started > timeoutMs) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const drawnMs = Date.now() - started;
      const timing = await page.evaluate(() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const res = performance.getEntriesByType('resource');
        const last = res.reduce((m, r) => Math.max(m, r.responseEnd), 0);
        return { domContentLoaded: nav?.domContentLoadedEventEnd ?? null, load: nav?.loadEventEnd ?? null, lastResourceEnd: last, resources: res.length };
      });
      out.runs.push({ drawnMs, timing, panels, pageErrors });
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
