// "Your own classes" on the demo page, driven as a person would: create two classes, drop
// three photos into each, drop a fourth photo and see it under the right class; reload and
// find the classes still there; export the head and import it into the <bit50-classifier>
// widget on another site; rename, remove, delete, flips, the camera; and bad input, each with
// a message and nothing lost. Screenshots (desktop and phone) land in target/browser-artifacts/.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { launch, serve, openPage, waitModel, dropFiles, cardResult, messages, saveArtifact, bit50Cli, PHOTOS, ROOT, WWW, TINY } from './helpers.mjs';
import { startServer } from '../../tools/serve.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 120_000 }, fn);

/** An 8-bit RGB PNG, pixel(x, y) -> [r, g, b]. */
function png(width, height, pixel) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw.set(pixel(x, y), y * (width * 3 + 1) + 1 + x * 3);
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'latin1');
    data.copy(out, 8);
    out.writeUInt32BE(zlib.crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

let seed = 1;
const noise = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) % 101) - 50;
const colour = (base) => png(80, 72, () => base.map((c) => Math.max(0, Math.min(255, c + noise()))));

let server;
let otherSite;
let browser;
let page;
let dir;
let siteDir;
const photo = (name) => path.join(dir, name);
let exported;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bit50-classes-'));
  for (let i = 0; i < 8; i++) {
    fs.writeFileSync(photo(`red-${i}.png`), colour([200, 40, 40]));
    fs.writeFileSync(photo(`blue-${i}.png`), colour([40, 60, 200]));
  }
  siteDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bit50-site-'));
  // The same network stored in int8: another model, with other features.
  bit50Cli(['convert', path.join(ROOT, 'tests/fixtures/tiny'), '--out', path.join(dir, 'int8'), '--dtype', 'int8']);
  server = await serve({ '/photos/': PHOTOS, '/int8/': path.join(dir, 'int8') });
  otherSite = await startServer({ root: siteDir, csp: null }); // a site with no policy of its own
  browser = await launch({ camera: true });
  page = await openPage(browser, `${server.url}index.html?model=${TINY}`, { permissions: ['camera'] });
  page.on('dialog', (d) => d.accept());
  await waitModel(page);
});

after(async () => {
  await browser?.close();
  await server?.close();
  await otherSite?.close();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(siteDir, { recursive: true, force: true });
});

const status = () => page.locator('#custom-status').textContent();
const trained = (photos) => page.waitForFunction((n) => new RegExp(`^Trained on ${n} photos`).test(document.getElementById('custom-status').textContent), photos, { timeout: 60_000 });
/** How many times the panel has trained; wait for more after an action that keeps the photo count. */
const trainings = () => page.evaluate(() => Number(document.getElementById('custom-classes').dataset.trained || 0));
const retrained = (before) => page.waitForFunction((n) => Number(document.getElementById('custom-classes').dataset.trained || 0) > n, before, { timeout: 60_000 });
const thumbs = (name) => page.locator(`.class-card[data-class="${name}"] .thumbs li`).count();
const customOf = async (name) => {
  const r = await cardResult(page, name);
  assert.ok(r.done, r.state);
  return page.evaluate((id) => JSON.parse(document.getElementById(id).dataset.custom || 'null'), r.id);
};

test('two classes, three photos each, then a fourth photo shows under the right class', async () => {
  // From the keyboard: type a name, Enter.
  await page.locator('#new-class-name').focus();
  await page.keyboard.type('red');
  await page.keyboard.press('Enter');
  // Focus moves to the new class's "Add photos…" button.
  await page.waitForFunction(() => document.activeElement?.getAttribute('aria-label') === 'Add photos to red');
  await page.locator('#new-class-name').fill('blue');
  await page.getByRole('button', { name: 'Add class' }).click();
  await page.waitForFunction(() => /^Add photos to “red”\.$/.test(document.getElementById('custom-status').textContent));
  await dropFiles(page, [0, 1, 2].map((i) => photo(`red-${i}.png`)), '.class-card[data-class="red"]');
  await dropFiles(page, [0, 1, 2].map((i) => photo(`blue-${i}.png`)), '.class-card[data-class="blue"]');
  await trained(6);
  assert.match(await status(), /^Trained on 6 photos in \d+ ms: 6 of 6 right; 6 of 6 right when each is left out in turn/);
  assert.deepEqual([await thumbs('red'), await thumbs('blue')], [3, 3]);
  // The class photos went to the classes, not to the results.
  assert.equal(await page.locator('.card').count(), 0);
  await dropFiles(page, [photo('red-3.png'), photo('blue-3.png')]);
  const red = await customOf('red-3.png');
  const blue = await customOf('blue-3.png');
  assert.equal(red[0].label, 'red', JSON.stringify(red));
  assert.equal(blue[0].label, 'blue', JSON.stringify(blue));
  assert.ok(red[0].prob > 0.9 && blue[0].prob > 0.9);
  // Beside the ImageNet top-5, in the card.
  const card = page.locator('.card', { has: page.locator('.name', { hasText: 'red-3.png' }) });
  assert.deepEqual(await card.locator('.list-title').allTextContents(), ['Your classes', 'ImageNet']);
  assert.equal(await card.locator('.top:not(.custom-top) li').count(), 5);
  await page.waitForFunction(() => /^2 of 2 photos classified\.$/.test(document.getElementById('announcer').textContent));
  saveArtifact('classes.png', await page.screenshot({ fullPage: true }));
});

