// The dashboard end to end: a real `opensense serve --demo` on a free port, Debian's Chromium
// driven by playwright-core. Registered in CTest as web_e2e (label web); exit 77 (skipped) only
// when /usr/bin/chromium is missing.
//
//   node web/e2e/dashboard.e2e.mjs --binary build/release/opensense --artifacts build/release/web-e2e
//
// Steps: sign in through the dev mailer's link; the overview shows every demo device with a
// value; an alert appears live (no reload) when out-of-range readings are posted with a device
// token; acknowledge it with a note and see the event; the device chart switches ranges; the
// device token is rotated (shown once); a viewer sees no admin actions; another organisation's
// owner sees none of the demo's data. Any console error, page error or failed request fails the
// run. Screenshots (overview, device, alerts; desktop and 360 px phone) go to --artifacts.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

const CHROMIUM = process.env.OPENSENSE_CHROMIUM ?? '/usr/bin/chromium';
const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const binary = path.resolve(arg('--binary', 'build/release/opensense'));
const artifacts = path.resolve(arg('--artifacts', 'build/release/web-e2e'));

if (!fs.existsSync(CHROMIUM)) {
  console.log(`SKIP: ${CHROMIUM} is missing (apt-get install chromium, or scripts/install-deps.sh)`);
  process.exit(77);
}
const { chromium } = await import('playwright-core');

fs.mkdirSync(artifacts, { recursive: true });
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'opensense-web-e2e-'));
const logPath = path.join(artifacts, 'serve.log');
const log = fs.openSync(logPath, 'w');
const server = spawn(binary, ['serve', '--demo', '--demo-history-days', '1', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
  env: { PATH: '/usr/bin:/bin' },
  stdio: ['ignore', log, log],
});
const readLog = () => fs.readFileSync(logPath, 'utf8');

