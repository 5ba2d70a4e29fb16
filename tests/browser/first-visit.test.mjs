// The page people meet first (issue #12), driven as a person would: a sample photo clicked
// (and chosen with the keyboard); ten photos chosen on a phone; a bad file; the notices of a
// test model and an untrained one on every card and in the widget; the phases of the load's
// progress; the heatmap's legend; a model switch with the network off; screenshots.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, serve, waitModel, cardResult, messages, nativeClassify, expectSameTop, saveArtifact, PHOTOS, WWW, TINY } from './helpers.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 180_000 }, fn);
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };
const DESKTOP = { viewport: { width: 1200, height: 900 } };

let server;
let browser;
let scratch;

/** A copy of the tiny model with its manifest changed by `edit`. */
function tinyCopy(name, edit = (m) => m) {
  const dir = path.join(scratch, name);
  fs.cpSync(path.join(WWW, TINY), dir, { recursive: true });
  const file = path.join(dir, 'manifest.json');
  fs.writeFileSync(file, JSON.stringify(edit(JSON.parse(fs.readFileSync(file, 'utf8')))));
  return dir;
}

before(async () => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bit50-first-'));
  // Seeded random weights with real-looking labels: what ./build.sh serves without the weights.
  const untrained = tinyCopy('untrained', (m) => ({
    ...m,
    name: 'random',
    untrained: true,
    labels: ['tench', 'goldfish', 'great white shark', 'tiger shark', 'hammerhead', 'electric ray', 'stingray', 'cock', 'hen', 'ostrich'],
  }));
  const other = tinyCopy('other', (m) => ({ ...m, name: 'tiny-other' }));
  // A page of someone else's with widgets: one whose model is missing (it falls back), one untrained.
  const site = path.join(scratch, 'site');
  fs.mkdirSync(site);
  fs.writeFileSync(
    path.join(site, 'widgets.html'),
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>widgets</title>
<script type="module" src="/bit50-embed.js"></script></head><body>
<bit50-classifier id="fallback" model="/models/nowhere/" fallback-model="/${TINY}"></bit50-classifier>
<bit50-classifier id="untrained" model="/untrained/"></bit50-classifier>
</body></html>`,
  );
  server = await serve({ '/untrained/': untrained, '/other/': other, '/site/': site });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
  fs.rmSync(scratch, { recursive: true, force: true });
});

async function open(options = DESKTOP, url = `index.html?model=${TINY}`) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
  await page.goto(`${server.url}${url}`);
  return page;
}

/** How often `text` appears in what the page shows. */
const shownCount = (page, text) => page.evaluate((t) => document.body.innerText.split(t).length - 1, text);

test('a sample photo: one click classifies it, and the keyboard reaches and presses them', async () => {
  const page = await open();
  try {
    await waitModel(page);
    const samples = page.locator('.sample');
    assert.equal(await samples.count(), 5);
    // Every sample's picture is there (build.sh copies them to samples/).
    await page.locator('.samples').scrollIntoViewIfNeeded();
    await page.waitForFunction(() => [...document.querySelectorAll('.sample img')].every((i) => i.complete && i.naturalWidth > 0), null, { timeout: 30_000 });
    await page.getByRole('button', { name: 'Cat' }).click();
    const cat = await cardResult(page, 'cat.png');
    assert.ok(cat.done, cat.state);
    expectSameTop(cat.top, nativeClassify(path.join(PHOTOS, 'cat.png')).top, { probTol: 1e-4 });
    // The keyboard: after "Use the camera" comes the first sample, then the next.
    await page.locator('#camera-start').focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.sample), 'cat.png');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    const coffee = await cardResult(page, 'coffee.jpg');
    assert.ok(coffee.done, coffee.state);
    assert.deepEqual(await page.evaluate(() => [...document.querySelectorAll('.card .name')].map((n) => n.textContent)), ['coffee.jpg', 'cat.png']);
  } finally {
    await page.context().close();
  }
});

test('the test model says so: in the model panel and on every card, in plain sight; the header promises nothing', async () => {
  const page = await open();
  try {
    await waitModel(page);
    await page.getByRole('button', { name: 'Astronaut' }).click();
    await page.getByRole('button', { name: 'Rocket' }).click();
    await cardResult(page, 'astronaut-alpha.png');
    await cardResult(page, 'rocket-exif.jpg');
    const summary = page.locator('#model-status');
    assert.ok(await summary.isVisible());
    assert.match(await summary.textContent(), /^A tiny test model: its classes \(“class 0”, …\) name nothing real, so its predictions mean nothing\. It runs on this device’s (processor|graphics chip)\.$/);
    for (const card of await page.locator('.card.done').all()) {
      const notice = card.locator('.card-notice');
      assert.ok(await notice.isVisible(), 'the notice shows without hovering');
      assert.equal(await notice.textContent(), 'A test model: these labels mean nothing.');
      // No label is set apart as the answer.
      assert.equal(await card.locator('.top li.best .label').evaluate((e) => getComputedStyle(e).fontWeight), '400');
    }
    const lede = await page.locator('header .lede').textContent();
    assert.doesNotMatch(lede, /Google|WebGPU|BiT-50/);
    await page.waitForFunction(() => /mean nothing/.test(document.getElementById('announcer').textContent));
  } finally {
    await page.context().close();
  }
});

test('an untrained model (random weights) says so on every card; its labels are not given as answers', async () => {
  const page = await open(DESKTOP, 'index.html?model=/untrained/');
  try {
    const info = await waitModel(page);
    assert.equal(info?.untrained, true, page.logs.join('\n'));
    await page.getByRole('button', { name: 'Cat' }).click();
    const r = await cardResult(page, 'cat.png');
    assert.ok(r.done, r.state);
    const card = page.locator('.card').first();
    assert.ok(await card.locator('.card-notice').isVisible());
    assert.equal(await card.locator('.card-notice').textContent(), 'Untrained model (random weights): these labels mean nothing.');
    assert.match(await page.locator('#model-status').textContent(), /^An untrained BiT-50 \(random weights\): its predictions mean nothing\. It runs on/);
    await page.waitForFunction(() => document.getElementById('announcer').textContent);
    const announced = await page.locator('#announcer').textContent();
    assert.match(announced, /^cat\.png: Untrained model \(random weights\): these labels mean nothing\.$/);
    assert.doesNotMatch(announced, new RegExp(r.top[0].label));
  } finally {
    await page.context().close();
  }
});

test('the load shows each phase with its own progress, never a full bar while preparing, and nothing jumps', async () => {
  for (const [size, options] of Object.entries({ phone: PHONE, desktop: DESKTOP })) {
    const context = await browser.newContext(options);
    // Every state of the progress bar and its text, from the first; the layout's shifts.
    await context.addInitScript(() => {
      window.progressSeen = [];
      window.shifted = 0;
      new PerformanceObserver((list) => list.getEntries().forEach((e) => (window.shifted += e.value))).observe({ type: 'layout-shift', buffered: true });
      document.addEventListener('DOMContentLoaded', () => {
        const bar = document.getElementById('progress');
        const text = document.getElementById('model-status');
        const record = () => window.progressSeen.push({ text: text.textContent, value: bar.hasAttribute('value') ? bar.value : null, max: bar.max, phase: bar.dataset.phase || '' });
        new MutationObserver(record).observe(text, { childList: true, characterData: true, subtree: true });
        new MutationObserver(record).observe(bar, { attributes: true });
      });
    });
    const page = await context.newPage();
    try {
      await page.goto(`${server.url}index.html?model=${TINY}`);
      await waitModel(page);
      await page.waitForTimeout(500);
      const seen = await page.evaluate(() => window.progressSeen);
      const first = (re) => seen.findIndex((s) => re.test(s.text));
      const preparing = first(/^Preparing the graphics chip…$/);
      const measuring = first(/^Measuring which is faster here \(\d of \d\)…$/);
      const downloading = first(/^(Downloading the weights|Reading the weights from the cache): [\d.]+ [KM]B of [\d.]+ [KM]B \(\d+%\)$/);
      const ready = first(/^A tiny test model: .* It runs on /);
      assert.ok(preparing >= 0 && measuring > preparing && downloading > measuring && ready > downloading, JSON.stringify(seen.map((s) => s.text)));
      for (const s of seen.filter((s) => /^(preparing|measuring)$/.test(s.phase))) {
        assert.ok(s.value === null || s.value < s.max, `the bar reads full while still preparing: ${JSON.stringify(s)}`);
      }
      // Cumulative layout shift: "good" is under 0.1.
      const shifted = await page.evaluate(() => window.shifted);
      assert.ok(shifted < 0.05, `${size}: the layout shifted by ${shifted.toFixed(3)} while loading`);
    } finally {
      await context.close();
    }
  }
});

test('on a phone: plain words, the technical facts behind a disclosure, no drop or paste; ten photos chosen land in view, in order', async () => {
  const page = await open(PHONE);
  try {
    await waitModel(page);
    assert.match(await page.locator('#model-status').textContent(), /It runs on this device’s processor\.$/);
    assert.equal(await page.locator('#tech').evaluate((d) => d.open), false);
    assert.equal(await page.locator('#adapter').isVisible(), false);
    await page.locator('#tech summary').click();
    assert.ok(await page.locator('#adapter').isVisible());
    assert.match(await page.locator('#path').textContent(), /GFLOP\/s/);
    await page.locator('#tech summary').click();
    const shown = await page.evaluate(() => document.body.innerText);
    assert.doesNotMatch(shown, /\bdrop\b|\bpaste\b|Ctrl/i, 'a touch-only device is offered drag and drop or the keyboard');
    assert.match(shown, /Choose photos on this device, or take one with the camera/);

    const bytes = fs.readdirSync(PHOTOS).map((f) => fs.readFileSync(path.join(PHOTOS, f)));
    const files = Array.from({ length: 10 }, (_, i) => ({ name: `photo-${String(i + 1).padStart(2, '0')}.png`, mimeType: 'image/png', buffer: bytes[i % bytes.length] }));
    const names = files.map((f) => f.name);
    // What the results show the moment the photos are chosen (tiny is quick: a moment later
    // some are done).
    await page.evaluate(() => {
      const cards = document.getElementById('cards');
      new MutationObserver((_, observer) => {
        observer.disconnect();
        window.atOnce = {
          cards: [...cards.children].map((c) => [c.querySelector('.name').textContent, c.querySelector('.state').textContent]),
          queue: document.getElementById('queue').textContent,
          cancel: !document.getElementById('queue-cancel').hidden,
        };
      }).observe(cards, { childList: true });
    });
    const chooser = page.waitForEvent('filechooser');
    await page.locator('#pick').click();
    await (await chooser).setFiles(files);
    await page.waitForFunction(() => window.atOnce);
    // Placeholders for all ten at once, in the order chosen, saying their place in the queue.
    const atOnce = await page.evaluate(() => window.atOnce);
    assert.deepEqual(atOnce.cards.map(([n]) => n), names);
    assert.equal(atOnce.cards[0][1], 'Classifying…');
    assert.deepEqual(atOnce.cards.slice(1).map(([, s]) => s), names.slice(1).map((_, i) => `Waiting (${i + 2} of 10)…`));
    assert.equal(atOnce.queue, 'Classifying 10 photos: 0 of 10 done');
    assert.ok(atOnce.cancel, 'the queue can be cancelled');
    await cardResult(page, names[0]);
    // The first result is in view, the rest follow below it.
    await page.waitForFunction(() => {
      const r = document.querySelector('.card').getBoundingClientRect();
      return r.top >= 0 && r.top < innerHeight / 2;
    }, null, { timeout: 10_000 });
    assert.ok(await page.locator('.card').first().locator('.top').isVisible());
    for (const n of names) assert.ok((await cardResult(page, n)).done);
    assert.deepEqual(await page.evaluate(() => [...document.querySelectorAll('.card .name')].map((n) => n.textContent)), names);
    await page.evaluate(() => window.scrollTo(0, 0));
    saveArtifact('first-visit-phone.png', await page.screenshot());
    await page.locator('.card').first().scrollIntoViewIfNeeded();
    saveArtifact('first-visit-phone-results.png', await page.screenshot());
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth > innerWidth + 1), false, 'the page scrolls sideways');
  } finally {
    await page.context().close();
  }
});

test('a bad file shows its error once, on its card, and no banner', async () => {
  const page = await open(PHONE);
  try {
    await waitModel(page);
    const chooser = page.waitForEvent('filechooser');
    await page.locator('#pick').click();
    await (await chooser).setFiles([{ name: 'holiday.jpg', mimeType: 'image/jpeg', buffer: Buffer.from('not a photo at all') }]);
    const r = await cardResult(page, 'holiday.jpg');
    assert.equal(r.done, false);
    assert.equal(await shownCount(page, r.state), 1, `the error shows once: ${r.state}`);
    assert.equal(await shownCount(page, 'holiday.jpg'), 1, 'the file name shows once, as the card title');
    assert.deepEqual(await messages(page), []);
    // "Clear all": the cards go, focus goes to "Choose photos".
    await page.locator('#clear').click();
    assert.equal(await page.locator('.card').count(), 0);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'pick');
  } finally {
    await page.context().close();
  }
});

test('the heatmap has a legend', async () => {
  const page = await open();
  try {
    await waitModel(page);
    await page.getByRole('button', { name: 'Cameraman' }).click();
    const r = await cardResult(page, 'camera-gray.png');
    const card = page.locator('.card').first();
    assert.equal(await card.locator('.heat-legend').isVisible(), false);
    await card.getByRole('button', { name: 'Show where it looks' }).click();
    await card.locator('.heat-legend').waitFor({ state: 'visible', timeout: 60_000 });
    assert.equal((await card.locator('.heat-legend').innerText()).replace(/\s+/g, ' '), `Where it sees “${r.top[0].label}”: least most`);
    // A square photo: nothing is cropped out, so no shading to explain.
    assert.equal(await card.locator('.legend-crop').isVisible(), false);
    saveArtifact('first-visit-desktop.png', await page.screenshot({ fullPage: true }));
    await card.getByRole('button', { name: 'Hide the heatmap' }).click();
    assert.equal(await card.locator('.heat-legend').isVisible(), false);
  } finally {
    await page.context().close();
  }
});

test('with the network off, switching to a model that is not cached keeps the working one and says the network is off', async () => {
  const page = await open();
  try {
    await waitModel(page);
    await page.waitForFunction(() => navigator.serviceWorker.controller, null, { timeout: 30_000 });
    await page.context().setOffline(true);
    await page.locator('.model-picker summary').click();
    await page.locator('#model-url').fill('/other/');
    await page.locator('#model-form button').click();
    await page.waitForFunction(() => document.querySelectorAll('#messages .message').length > 0, null, { timeout: 60_000 }).catch((err) => {
      throw new Error(`${err.message}\n${page.logs.join('\n')}`);
    });
    const [said] = await messages(page);
    assert.match(said, /^\/other\/ could not be loaded: this device is offline, and the model is not in this browser’s cache\. Still using tiny\./);
    assert.doesNotMatch(said, /bit50-worker|www\/pkg/);
    assert.equal(await page.locator('#model-name').textContent(), 'tiny');
    // What was asked for stays in the field, to try again with one click.
    assert.equal(await page.locator('#model-url').inputValue(), '/other/');
    await page.getByRole('button', { name: 'Cat' }).click();
    const r = await cardResult(page, 'cat.png');
    assert.ok(r.done, r.state);
    // Back online, the switch works, and the banner can be dismissed.
    await page.getByRole('button', { name: 'Dismiss this message' }).click();
    assert.deepEqual(await messages(page), []);
    await page.context().setOffline(false);
    await page.locator('#model-form button').click();
    await page.waitForFunction(() => window.bit50.model?.info.name === 'tiny-other', null, { timeout: 60_000 });
    assert.equal(await page.locator('#model-name').textContent(), 'tiny-other');
  } finally {
    await page.context().close();
  }
});

test('the widget says when it uses its fallback model, and that the labels of a test or untrained model mean nothing', async () => {
  const page = await open(DESKTOP, 'site/widgets.html');
  try {
    const widget = (id) => page.locator(`#${id}`);
    await page.waitForFunction(() => [...document.querySelectorAll('bit50-classifier')].every((w) => /Ready|Cannot/.test(w.shadowRoot.querySelector('.status').textContent)), null, { timeout: 60_000 });
    const fallback = widget('fallback').locator('.notice');
    assert.ok(await fallback.isVisible());
    assert.match(await fallback.textContent(), /^The model \/models\/nowhere\/ was not found, so this uses its fallback model, tiny\. A tiny test model: .* mean nothing\.$/);
    // No result box before a result.
    assert.equal(await widget('fallback').locator('.result').isVisible(), false);
    const untrained = widget('untrained').locator('.notice');
    assert.ok(await untrained.isVisible());
    assert.match(await untrained.textContent(), /^An untrained BiT-50 \(random weights\): its predictions mean nothing\.$/);
    // A result: the labels are listed, not given as the answer.
    await widget('untrained').evaluate(async (el) => el.classify(await (await fetch('/samples/cat.png')).blob()));
    const status = await widget('untrained').locator('.status').textContent();
    assert.match(status, /^Classified in \d+ ms\. Untrained model \(random weights\): these labels mean nothing\.$/);
    assert.ok(await widget('untrained').locator('.result').isVisible());
    saveArtifact('first-visit-widgets.png', await page.screenshot());
  } finally {
    await page.context().close();
  }
});