test('after a reload the classes, their photos and the head are still there', async () => {
  await page.reload();
  await waitModel(page);
  await page.waitForSelector('.class-card[data-class="blue"]');
  assert.deepEqual([await thumbs('red'), await thumbs('blue')], [3, 3]);
  await trained(6);
  await dropFiles(page, [photo('blue-4.png')]);
  assert.equal((await customOf('blue-4.png'))[0].label, 'blue');
  // One photo is announced by its most probable class of yours.
  await page.waitForFunction(() => /^blue-4\.png: blue, \d/.test(document.getElementById('announcer').textContent));
});

test('the head is exported as one small file and shown by the widget on another site', async () => {
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export head…' }).click()]);
  assert.equal(download.suggestedFilename(), 'tiny-head.json');
  const file = path.join(siteDir, 'my-head.json');
  await download.saveAs(file);
  exported = fs.readFileSync(file, 'utf8');
  const head = JSON.parse(exported);
  assert.equal(head.format, 'bit50-head');
  assert.deepEqual(head.classes, ['red', 'blue']);
  assert.equal(head.model.name, 'tiny');
  assert.ok(exported.length < 20_000, `${exported.length} bytes`);
  // Another site: its own page, the widget and model from ours, the head file from its own folder.
  const html = fs
    .readFileSync(path.join(WWW, 'embed-example.html'), 'utf8')
    .replace('src="bit50-embed.js"', `src="${server.url}bit50-embed.js"`)
    .replace('model="models/bit-50/"', `model="${server.url}${TINY}" head="my-head.json"`);
  fs.writeFileSync(path.join(siteDir, 'index.html'), html);
  for (const f of ['embed-example.css', 'embed-example.js']) fs.copyFileSync(path.join(WWW, f), path.join(siteDir, f));
  const site = await openPage(browser, otherSite.url);
  await site.waitForFunction(() => /your classes: red, blue|Cannot/.test(document.querySelector('bit50-classifier')?.shadowRoot?.querySelector('.status').textContent), null, { timeout: 60_000 });
  assert.match(await site.evaluate(() => document.querySelector('bit50-classifier').shadowRoot.querySelector('.status').textContent), /^Ready \((CPU|WebGPU)\), with your classes: red, blue$/);
  await site.evaluate(() => {
    window.predictions = [];
    document.addEventListener('prediction', (e) => window.predictions.push(e.detail));
    window.__box = document.querySelector('bit50-classifier').shadowRoot.querySelector('.box');
  });
  await dropFiles(site, [photo('red-5.png')], '__box');
  await site.waitForFunction(() => window.predictions.length > 0, null, { timeout: 60_000 });
  const detail = await site.evaluate(() => window.predictions[0]);
  assert.equal(detail.custom[0].label, 'red');
  const shown = await site.evaluate(() => [...document.querySelector('bit50-classifier').shadowRoot.querySelectorAll('ol.custom .label')].map((l) => l.textContent));
  assert.deepEqual(shown, ['red', 'blue']);
  saveArtifact('widget-head.png', await site.screenshot({ fullPage: true }));
  // A head for another model: the widget says so and still classifies.
  const other = JSON.parse(exported);
  other.model.sha256 = 'f'.repeat(64);
  fs.writeFileSync(path.join(siteDir, 'other-head.json'), JSON.stringify(other));
  await site.evaluate(() => document.querySelector('bit50-classifier').setAttribute('head', 'other-head.json'));
  await site.waitForFunction(() => /Cannot classify: the head file cannot be used/.test(document.querySelector('bit50-classifier').shadowRoot.querySelector('.status').textContent), null, { timeout: 30_000 });
  assert.match(await site.evaluate(() => document.querySelector('bit50-classifier').shadowRoot.querySelector('.status').textContent), /trained on another model/);
  await site.close();
});

