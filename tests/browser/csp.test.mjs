// The Content-Security-Policy: the page works whole under it (the model, its threads and their
// workers, a classified photo, the heatmap: no violation reported anywhere), and an injected
// inline script, an inline handler, eval, new Function and a script from another origin do not
// run; the same holds on a static host that sends no header, from the policy index.html carries
// as a <meta>.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch, serve, openPage, waitModel, dropFiles, cardResult, PHOTOS, WWW, TINY } from './helpers.mjs';
import { CSP } from '../../tools/serve.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 120_000 }, fn);
let browser;
let other;

before(async () => {
  browser = await launch();
  // Another origin, serving a script a page might be tricked into loading.
  other = await serve({}, { csp: null });
});

after(async () => {
  await browser?.close();
  await other?.close();
});

/** Opens the page with every CSP violation recorded: the document's events, and the browser's
 * own reports (Log domain, which also carries those of workers). */
async function openWatched(url) {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`));
  });
  const page = await context.newPage();
  page.reports = [];
  page.on('console', (m) => /Content Security Policy/i.test(m.text()) && page.reports.push(m.text()));
  const cdp = await context.newCDPSession(page);
  cdp.on('Log.entryAdded', ({ entry }) => /Content Security Policy/i.test(entry.text) && page.reports.push(entry.text));
  await cdp.send('Log.enable');
  await page.goto(url);
  return page;
}

const violations = async (page) => [...(await page.evaluate(() => window.__violations)), ...page.reports];

/** The page classifies a photo and draws its heatmap: every part of it ran under the policy. */
async function exercise(page) {
  const info = await waitModel(page);
  assert.ok(info, `the model did not load: ${await violations(page)}`);
  await dropFiles(page, [path.join(PHOTOS, 'cat.png')]);
  const r = await cardResult(page, 'cat.png');
  assert.ok(r.done, r.state);
  const card = page.locator('.card', { has: page.locator('.name', { hasText: 'cat.png' }) }).first();
  await card.locator('.toggle-heat').click();
  await card.locator('.heat:not([hidden])').waitFor({ timeout: 60_000 });
  return info;
}

/** Tries the ways an attacker's markup would run script; resolves what ran. */
function tryToRun(page, otherOrigin) {
  return page.evaluate(async (otherOrigin) => {
    window.__ran = [];
    const inline = document.createElement('script');
    inline.textContent = 'window.__ran.push("inline script")';
    document.head.append(inline);
    // After an await: no longer inside DevTools' own evaluation, which the policy exempts.
    await new Promise((r) => setTimeout(r, 0));
    try {
      eval('window.__ran.push("eval")');
    } catch {}
    try {
      new Function('window.__ran.push("Function")')();
    } catch {}
    const holder = document.createElement('div');
    holder.innerHTML = '<img src="data:," onerror="window.__ran.push(\'inline handler\')"><img src="x:y" onerror="window.__ran.push(\'inline handler 2\')">';
    document.body.append(holder);
    const remote = document.createElement('script');
    remote.src = `${otherOrigin}bit50-embed.js?remote`;
    const remoteDone = new Promise((r) => (remote.onload = remote.onerror = () => r()));
    document.head.append(remote);
    await remoteDone;
    if (customElements.get('bit50-classifier')) window.__ran.push('remote script');
    await new Promise((r) => setTimeout(r, 300));
    holder.remove();
    return window.__ran;
  }, otherOrigin);
}

test('index.html carries the policy the server sends, as a <meta>', async () => {
  const html = fs.readFileSync(path.join(WWW, 'index.html'), 'utf8');
  const meta = html.match(/<meta http-equiv="Content-Security-Policy" content="([^"]+)">/);
  assert.ok(meta, 'no CSP <meta> in index.html');
  assert.equal(meta[1], CSP);
  for (const directive of ["script-src 'self' 'wasm-unsafe-eval'", 'worker-src', "object-src 'none'"]) assert.ok(CSP.includes(directive), directive);
  assert.doesNotMatch(CSP, /'unsafe-inline'|'unsafe-eval'/);
  assert.doesNotMatch(CSP.match(/script-src[^;]*/)[0], /\*|https?:|blob:|data:/, 'script from other origins');
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)|\son[a-z]+=/i, 'index.html has inline script');
});

for (const [what, csp] of [['sent as a header', CSP], ['only in the <meta> (a static host)', null]]) {
  test(`the policy ${what}: the page works with no violation, and injected script does not run`, async () => {
    const server = await serve({}, { csp });
    try {
      const page = await openWatched(`${server.url}index.html?model=${TINY}`);
      const response = await page.request.get(`${server.url}index.html`);
      assert.equal(response.headers()['content-security-policy'], csp ?? undefined);
      const info = await exercise(page);
      // Cross-origin isolated: the threaded build runs, its helpers workers from blob: URLs.
      assert.ok(info.threads > 1, JSON.stringify(info));
      assert.deepEqual(await violations(page), [], 'the page itself broke the policy');
      assert.deepEqual(await tryToRun(page, other.url), []);
      const seen = await violations(page);
      for (const kind of ['script-src-elem', 'script-src-attr', 'script-src']) {
        assert.ok(seen.some((v) => v.startsWith(kind)), `no ${kind} violation reported: ${seen.join('\n')}`);
      }
      assert.ok(seen.some((v) => v.includes(new URL(other.url).origin)), `the other origin's script was not refused: ${seen.join('\n')}`);
      await page.context().close();
    } finally {
      await server.close();
    }
  });
}
