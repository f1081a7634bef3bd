// Time to first render of the dashboard's overview in Chromium with N devices (default 50), and
// the gzip size of the dashboard's JS and CSS. Not part of the test suite; docs/performance.md
// records its output.
//
//   node bench/web_overview.mjs --binary build/release/opensense [--devices 50] [--runs 7]
//
// It starts `opensense serve --demo --demo-devices N --demo-history-days 1` on a free port,
// signs in through the dev mailer's link, then for each run opens a fresh page (empty cache:
// a new browser context) and measures, in the page, from navigation start until every device
// tile shows its value (the overview's data: devices, sites, latest, sparklines, open alerts).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.resolve('web/package.json'));
const { chromium } = require('playwright-core');
const args = process.argv.slice(2);
const arg = (n, d) => (args.includes(n) ? args[args.indexOf(n) + 1] : d);
const binary = path.resolve(arg('--binary', 'build/release/opensense'));
const devices = Number(arg('--devices', '50'));
const runs = Number(arg('--runs', '7'));

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'opensense-web-bench-'));
const logPath = path.join(dataDir, 'serve.log');
const log = fs.openSync(logPath, 'w');
const server = spawn(binary, ['serve', '--demo', '--demo-devices', String(devices), '--demo-history-days', '1', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
  env: { PATH: '/usr/bin:/bin' },
  stdio: ['ignore', log, log],
});
const readLog = () => fs.readFileSync(logPath, 'utf8');
const until = async (fn, ms = 300_000) => {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out; log: ' + logPath);
    await new Promise((r) => setTimeout(r, 100));
  }
};
let browser;
try {
  const address = await until(() => /HTTP API listening on http:\/\/([0-9.]+:[0-9]+)/.exec(readLog())?.[1]);
  await until(() => /demo: organisation/.test(readLog()));
  const base = `http://${address}`;
  const since = readLog().length;
  await fetch(base + '/api/v1/auth/magic-link', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"email":"demo@opensense.localhost"}' });
  const token = await until(() => /auth\/magic\?token=([A-Za-z0-9]+)/.exec(readLog().slice(since))?.[1], 30_000);
  const login = await fetch(base + '/api/v1/auth/magic-link/complete', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Origin: base },
    body: JSON.stringify({ token }),
  });
  const cookie = login.headers.get('set-cookie').split(';')[0].split('=');
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const times = [];
  for (let i = 0; i < runs; i++) {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await ctx.addCookies([{ name: cookie[0], value: cookie[1], url: base }]);
    const page = await ctx.newPage();
    await page.goto(base + '/', { waitUntil: 'commit' });
    await page.waitForFunction((n) => {
      const values = [...document.querySelectorAll('[data-testid=tile-value]')];
      return values.length === n && values.every((v) => /\d/.test(v.textContent ?? ''));
    }, devices, { polling: 'raf', timeout: 60_000 });
    times.push(await page.evaluate(() => performance.now()));
    await ctx.close();
  }
  times.sort((a, b) => a - b);
  const sizes = JSON.parse(fs.readFileSync(path.resolve(path.dirname(binary), 'src/web/dashboard/sizes.json'), 'utf8'));
  const js = Object.entries(sizes).filter(([u]) => /\.(js|css)$/.test(u));
  console.log(`chromium ${browser.version()}, ${devices} devices, ${runs} runs (fresh context each: empty cache)`);
  console.log(`time to first render of the overview: median ${times[Math.floor(runs / 2)].toFixed(0)} ms, min ${times[0].toFixed(0)} ms, max ${times[runs - 1].toFixed(0)} ms`);
  for (const [u, s] of js) console.log(`${u}: ${s.bytes} bytes, ${s.gzip} gzip`);
  console.log(`JS+CSS: ${js.reduce((n, [, s]) => n + s.bytes, 0)} bytes, ${js.reduce((n, [, s]) => n + s.gzip, 0)} gzip`);
} finally {
  await browser?.close().catch(() => {});
  if (server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
}