test('bad input: each shows a message, and nothing that was there is lost', async () => {
  const before = (await messages(page)).length;
  // An empty or duplicated name.
  await page.locator('#new-class-name').fill('   ');
  await page.locator('#new-class-name').press('Enter');
  await page.locator('#new-class-name').fill('RED');
  await page.locator('#new-class-name').press('Enter');
  // A file that is not an image, among good photos.
  await dropFiles(page, [{ name: 'notes.txt', type: 'text/plain', bytes: Buffer.from('not a photo') }, photo('red-4.png')], '.class-card[data-class="red"]');
  await page.waitForFunction(() => document.querySelectorAll('.class-card[data-class="red"] .thumbs li').length === 4, null, { timeout: 60_000 });
  await trained(7);
  // Head files: corrupt, truncated, of the wrong feature size, for another model.
  const other = JSON.parse(exported);
  other.model = { name: 'bit-50', sha256: 'e'.repeat(64) };
  const heads = {
    'corrupt.json': '{"format": "bit50-head", "version": 1, "classes": 7}',
    'truncated.json': exported.slice(0, 3000),
    'wrong-size.json': exported.replace('"features":256', '"features":128'),
    'other.json': JSON.stringify(other),
  };
  for (const [name, text] of Object.entries(heads)) {
    await page.locator('#custom-classes input[type=file][accept^=".json"]').setInputFiles({ name, mimeType: 'application/json', buffer: Buffer.from(text) });
    await page.waitForFunction((name) => [...document.querySelectorAll('#messages .message')].some((m) => m.textContent.includes(name)), name, { timeout: 30_000 });
  }
  const shown = (await messages(page)).slice(before).join('\n');
  for (const want of [
    'Give the class a name.',
    'There is already a class “red”: each class needs its own name.',
    'red: Not an image. notes.txt: not an image (text/plain)',
    'Not a usable head file. corrupt.json: a damaged head file',
    'Not a usable head file. truncated.json: the head file is truncated',
    'Not a usable head file. wrong-size.json: the weights of "red" have 256 values; the head takes 128 features',
    'A head for another model. other.json: this head was trained on another model, "bit-50"',
  ]) {
    assert.ok(shown.includes(want), `no ${JSON.stringify(want)} in:\n${shown}`);
  }
  // Nothing lost: the same classes, the photos, the trained head in use (not an imported one).
  assert.deepEqual(await page.locator('.class-card').evaluateAll((cards) => cards.map((c) => c.dataset.class)), ['red', 'blue']);
  assert.deepEqual([await thumbs('red'), await thumbs('blue')], [4, 3]);
  assert.equal(await page.locator('#custom-classes .imported').isHidden(), true);
  await dropFiles(page, [photo('red-5.png')]);
  assert.equal((await customOf('red-5.png'))[0].label, 'red');
});

test('one class, or a class without photos, says what is missing; rename, remove and delete retrain', async () => {
  await page.locator('#new-class-name').fill('green');
  await page.locator('#new-class-name').press('Enter');
  await page.waitForFunction(() => /Add photos to “green”/.test(document.getElementById('custom-status').textContent));
  assert.equal(await page.getByRole('button', { name: 'Export head…' }).isDisabled(), true, 'no head while a class has no photos');
  await page.getByRole('button', { name: 'Delete the class green' }).click();
  await trained(7);
  // Rename from the keyboard.
  const name = page.getByLabel('Name of the class blue');
  const before = await trainings();
  await name.fill('sea');
  await name.press('Enter');
  await page.waitForFunction(() => document.querySelector('.class-card[data-class="sea"]'));
  await retrained(before);
  await dropFiles(page, [photo('blue-5.png')]);
  assert.equal((await customOf('blue-5.png'))[0].label, 'sea');
  // Remove a photo: focus moves to the next photo's remove button.
  await page.getByRole('button', { name: 'Remove red-4.png from red' }).click();
  await trained(6);
  assert.equal(await thumbs('red'), 3);
  assert.match(await page.evaluate(() => document.activeElement.getAttribute('aria-label') || ''), /^Remove red-\d\.png from red$|^Add photos to red$/);
  // Delete a class (after confirming): one class left is not enough.
  await page.getByRole('button', { name: 'Delete the class sea' }).click();
  await page.waitForFunction(() => /Add a second class/.test(document.getElementById('custom-status').textContent));
  await dropFiles(page, [photo('red-6.png')]);
  const r = await cardResult(page, 'red-6.png');
  assert.equal(await page.evaluate((id) => document.getElementById(id).dataset.custom, r.id), undefined, 'no custom classes without a head');
  // Put the second class back for the next tests.
  await page.locator('#new-class-name').fill('blue');
  await page.locator('#new-class-name').press('Enter');
  await page.waitForSelector('.class-card[data-class="blue"]');
  await dropFiles(page, [0, 1, 2].map((i) => photo(`blue-${i}.png`)), '.class-card[data-class="blue"]');
  await trained(6);
});

