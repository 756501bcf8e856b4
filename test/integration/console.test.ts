/**
 * The operator console (issue 14 item 5), end to end in headless Chromium (Debian's /usr/bin/chromium,
 * driven by playwright-core) against a real 2-of-3 cluster started from source:
 *
 * - the page and its assets: served without a key, with the strict Content-Security-Policy, nosniff,
 *   no-referrer and no-store; the console's JSON routes: 401 without a key, 403 for a tenant key;
 * - a scripted flow (a tenant, keygens in two tenants, signatures, a rotation, one sign session left
 *   waiting for a player that never joins), then the page on node 1's real HTTP endpoint: a tenant key
 *   gets a clear refusal; with the admin key each section shows what the flow made (nodes online and
 *   the coordinator, versions and backends; every tenant's key versions with states and rotation status;
 *   the waiting session; a graph per series; the audit log verified in the browser, nothing red);
 * - the key lives in memory only: not in localStorage, sessionStorage, cookies, the URL or the DOM;
 *   "Forget key" clears every section;
 * - every request the page made went to the node's own origin, and no CSP violation or script error;
 * - tampering, through Playwright's page.route on the audit export: one edited entry is red and no
 *   other; a checkpoint with a broken signature makes exactly the entries it covers red.
 *
 * Screenshots go to test-output/console/ (gitignored; docs/console.md links them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page, type Request } from 'playwright-core';
import { ACT_AS_TENANT_HEADER } from '../../contract/http.js';
import { ACT_AS_TENANT_HEADER_FOR_CONSOLE, CONSOLE_PATHS, CONSOLE_STATIC_URLS } from '../../contract/console-paths.js';
import { CONSOLE_CSP } from '../../node/http/console.js';
import { message32, startTestCluster, waitFor, type TestCluster } from '../helpers/cluster.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOTS = join(root, 'test-output', 'console');
const CHROMIUM = '/usr/bin/chromium';

describe('operator console', () => {
  let tc: TestCluster;
  let browser: Browser;
  let base: string;
  let adminKey: string;
  let tenantKey: string;
  /** The sign session left waiting on node 1 (its player 2 never joins): settles when the coordinator times it out or the cluster stops. */
  let waiting: Promise<unknown> | undefined;
  let waitingSession: string;

  beforeAll(async () => {
    // The bundle the node serves (dist/console under the package root), as `npm run build` makes it.
    execFileSync(process.execPath, [join(root, 'scripts', 'build-console.mjs')], { cwd: root, stdio: 'pipe' });
    mkdirSync(SHOTS, { recursive: true });
    // A checkpoint every 4 entries: several checkpoints, so one can fail and cover only part of the log.
    tc = await startTestCluster({ nodes: 3, threshold: 2, env: { TESSERA_AUDIT_CHECKPOINT_EVERY: '4' } });
    const node1 = tc.dev.cluster.nodes[0]!;
    base = node1.url.replace(/\/$/, '');
    adminKey = node1.apiKey;
    const c = tc.cluster;
    await c.createTenant('acme');
    tenantKey = (await tc.client(1).createApiKey('acme', 'tenant')).apiKey;
    const acme = c.forTenant('acme');
    await Promise.all([
      c.keygen({ keyId: 'payments', suite: 'ed25519', rotationPeriodMs: 30 * 86_400_000 }),
      acme.keygen({ keyId: 'acme-signing', suite: 'ed25519' }),
    ]);
    await c.sign({ keyId: 'payments', message: message32('console 1'), presigned: false });
    await acme.sign({ keyId: 'acme-signing', message: message32('console 2'), presigned: false });
    await c.rotate({ keyId: 'payments' });
    await c.sign({ keyId: 'payments', message: message32('console 3'), presigned: false });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-background-networking'] });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await tc?.close();
    await waiting;
  }, 60_000);

  it('serves the page and its assets without a key, with the strict headers; the JSON routes are admin-only', async () => {
    expect(ACT_AS_TENANT_HEADER_FOR_CONSOLE).toBe(ACT_AS_TENANT_HEADER);
    for (const url of CONSOLE_STATIC_URLS) {
      const r = await fetch(`${base}${url}`);
      expect(r.status, url).toBe(200);
      expect(r.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('referrer-policy')).toBe('no-referrer');
      expect(r.headers.get('cache-control')).toBe('no-store');
    }
    expect(CONSOLE_CSP).toContain("default-src 'none'");
    expect(CONSOLE_CSP).toContain("script-src 'self'");
    expect(CONSOLE_CSP).not.toContain('unsafe');
    const html = await (await fetch(`${base}/console`)).text();
    expect(html).not.toMatch(/<script>|<style|\sstyle=|\son[a-z]+=|https?:\/\//i);
    for (const path of [CONSOLE_PATHS.status, CONSOLE_PATHS.sessions, CONSOLE_PATHS.metricsHistory]) {
      expect((await fetch(`${base}${path}`)).status, path).toBe(401);
      expect((await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${tenantKey}` } })).status, path).toBe(403);
      const ok = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${adminKey}` } });
      expect(ok.status, path).toBe(200);
      const text = await ok.text();
      expect(text).not.toContain(adminKey);
    }
    // Only the page's own files pass without a key.
    expect((await fetch(`${base}/console/other.js`)).status).toBe(401);
  });

  describe('in Chromium', () => {
    let page: Page;
    const requests: string[] = [];
    const problems: string[] = [];

    beforeAll(async () => {
      const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
      page = await context.newPage();
      page.on('request', (r: Request) => requests.push(r.url()));
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('console', (m) => {
        // Chromium logs each 401/403 answer as "Failed to load resource" (the tenant key's refusal): not a problem.
        if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`console ${m.type()}: ${m.text()}`);
      });
      await page.goto(`${base}/console`);
    });

    const paste = async (key: string) => {
      await page.fill('#api-key', key);
      await page.click('#connect');
    };

    it('refuses a tenant key with a clear message and keeps nothing', async () => {
      await paste(tenantKey);
      await page.waitForSelector('#message:has-text("tenant API key")');
      expect(await page.textContent('#message')).toContain('needs an admin API key');
      expect(await page.locator('#keys .body').textContent()).toBe('');
      expect(await page.inputValue('#api-key')).toBe('');
    });

    it('shows health, keys, sessions in flight, metrics and the verified audit log for the admin key', async () => {
      // A session in flight: node 1 joins with players 1 and 2; node 2 is never asked, so it waits
      // (until the coordinator's 30 s session timeout, or the cluster stops).
      waitingSession = randomBytes(16).toString('hex');
      waiting = fetch(`${base}/v1/keys/acme-signing/sign`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tenantKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ sessionId: waitingSession, message: Buffer.from(message32('console waiting')).toString('hex'), players: [1, 2] }),
      }).catch(() => undefined);
      await waitFor('the waiting session on node 1', async () => {
        const r = await fetch(`${base}${CONSOLE_PATHS.sessions}`, { headers: { authorization: `Bearer ${adminKey}` } });
        return ((await r.json()) as { sessions: { sessionId: string }[] }).sessions.some((x) => x.sessionId === waitingSession);
      });
      await paste(adminKey);
      await page.waitForSelector('#audit-summary');
      await page.waitForSelector('#keys table');
      await page.waitForSelector('#sessions table');
      await page.waitForSelector('#metrics figure.chart');

      // Health: this node, the coordinator, every member online, versions, backends.
      const health = (await page.locator('#health').textContent()) ?? '';
      expect(health).toContain('connected');
      expect(health).toContain('3 of 3');
      for (const n of [1, 2, 3]) expect(await page.locator(`#health [data-node="${n}"]`).getAttribute('class')).toContain('online');
      expect(health).toMatch(/Tessera version\s*0\.\d+\.\d+/);
      expect(health).toContain(process.version.split('.')[0]!);
      expect(health).toContain('edwards25519');
      expect(await page.textContent('#node-name')).toContain('node 1');

      // Keys: both tenants, every version with its state and rotation status.
      const rows = await page.locator('#keys tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
      const row = (tenant: string, key: string, version: number) => rows.find((r) => r[0] === tenant && r[1] === key && r[2] === String(version));
      expect(row('default', 'payments', 1)?.[4]).toBe('retired');
      expect(row('default', 'payments', 2)?.[4]).toBe('active');
      expect(row('default', 'payments', 2)?.[7]).toMatch(/^ok every 30 d, due /);
      expect(row('acme', 'acme-signing', 1)?.[4]).toBe('active');
      expect(row('acme', 'acme-signing', 1)?.[7]).toBe('no period');
      expect(row('acme', 'acme-signing', 1)?.[5]).toBe('2 of 3');
      expect(rows).toHaveLength(3);

      // The session waiting for node 2.
      const sessions = (await page.locator('#sessions').textContent()) ?? '';
      expect(sessions).toContain(waitingSession.slice(0, 12));
      expect(sessions).toContain('acme-signing');
      expect(sessions).toMatch(/sign/);
      expect(sessions).toContain('1, 2');

      // Graphs: one per series, inline SVG, each with at least one sample.
      const charts = await page.locator('#metrics figure.chart').evaluateAll((fs) => fs.map((f) => ({ title: f.getAttribute('data-chart'), points: Number(f.getAttribute('data-points')), svg: f.querySelector('svg') !== null })));
      expect(charts.map((c) => c.title)).toEqual(['Operations per interval', 'Sessions in flight', 'Nodes online', 'Audit entries', 'Resident memory']);
      for (const c of charts) {
        expect(c.svg).toBe(true);
        expect(c.points).toBeGreaterThanOrEqual(1);
      }

      // Audit: verified in the browser, nothing red, the flow's operations on the timeline.
      expect(await page.getAttribute('#audit-summary', 'class')).toBe('ok');
      expect(await page.textContent('#audit-summary')).toMatch(/^Verified in this browser/);
      expect(await page.locator('#audit li.bad').count()).toBe(0);
      const timeline = (await page.locator('#audit ol').textContent()) ?? '';
      for (const word of ['keygen · ok', 'rotate · ok', 'sign · ok', 'tenant.create · ok', 'audit.export · ok']) expect(timeline).toContain(word);
      expect(await page.locator('#audit li.checkpoint').count()).toBeGreaterThan(2);

      await page.screenshot({ path: join(SHOTS, 'console-overview.png'), fullPage: true });
    });

    it('keeps the key in memory only: no storage, cookie, URL or DOM holds it', async () => {
      // A browser-side script (as text: the test program has no DOM types) that reports where the key is found.
      const where = await page.evaluate(`(() => {
        const key = ${JSON.stringify(adminKey)};
        const storage = (s) => Array.from({ length: s.length }, (_, i) => s.key(i) + '=' + s.getItem(s.key(i))).join(';');
        return {
          local: storage(localStorage),
          session: storage(sessionStorage),
          cookie: document.cookie,
          url: location.href,
          dom: document.documentElement.outerHTML.includes(key),
          input: document.querySelector('#api-key').value,
          attributes: [...document.querySelectorAll('*')].some((e) => [...e.attributes].some((a) => a.value.includes(key))),
        };
      })()`);
      expect(where).toEqual({ local: '', session: '', cookie: '', url: `${base}/console`, dom: false, input: '', attributes: false });
      expect(await page.context().cookies()).toEqual([]);
    });

    it('marks exactly the tampered entry red', async () => {
      let tampered = 0;
      await page.route('**/v1/admin/audit', async (route) => {
        const response = await route.fetch();
        const body = (await response.json()) as { format: number; entries: string[]; checkpoints: string[] };
        // The first successful signature becomes a denied one, without re-hashing: an edit.
        const i = body.entries.findIndex((t) => {
          const e = JSON.parse(t) as { operation: string; outcome: string };
          return e.operation === 'sign' && e.outcome === 'ok';
        });
        const entry = JSON.parse(body.entries[i]!) as { seq: number; outcome: string };
        tampered = entry.seq;
        body.entries[i] = JSON.stringify({ ...entry, outcome: 'denied' });
        await route.fulfill({ response, json: body });
      });
      await page.click('#refresh');
      await page.waitForSelector('#audit-summary.bad');
      expect(tampered).toBeGreaterThan(0);
      const red = await page.locator('#audit li.entry.bad').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-seq')));
      expect(red).toEqual([String(tampered)]);
      expect(await page.locator(`#audit li[data-seq="${tampered}"] .why`).first().textContent()).toMatch(/^edited: /);
      expect(await page.locator('#audit li.entry.ok').count()).toBeGreaterThan(5);
      expect(await page.textContent('#audit-summary')).toContain(`edited at seq ${tampered}`);
      await page.locator(`#audit li[data-seq="${tampered}"]`).scrollIntoViewIfNeeded();
      await page.locator('#audit').screenshot({ path: join(SHOTS, 'console-audit-tampered-entry.png') });
      await page.unroute('**/v1/admin/audit');
    });

    it('marks red exactly the entries a checkpoint with a broken signature covers', async () => {
      let covered: number[] = [];
      let checkpointSeq = 0;
      await page.route('**/v1/admin/audit', async (route) => {
        const response = await route.fetch();
        const body = (await response.json()) as { format: number; entries: string[]; checkpoints: string[] };
        const cps = body.checkpoints.map((t) => JSON.parse(t) as { seq: number; signature: string });
        // The second checkpoint: it covers the entries after the first one, up to its own seq.
        const k = 1;
        const cp = cps[k]!;
        checkpointSeq = cp.seq;
        const flipped = (parseInt(cp.signature.slice(0, 2), 16) ^ 0x01).toString(16).padStart(2, '0') + cp.signature.slice(2);
        body.checkpoints[k] = JSON.stringify({ ...cp, signature: flipped });
        covered = Array.from({ length: cp.seq - cps[k - 1]!.seq }, (_, j) => cps[k - 1]!.seq + 1 + j);
        await route.fulfill({ response, json: body });
      });
      await page.click('#refresh');
      await page.waitForSelector('#audit-summary.bad');
      await page.waitForSelector('#audit-summary:has-text("bad-checkpoint-signature")');
      const red = await page.locator('#audit li.entry.bad').evaluateAll((lis) => lis.map((li) => Number(li.getAttribute('data-seq'))));
      expect(covered.length).toBeGreaterThan(0);
      expect(red.sort((a, b) => a - b)).toEqual(covered);
      expect(await page.locator(`#audit li.checkpoint.bad[data-checkpoint="${checkpointSeq}"]`).count()).toBe(1);
      expect(await page.locator('#audit li.checkpoint.bad').count()).toBe(1);
      await page.locator(`#audit li.checkpoint.bad`).scrollIntoViewIfNeeded();
      await page.locator('#audit').screenshot({ path: join(SHOTS, 'console-audit-bad-checkpoint.png') });
      await page.unroute('**/v1/admin/audit');
    });

    it('"Forget key" clears every section; no request left the node and no CSP violation happened', async () => {
      await page.click('#forget');
      expect(await page.textContent('#message')).toContain('Key forgotten');
      for (const s of ['health', 'keys', 'sessions', 'metrics', 'audit']) expect(await page.locator(`#${s} .body`).innerHTML(), s).toBe('');
      expect(await page.isDisabled('#refresh')).toBe(true);
      await page.screenshot({ path: join(SHOTS, 'console-forgotten.png') });

      const origin = new URL(base).origin;
      expect(requests.length).toBeGreaterThan(10);
      expect(requests.filter((u) => new URL(u).origin !== origin)).toEqual([]);
      expect(problems).toEqual([]);
    });
  });
});