async function waitFor(what, fn, timeoutMs = 30_000, everyMs = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

let browser;
const problems = [];
const results = [];
async function step(name, fn) {
  const start = Date.now();
  try {
    await fn();
    results.push([name, true]);
    console.log(`ok   ${name} (${Date.now() - start} ms)`);
  } catch (e) {
    results.push([name, false]);
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
    throw e;
  }
}

// Fails the run on console errors, page errors and failed requests. Two answers are expected
// and allowed: the session check while signed out (401), and live-update streams cut by a
// navigation or a closing page.
function watch(page, who) {
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (/status of 401/.test(m.text()) && m.location().url.endsWith('/api/v1/auth/session')) return;
    problems.push(`${who}: console error: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => problems.push(`${who}: page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    if (r.url().endsWith('/api/v1/events')) return;  // the stream ends when the page goes
    // A GET still running when the test navigates on is cancelled by the browser, not failed.
    if (r.method() === 'GET' && r.failure()?.errorText === 'net::ERR_ABORTED' && r.url().includes('/api/')) return;
    problems.push(`${who}: request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => {
    if (r.status() < 400) return;
    if (r.status() === 401 && r.url().endsWith('/api/v1/auth/session')) return;
    problems.push(`${who}: ${r.status()} for ${r.request().method()} ${r.url()}`);
  });
}

let exitCode = 1;
try {
  const address = await waitFor('the server to listen', () => /HTTP API listening on http:\/\/([0-9.]+:[0-9]+)/.exec(readLog())?.[1], 120_000);
  const base = `http://${address}`;
  const ownerToken = await waitFor('the demo owner token', () => /owner API token \(shown once\): (osk_\w+)/.exec(readLog())?.[1]);
  await waitFor('the demo to be live', () => /demo: organisation/.test(readLog()), 120_000);
  const apiAs = async (token, method, p, body) => {
    const res = await fetch(base + p, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const owner = (method, p, body) => apiAs(ownerToken, method, p, body);
  const devices = (await owner('GET', '/api/v1/devices')).filter((d) => !d.decommissioned);
  assert.ok(devices.length >= 5, 'the demo has its devices');

  // The sign-in link the dev mailer wrote for `email` after `since` (log offset).
  const linkFor = (email, since) =>
    waitFor(`the sign-in link for ${email}`, () => {
      const text = readLog().slice(since);
      const at = text.indexOf(`To: ${email}`);
      if (at < 0) return null;
      return /(http:\/\/[0-9.:]+\/auth\/magic\?token=[A-Za-z0-9]+)/.exec(text.slice(at))?.[1];
    });
  const signIn = async (page, email, viaForm) => {
    const since = readLog().length;
    if (viaForm) {
      await page.goto(base + '/');
      await page.getByLabel('E-mail address').fill(email);
      await page.getByRole('button', { name: 'Send me a sign-in link' }).click();
      await page.getByText('Check your mail').waitFor();
    } else {
      await fetch(base + '/api/v1/auth/magic-link', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email }) });
    }
    const link = await linkFor(email, since);
    await page.goto(link);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(base + '/');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
  };

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await desktop.newPage();
  watch(page, 'owner');
  page.on('dialog', (d) => d.accept());

  await step('sign in through the dev mailer link', async () => {
    await signIn(page, 'demo@opensense.localhost', true);
  });

  await step('the overview shows every demo device with a value', async () => {
    const tiles = page.getByTestId('device-tile');
    await waitFor('a tile per device', async () => (await tiles.count()) === devices.length);
    for (const d of devices) {
      const tile = page.locator(`[data-testid=device-tile][data-device="${d.id}"]`);
      await tile.getByText(d.name).waitFor();
      const v = await tile.getByTestId('tile-value').innerText();
      assert.match(v, /^-?\d+\.\d °C$/, `${d.name} shows a temperature (got "${v}")`);
    }
    await page.screenshot({ path: path.join(artifacts, 'overview-desktop.png'), fullPage: true });
  });

  const probe = devices[0];
  let alertId;
  await step('an alert appears live when out-of-range readings arrive', async () => {
    await owner('POST', '/api/v1/alert-rules', { name: 'E2E probe above 30 °C', device: probe.id, above: 30, severity: 'critical', delay_minutes: 0 });
    const { token } = await owner('POST', `/api/v1/devices/${probe.id}/token`, {});
    const before = page.url();
    // Stamped a little ahead, so the demo's own live readings (every minute) are older.
    const t = Date.now() + 30_000;
    for (const [i, v] of [31.5, 32.25].entries()) {
      const res = await fetch(base + '/api/v1/ingest', {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ ts: t + i * 1000, temperature: v }),
      });
      assert.equal(res.status, 200, await res.text());
    }
    const item = page.getByTestId('open-alerts').getByText(`${probe.name}: E2E probe above 30 °C`);
    await item.waitFor({ timeout: 15_000 });
    assert.equal(page.url(), before, 'no navigation or reload');
    const tile = page.locator(`[data-testid=device-tile][data-device="${probe.id}"]`);
    await waitFor('the tile to show the new value', async () => (await tile.getByTestId('tile-value').innerText()) === '32.3 °C', 10_000);
    await tile.getByText('Alert').waitFor();
    const href = await item.getAttribute('href');
    alertId = Number(/\/alerts\/(\d+)/.exec(href)[1]);
  });

  await step('acknowledge the alert with a note and see the event', async () => {
    await page.getByTestId('open-alerts').getByText(`${probe.name}: E2E probe above 30 °C`).click();
    await page.waitForURL(`${base}/alerts/${alertId}`);
    await page.getByLabel('Corrective action (what did you do?)').fill('Moved the stock to the walk-in; technician called.');
    await page.getByRole('button', { name: 'Acknowledge' }).click();
    await page.getByText('Acknowledged.', { exact: true }).waitFor();
    const events = page.getByTestId('alert-events');
    await events.getByText('acknowledged').waitFor();
    await events.getByText('Moved the stock to the walk-in; technician called.').waitFor();
    await page.screenshot({ path: path.join(artifacts, 'alert-desktop.png'), fullPage: true });
    await page.goto(base + '/alerts');
    await page.getByTestId('alerts-table').waitFor();
    await page.screenshot({ path: path.join(artifacts, 'alerts-desktop.png'), fullPage: true });
  });

  await step('the device chart switches ranges', async () => {
    await page.goto(`${base}/devices/${probe.id}`);
    await page.locator('.chart canvas').waitFor();
    // `auto` picks the coarsest level with at least ~300 points: raw for 6 h and 24 h, 5-minute
    // rollups for 7 days, hourly ones for 30 days (with the min/max band).
    const caption = page.getByTestId('chart-caption');
    const picker = page.getByTestId('range-picker');
    await caption.getByText(/resolution raw/).waitFor();
    await picker.getByRole('link', { name: '7 d' }).click();
    await caption.getByText(/resolution 5m \(line: mean; band: min to max\)/).waitFor();
    await picker.getByRole('link', { name: '30 d' }).click();
    await caption.getByText(/resolution 1h/).waitFor();
    await picker.getByRole('link', { name: '6 h' }).click();
    await caption.getByText(/resolution raw/).waitFor();
    await page.locator('.chart canvas').waitFor();
    await picker.getByRole('link', { name: '24 h' }).click();
    await caption.getByText(/resolution raw/).waitFor();
    await page.screenshot({ path: path.join(artifacts, 'device-desktop.png'), fullPage: true });
  });

  await step('rotate the device token: the new token is shown once', async () => {
    await page.getByRole('button', { name: 'Rotate token' }).click();
    const secret = page.locator('input.secret');
    await secret.waitFor();
    assert.match(await secret.inputValue(), /^osd_/);
    await page.getByRole('button', { name: 'Copy' }).waitFor();
  });

  await step('create and edit a rule', async () => {
    await page.goto(base + '/rules');
    await page.getByRole('button', { name: 'New rule' }).click();
    await page.getByLabel('Name', { exact: true }).fill('E2E fridge above 9 °C');
    await page.getByLabel('Watches').selectOption(`device:${probe.id}`);
    await page.getByLabel('Above', { exact: true }).fill('9');
    await page.getByLabel('Delay (minutes out of range before it fires)').fill('5');
    await page.getByRole('button', { name: 'Save rule' }).click();
    await page.getByText('Rule "E2E fridge above 9 °C" created.').waitFor();
    const row = page.getByRole('row', { name: /E2E fridge above 9 °C/ });
    await row.getByText('temperature above 9, after 5 min').waitFor();
    await row.getByRole('button', { name: 'Edit' }).click();
    await page.getByLabel('Above', { exact: true }).fill('10');
    await page.getByRole('button', { name: 'Save rule' }).click();
    await page.getByText('Rule "E2E fridge above 9 °C" saved.').waitFor();
    await row.getByText('temperature above 10, after 5 min').waitFor();
  });

  await step('create a channel and send a test message', async () => {
    await page.goto(base + '/channels');
    await page.getByLabel('Name', { exact: true }).fill('E2E kitchen staff');
    await page.getByLabel('Target', { exact: true }).fill('staff@opensense.localhost');
    await page.getByRole('button', { name: 'Create channel' }).click();
    await page.getByText('Channel created.').waitFor();
    const row = page.getByRole('row', { name: /E2E kitchen staff/ });
    await row.getByRole('button', { name: 'Send test message' }).click();
    await page.getByText('Test message queued for E2E kitchen staff.').waitFor();
    // Edit: rename and retarget; the row shows the new values.
    await row.getByRole('button', { name: 'Edit E2E kitchen staff' }).click();
    await page.getByLabel('Name', { exact: true }).fill('E2E night shift');
    await page.getByLabel('Target', { exact: true }).fill('night@opensense.localhost');
    await page.getByRole('button', { name: 'Save channel' }).click();
    await page.getByText('Channel saved.').waitFor();
    const edited = page.getByRole('row', { name: /E2E night shift/ });
    await edited.getByText('night@opensense.localhost').waitFor();
    if (await page.getByRole('row', { name: /E2E kitchen staff/ }).count() !== 0) throw new Error('the old channel name is still listed');
  });

  await step('reports: the download links answer', async () => {
    await page.goto(base + '/reports');
    const link = page.getByRole('link', { name: 'Daily table (CSV)' });
    await link.waitFor();
    await page.getByRole('link', { name: 'Compliance report (PDF)' }).waitFor();
    const res = await desktop.request.get(base + (await link.getAttribute('href')));
    assert.equal(res.status(), 200, await res.text());
    assert.match(res.headers()['content-type'], /text\/csv/);
  });

  await step('settings: an API token shown once, revoked; the audit trail', async () => {
    await page.goto(base + '/settings');
    await page.getByLabel('Label', { exact: true }).fill('e2e script');
    await page.getByRole('button', { name: 'Create API token' }).click();
    assert.match(await page.locator('input.secret').inputValue(), /^osk_/);
    const row = page.getByRole('region', { name: 'Your API tokens' }).getByRole('row', { name: /e2e script/ });
    await row.getByRole('button', { name: 'Revoke' }).click();
    await page.getByText('Token revoked.').waitFor();
    await row.getByText('revoked or expired').waitFor();
    await page.getByRole('region', { name: 'Audit trail' }).getByText('alert.ack').first().waitFor();
  });

  await step('keyboard: the skip link comes first and moves focus to the content', async () => {
    await page.goto(base + '/');
    await page.getByTestId('device-tile').first().waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'main');
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement?.closest('[data-testid=device-tile], .open-alerts') !== null);
    assert.ok(focused, 'after the skip link, Tab reaches the page content');
  });

  await step('200 % zoom: no sideways scrolling', async () => {
    const zoomed = await browser.newContext({ viewport: { width: 640, height: 450 }, deviceScaleFactor: 2, storageState: await desktop.storageState() });
    const p = await zoomed.newPage();
    watch(p, 'zoom');
    for (const url of ['/', `/devices/${probe.id}`, `/alerts/${alertId}`, '/rules', '/settings']) {
      await p.goto(base + url);
      await p.locator('main h1').first().waitFor();
      const width = await p.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 640, `${url} fits 640 CSS px, i.e. 1280 px at 200 % (scroll width ${width})`);
    }
    await zoomed.close();
  });

  await step('phone width (360 px): overview, device, alerts', async () => {
    const phone = await browser.newContext({ viewport: { width: 360, height: 740 }, storageState: await desktop.storageState(), isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    watch(p, 'phone');
    await p.goto(base + '/');
    await waitFor('tiles', async () => (await p.getByTestId('device-tile').count()) === devices.length);
    const width = await p.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 360, `the overview fits 360 px (scroll width ${width})`);
    await p.screenshot({ path: path.join(artifacts, 'overview-phone.png'), fullPage: true });
    await p.goto(`${base}/devices/${probe.id}`);
    await p.locator('.chart canvas').waitFor();
    await p.screenshot({ path: path.join(artifacts, 'device-phone.png'), fullPage: true });
    const past = p.waitForResponse((r) => r.url().includes('/api/v1/alerts?state=resolved'));
    await p.goto(`${base}/alerts?tab=past`);
    await p.getByRole('heading', { name: 'Alerts' }).waitFor();
    await past;
    await p.goto(`${base}/alerts`);
    await p.getByTestId('alerts-table').waitFor();
    await p.screenshot({ path: path.join(artifacts, 'alerts-phone.png'), fullPage: true });
    await phone.close();
  });

  await step('a viewer sees no admin actions', async () => {
    await owner('POST', '/api/v1/members', { email: 'viewer@opensense.localhost', role: 'viewer' });
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p = await ctx.newPage();
    watch(p, 'viewer');
    await signIn(p, 'viewer@opensense.localhost', false);
    assert.equal(await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Channels' }).count(), 0);
    await p.goto(`${base}/alerts/${alertId}`);
    await p.getByTestId('alert-events').waitFor();
    assert.equal(await p.getByRole('button', { name: 'Acknowledge' }).count(), 0);
    assert.equal(await p.getByRole('button', { name: 'Resolve' }).count(), 0);
    await p.goto(`${base}/devices/${probe.id}`);
    await p.getByRole('heading', { name: 'Latest values' }).waitFor();
    assert.equal(await p.getByRole('button', { name: 'Rotate token' }).count(), 0);
    await p.goto(`${base}/rules`);
    await p.getByRole('heading', { name: 'Alert rules' }).waitFor();
    assert.equal(await p.getByRole('button', { name: /New rule|Edit|Delete/ }).count(), 0);
    await p.goto(`${base}/settings`);
    await p.getByRole('heading', { name: 'Members' }).waitFor();
    assert.equal(await p.getByRole('button', { name: 'Invite' }).count(), 0);
    assert.equal(await p.getByRole('button', { name: 'Remove' }).count(), 0);
    await ctx.close();
  });

  await step("another organisation's owner sees none of the demo's data", async () => {
    const created = spawnSync(binary, ['org', 'create', '--name', 'Other Bakery', '--owner-email', 'other@opensense.localhost', '--data-dir', dataDir, '--json'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    assert.equal(created.status, 0, created.stderr);
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p = await ctx.newPage();
    watch(p, 'other');
    await signIn(p, 'other@opensense.localhost', false);
    await p.getByText('All 0 devices are fine.').waitFor();
    const body = await p.locator('body').innerText();
    for (const d of devices) assert.ok(!body.includes(d.name), `${d.name} is not shown to another organisation`);
    assert.equal(await p.getByTestId('device-tile').count(), 0);
    // With the same session cookie (outside the page, so the expected 404 is no page error).
    for (const url of [`/api/v1/devices/${probe.id}`, `/api/v1/alerts/${alertId}`]) {
      const res = await ctx.request.get(base + url);
      assert.equal(res.status(), 404, `${url} is not found for another organisation`);
    }
    await ctx.close();
  });

  await step('no console errors and no failed requests', async () => {
    assert.deepEqual(problems, []);
  });
  exitCode = 0;
} catch (e) {
  if (!results.some(([, ok]) => !ok)) console.log(`FAIL ${e.stack ?? e}`);
  if (problems.length) console.log('problems seen:\n  ' + problems.join('\n  '));
  console.log(`server log: ${logPath}`);
} finally {
  await browser?.close().catch(() => {});
  if (server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
}
const passed = results.filter(([, ok]) => ok).length;
console.log(`${passed} passed, ${results.length - passed} failed`);
console.log(`screenshots: ${artifacts}`);
process.exit(exitCode);