test('a photo pasted with focus in a class goes to it; another model reads the photos again', async () => {
  await page.getByRole('button', { name: 'Add photos to blue' }).focus();
  const b64 = fs.readFileSync(photo('blue-7.png')).toString('base64');
  await page.evaluate((b64) => {
    const dt = new DataTransfer();
    dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'image.png', { type: 'image/png' }));
    document.activeElement.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  }, b64);
  await page.waitForFunction(() => document.querySelectorAll('.class-card[data-class="blue"] .thumbs li').length === 4, null, { timeout: 60_000 });
  await trained(7);
  assert.equal(await page.locator('.card .name', { hasText: /^pasted/ }).count(), 0, 'the pasted photo went to the class, not to the results');
  await page.getByRole('button', { name: 'Remove', exact: false }).last().click();
  await trained(6);
  // Another model: its features differ, so every photo is read again and the head retrained.
  for (const url of ['/int8/', TINY]) {
    const before = await trainings();
    await page.locator('.model-picker summary').click();
    await page.locator('#model-url').fill(url);
    await page.locator('#model-form button').click();
    await waitModel(page);
    await retrained(before);
    assert.match(await status(), /^Trained on 6 photos/);
    await page.locator('.model-picker summary').click();
  }
  await dropFiles(page, [photo('red-7.png')]);
  assert.equal((await customOf('red-7.png'))[0].label, 'red');
});

test('flips: each photo and its mirror image; an imported head is used until stopped', async () => {
  await page.getByLabel('Also learn from mirror images (flips)').check();
  await page.waitForFunction(() => /^Trained on 6 photos and their mirror images/.test(document.getElementById('custom-status').textContent), null, { timeout: 60_000 });
  // Import the exported head (red, blue) into the page: it is used, the classes stay.
  await page.locator('#custom-classes input[type=file][accept^=".json"]').setInputFiles({ name: 'my-head.json', mimeType: 'application/json', buffer: Buffer.from(exported) });
  await page.waitForFunction(() => /Using the imported head my-head\.json: red, blue/.test(document.querySelector('#custom-classes .imported').textContent));
  await dropFiles(page, [photo('blue-6.png')]);
  assert.equal((await customOf('blue-6.png'))[0].label, 'blue');
  await page.getByRole('button', { name: 'Stop using it' }).click();
  await page.locator('#custom-classes .imported').waitFor({ state: 'hidden' });
  // Focus goes back to the import button.
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Import head…');
  assert.equal(await page.locator('.class-card').count(), 2);
});

test('the camera: a snapshot into a class, and the live view shows the custom class', async () => {
  await page.getByRole('button', { name: 'Add a camera snapshot to red' }).click();
  await page.waitForFunction(() => document.querySelectorAll('.class-card[data-class="red"] .thumbs li').length === 4, null, { timeout: 60_000 });
  await trained(7);
  await page.waitForFunction(() => document.querySelector('#live .live-custom'), null, { timeout: 60_000 });
  assert.match(await page.locator('#live .live-custom').textContent(), /^(red|blue) \d/);
  await page.locator('#camera-stop').click();
});

test('screenshots of the panel at desktop and phone size; nothing scrolls sideways', async () => {
  await page.locator('#custom-classes').scrollIntoViewIfNeeded();
  saveArtifact('classes-desktop.png', await page.locator('#custom-classes').screenshot());
  await page.setViewportSize({ width: 390, height: 844 });
  await page.locator('#custom-classes').scrollIntoViewIfNeeded();
  saveArtifact('classes-phone.png', await page.screenshot({ fullPage: false }));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  assert.equal(overflow, false, 'the page scrolls sideways on a phone-sized screen');
  // Touch targets: every control of the panel is at least 24x24 CSS pixels.
  const small = await page.locator('#custom-classes button, #custom-classes input[type=text], #custom-classes label.check').evaluateAll((els) =>
    els.filter((e) => e.offsetParent).map((e) => e.getBoundingClientRect()).filter((r) => r.width < 24 || r.height < 24).length,
  );
  assert.equal(small, 0);
  await page.setViewportSize({ width: 1200, height: 900 });
});
