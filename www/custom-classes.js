// "Your own classes" on the demo page: name a class, give it a few photos (drop, pick,
// paste, camera snapshot), and a head learns them on this device (model.fitHead) whenever
// the examples change. From then on app.js classifies every photo and camera frame with
// that head too (controller.head) and shows the result (showResult, showLive). Classes and
// photos are kept in IndexedDB (lib/class-store.js); a head can be exported to a file and
// imported from one.
//
// Hooks into the page: app.js calls initCustomClasses() once, useModel() when a model is
// ready, and uses head / showResult / showLive; index.html holds the empty
// <section id="custom-classes">. The camera snapshot uses the page's #video and #camera-start.
import { ClassStore } from './lib/class-store.js';
import { headerSize } from './lib/image-header.js';
import { DEFAULT_LIMITS } from './lib/images.js';

/** Photos the page keeps, over all classes (each is stored in this browser). */
const MAX_PHOTOS = 1000;
const MAX_CLASSES = 100;
const MAX_LABEL = 100;
/** Photos larger than this are kept downscaled (the features come from the original). */
const MAX_STORED_BYTES = 4 * 1024 * 1024;
/** The leave-one-out estimate refits once per photo: shown while that stays quick. */
const LOO_UP_TO = 60;

const pct = (p) => `${(p * 100).toFixed(p >= 0.995 || p < 0.0005 ? 0 : 1)}%`;
const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k in node && typeof v !== 'string') node[k] = v;
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/** A small JPEG of an image for the thumbnails; null when the browser cannot decode it. One
 * whose header says it has more than `maxPixels` is refused undecoded (it may be a decompression
 * bomb). */
async function thumbnail(blob, maxPixels, side = 160) {
  const size = await headerSize(blob);
  if (size && size.width * size.height > maxPixels) {
    throw Object.assign(new Error(`${blob.name || 'photo'}: image is ${size.width}x${size.height} (its ${size.format} header says), over the limit of ${maxPixels} pixels`), { code: 'too-large' });
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image' });
  } catch {
    return null;
  }
  const scale = side / Math.min(bitmap.width, bitmap.height);
  const canvas = new OffscreenCanvas(Math.max(1, Math.round(bitmap.width * scale)), Math.max(1, Math.round(bitmap.height * scale)));
  canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return canvas.convertToBlob({ type: 'image/jpeg', quality: 0.85 });
}

/** The photo as kept: itself, or a downscaled copy of a large one (short side 768 px). */
async function storable(file) {
  if (file.size <= MAX_STORED_BYTES) return file;
  const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  const scale = Math.min(1, 768 / Math.min(bitmap.width, bitmap.height));
  const canvas = new OffscreenCanvas(Math.round(bitmap.width * scale), Math.round(bitmap.height * scale));
  canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return canvas.convertToBlob({ type: 'image/jpeg', quality: 0.92 });
}

class CustomClasses {
  constructor(root, { message, announce, explainError }) {
    this.root = root;
    this.message = message;
    this.announce = announce;
    this.explainError = explainError;
    this.store = new ClassStore();
    this.classes = [];
    this.flips = false;
    this.model = null;
    this.trained = null;
    this.imported = null; // {name, json, head (for this model) | null, problem}
    this.urls = new Map(); // example id -> thumbnail object URL
    this.training = null;
    this.again = false;
    this.snapshots = 0;
    this.build();
    this.ready = this.restore();
  }

  /** The head classify() should use: the imported one where it is in use, else the trained one. */
  get head() {
    const head = this.imported ? this.imported.head : this.trained;
    return head && this.model && head.model.sha256 === this.model.info.sha256 ? head : null;
  }

  build() {
    const r = this.root;
    r.replaceChildren();
    r.classList.add('panel', 'custom');
    r.setAttribute('aria-labelledby', 'custom-title');
    this.nameInput = el('input', { id: 'new-class-name', type: 'text', autocomplete: 'off', maxlength: String(MAX_LABEL), placeholder: 'e.g. my mug' });
    this.list = el('ul', { class: 'class-list', 'aria-label': 'Your classes' });
    this.flipsBox = el('input', { id: 'custom-flips', type: 'checkbox', onchange: () => this.setFlips(this.flipsBox.checked) });
    this.status = el('p', { id: 'custom-status', class: 'custom-status muted', role: 'status', 'aria-live': 'polite' });
    this.exportButton = el('button', { type: 'button', class: 'button small', text: 'Export head…', onclick: () => this.exportHead() });
    this.importInput = el('input', { type: 'file', accept: '.json,application/json', hidden: true, onchange: () => this.importHead(this.importInput.files[0]) });
    this.importButton = el('button', { type: 'button', class: 'button small', text: 'Import head…', onclick: () => this.importInput.click() });
    this.banner = el('div', { class: 'imported', hidden: true });
    r.append(
      el('div', { class: 'custom-head' },
        el('h2', { id: 'custom-title', text: 'Your own classes' }),
        el('p', { class: 'muted', text: 'Teach it things of your own: name a class and give it a few photos. It learns them here, on your device, and then shows them for every photo and the camera.' })),
      el('form', { class: 'new-class', onsubmit: (e) => (e.preventDefault(), this.addClass(this.nameInput.value)) },
        el('label', { for: 'new-class-name', text: 'New class' }),
        el('div', { class: 'row' }, this.nameInput, el('button', { type: 'submit', class: 'button primary', text: 'Add class' }))),
      this.banner,
      this.list,
      el('div', { class: 'custom-foot' },
        el('label', { class: 'check' }, this.flipsBox, ' Also learn from mirror images (flips)'),
        this.status,
        el('div', { class: 'buttons' }, this.exportButton, this.importButton, this.importInput)),
    );
  }

  async restore() {
    try {
      this.classes = await this.store.load();
      this.flips = await this.store.setting('flips', false);
      const imported = await this.store.setting('imported');
      if (imported) this.imported = { ...imported, head: null, problem: null };
    } catch (err) {
      this.message(`Your classes could not be read from this browser's storage: ${err.message || err}`);
    }
    this.flipsBox.checked = this.flips;
    this.render();
    this.refresh();
  }

  /** The model to learn on (null while none is loaded); features of another model are recomputed. */
  async useModel(model) {
    this.model = model;
    this.trained = null;
    await this.ready;
    if (this.imported) await this.loadImported();
    this.refresh();
  }

  // ---- the classes and their photos

  checkName(name, except = null) {
    const clean = name.trim();
    if (!clean) return [null, 'Give the class a name.'];
    if (clean.length > MAX_LABEL) return [null, `A class name has at most ${MAX_LABEL} characters.`];
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(clean)) return [null, 'A class name cannot hold control characters.'];
    const same = this.classes.find((c) => c !== except && c.name.toLowerCase() === clean.toLowerCase());
    if (same) return [null, `There is already a class “${same.name}”: each class needs its own name.`];
    return [clean, null];
  }

  async addClass(name) {
    const [clean, problem] = this.checkName(name);
    if (problem) {
      this.message(problem);
      this.nameInput.focus();
      return null;
    }
    if (this.classes.length >= MAX_CLASSES) {
      this.message(`At most ${MAX_CLASSES} classes.`);
      return null;
    }
    const cls = { id: crypto.randomUUID(), name: clean, order: Date.now(), examples: [] };
    try {
      await this.store.putClass(cls);
    } catch (err) {
      this.message(`The class could not be stored: ${err.message || err}`);
      return null;
    }
    this.classes.push(cls);
    this.nameInput.value = '';
    this.render(`add-${cls.id}`);
    this.announce(`Class ${clean} added. Add a few photos of it.`);
    this.refresh();
    return cls;
  }

  async rename(cls, input) {
    const [clean, problem] = this.checkName(input.value, cls);
    if (problem) {
      this.message(problem);
      input.value = cls.name;
      return;
    }
    if (clean === cls.name) return;
    cls.name = clean;
    await this.store.putClass(cls).catch((err) => this.message(`The new name could not be stored: ${err.message || err}`));
    this.render(`name-${cls.id}`);
    this.announce(`Renamed to ${clean}.`);
    this.refresh();
  }

  async deleteClass(cls) {
    const n = cls.examples.length;
    if (n && !confirm(`Delete the class “${cls.name}” and its ${plural(n, 'photo')}?`)) return;
    await this.store.deleteClass(cls.id).catch((err) => this.message(`The class could not be deleted: ${err.message || err}`));
    for (const e of cls.examples) this.forgetUrl(e.id);
    const at = this.classes.indexOf(cls);
    this.classes.splice(at, 1);
    const next = this.classes[Math.min(at, this.classes.length - 1)];
    this.render(next ? `name-${next.id}` : 'new-class');
    this.announce(`Class ${cls.name} deleted.`);
    this.refresh();
  }

  /** Adds photos to a class: each is checked and embedded now where a model is loaded. */
  async addPhotos(cls, files) {
    let added = 0;
    for (const file of files) {
      const name = file.name || 'photo';
      const total = this.classes.reduce((n, c) => n + c.examples.length, 0);
      if (total >= MAX_PHOTOS) {
        this.message(`${name}: this page keeps at most ${MAX_PHOTOS} photos over all classes; remove some first.`);
        break;
      }
      const example = { id: crypto.randomUUID(), classId: cls.id, name, added: Date.now() + added, features: null };
      try {
        if (this.model) example.features = await this.embed(file);
        example.thumb = await thumbnail(file, (this.model?.info.limits ?? DEFAULT_LIMITS).max_pixels);
        if (!example.thumb) throw Object.assign(new Error(`${name}: not an image this browser can decode`), { code: 'not-image' });
        example.blob = await storable(file);
        await this.store.putExample(example);
      } catch (err) {
        this.message(`${cls.name}: ${this.explainError(err)}`);
        continue;
      }
      cls.examples.push(example);
      added++;
      this.render(`add-${cls.id}`);
      this.refresh();
    }
    if (added) this.announce(`${plural(added, 'photo')} added to ${cls.name}.`);
    return added;
  }

  async removePhoto(cls, example) {
    await this.store.deleteExample(example.id).catch((err) => this.message(`The photo could not be removed: ${err.message || err}`));
    const at = cls.examples.indexOf(example);
    cls.examples.splice(at, 1);
    this.forgetUrl(example.id);
    const next = cls.examples[Math.min(at, cls.examples.length - 1)];
    this.render(next ? `remove-${next.id}` : `add-${cls.id}`);
    this.announce(`Removed ${example.name} from ${cls.name}.`);
    this.refresh();
  }

  async snapshot(cls) {
    const video = document.getElementById('video');
    if (!video?.srcObject) {
      document.getElementById('camera-start')?.click();
      for (let i = 0; i < 100 && !(video?.srcObject && video.readyState >= 2); i++) await new Promise((r) => setTimeout(r, 100));
    }
    if (!video?.srcObject || video.readyState < 2) {
      this.message('No camera picture to take: the camera did not start.');
      return;
    }
    const canvas = el('canvas', { width: video.videoWidth, height: video.videoHeight });
    canvas.getContext('2d').drawImage(video, 0, 0);
    const blob = await new Promise((r) => canvas.toBlob(r, 'image/jpeg', 0.92));
    await this.addPhotos(cls, [new File([blob], `snapshot-${++this.snapshots}.jpg`, { type: 'image/jpeg' })]);
  }

  /** The features of a photo (and of its mirror image, with flips) for the current model. */
  async embed(blob) {
    const views = [await this.model.embed(blob)];
    if (this.flips) views.push(await this.model.embed(blob, { mirror: true }));
    return { model: this.model.info.sha256, views };
  }

  async setFlips(on) {
    this.flips = on;
    await this.store.setSetting('flips', on).catch(() => {});
    this.refresh();
  }

  // ---- training

  /** Brings every photo's features up to date, then trains (once at a time; again if asked meanwhile). */
  refresh() {
    this.renderControls();
    if (this.training) {
      this.again = true;
      return;
    }
    this.training = (async () => {
      do {
        this.again = false;
        await this.updateFeatures();
        await this.train();
      } while (this.again);
      this.training = null;
    })();
  }

  async updateFeatures() {
    const model = this.model;
    if (!model) return;
    const stale = this.classes.flatMap((c) => c.examples).filter((e) => e.features?.model !== model.info.sha256 || (this.flips && e.features.views.length < 2));
    for (const [i, e] of stale.entries()) {
      this.setStatus(`Reading ${plural(stale.length, 'photo')} with this model… ${i + 1} of ${stale.length}`);
      try {
        if (e.features?.model === model.info.sha256) e.features.views.push(await model.embed(e.blob, { mirror: true }));
        else e.features = await this.embed(e.blob);
        await this.store.putExample(e);
      } catch (err) {
        if (this.model !== model) return;
        this.message(`${e.name}: ${this.explainError(err)}`);
      }
    }
  }

  async train() {
    try {
      await this.fit();
    } finally {
      this.renderControls();
    }
  }

  async fit() {
    const model = this.model;
    const ready = this.classes.filter((c) => c.examples.length);
    const photos = ready.reduce((n, c) => n + c.examples.length, 0);
    const waiting = this.classes.find((c) => !c.examples.length);
    if (!model) {
      this.trained = null;
      return this.setStatus(this.classes.length ? 'Waiting for the model to load…' : '');
    }
    if (this.classes.length < 2 || waiting) {
      this.trained = null;
      const hint = !this.classes.length ? 'Name a class, then add a few photos of it.' : this.classes.length < 2 ? 'Add a second class: a head tells classes apart.' : `Add photos to “${waiting.name}”.`;
      return this.setStatus(this.imported?.head ? `${hint} The imported head is in use meanwhile.` : hint);
    }
    const usable = (e) => e.features?.model === model.info.sha256;
    const examples = new Map(this.classes.map((c) => [c.name, c.examples.filter(usable).map((e) => (this.flips ? e.features.views : e.features.views.slice(0, 1)))]));
    this.setStatus(`Training on ${plural(photos, 'photo')}…`);
    try {
      const head = await model.fitHead(examples, { flips: this.flips, loo: photos <= LOO_UP_TO });
      if (this.model !== model) return;
      this.trained = head;
      const t = head.training;
      const loo = t.loo ? `; ${t.loo.correct} of ${t.loo.counted} right when each is left out in turn (an estimate for new photos)` : '';
      this.setStatus(`Trained on ${plural(photos, 'photo')}${this.flips ? ' and their mirror images' : ''} in ${Math.max(1, Math.round(head.ms))} ms: ${t.train_correct} of ${photos} right${loo}.${this.imported?.head ? ' The imported head is in use; stop using it to use these.' : ''}`);
      this.root.dataset.trained = String(Number(this.root.dataset.trained || 0) + 1);
    } catch (err) {
      if (this.model !== model) return;
      this.trained = null;
      this.setStatus(`Not trained: ${this.explainError(err)}`, true);
    }
  }

  setStatus(text, error = false) {
    this.status.textContent = text;
    this.status.classList.toggle('error-text', error);
  }

  // ---- keep and share

  exportHead() {
    const head = this.head;
    if (!head) return;
    const blob = new Blob([JSON.stringify(head)], { type: 'application/json' });
    const a = el('a', { href: URL.createObjectURL(blob), download: `${head.model.name.replace(/[^\w.-]+/g, '-')}-head.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    this.announce(`Head exported: ${head.classes.join(', ')}.`);
  }

  async importHead(file) {
    this.importInput.value = '';
    if (!file) return;
    if (!this.model) {
      this.message('Load a model before importing a head: a head belongs to one model.');
      return;
    }
    let json;
    let head;
    try {
      json = await file.text();
      head = await this.model.loadHead(json, { source: file.name });
    } catch (err) {
      // Nothing changes: the classes and the head in use stay as they were.
      this.message(`${this.explainError(err)}`);
      return;
    }
    this.imported = { name: file.name, json, head, problem: null };
    await this.store.setSetting('imported', { name: file.name, json }).catch((err) => this.message(`The imported head could not be stored: ${err.message || err}`));
    this.renderControls();
    this.announce(`Imported ${file.name}: ${head.classes.join(', ')}.`);
  }

  async loadImported() {
    const imp = this.imported;
    imp.head = null;
    imp.problem = null;
    if (!this.model) return;
    try {
      imp.head = await this.model.loadHead(imp.json, { source: imp.name });
    } catch (err) {
      imp.problem = this.explainError(err);
    }
  }

  async stopImported() {
    this.imported = null;
    await this.store.setSetting('imported', null).catch(() => {});
    this.renderControls();
    this.importButton.focus();
    this.announce('The imported head is no longer used.');
  }

  // ---- what the page shows

  /** Shows a photo's custom classes in its card (above the ImageNet top-5), or removes them. */
  showResult(card, custom) {
    card.querySelector('.custom-result')?.remove();
    if (!custom) {
      delete card.dataset.custom;
      return;
    }
    card.dataset.custom = JSON.stringify(custom);
    const list = el('ol', { class: 'top custom-top' });
    for (const [rank, p] of custom.slice(0, 5).entries()) {
      const bar = el('span', { class: 'bar', 'aria-hidden': 'true' }, el('span'));
      bar.firstChild.style.width = `${Math.max(0.5, p.prob * 100)}%`;
      list.append(el('li', { class: rank === 0 ? 'best' : '' }, el('span', { class: 'label', text: p.label }), el('span', { class: 'prob', text: pct(p.prob) }), bar));
    }
    const block = el('div', { class: 'custom-result' }, el('h3', { class: 'list-title', text: 'Your classes' }), list, el('h3', { class: 'list-title', text: 'ImageNet' }));
    card.querySelector('.top').before(block);
  }

  /** Adds the most probable custom class to the live camera overlay. */
  showLive(live, custom) {
    if (!custom?.length) return;
    live.prepend(el('div', { class: 'live-custom', text: `${custom[0].label} ${pct(custom[0].prob)}` }));
  }

  renderControls() {
    const head = this.head;
    this.exportButton.disabled = !head;
    this.exportButton.title = head ? `Save ${head.classes.join(', ')} as a file` : 'Nothing to export yet: train a head or import one';
    const imp = this.imported;
    this.banner.hidden = !imp;
    if (!imp) return;
    const what = imp.head
      ? `Using the imported head ${imp.name}: ${imp.head.classes.join(', ')}. Your own classes below are kept.`
      : imp.problem
        ? `The imported head ${imp.name} is not used: ${imp.problem}`
        : `The imported head ${imp.name} is used once the model has loaded.`;
    this.banner.replaceChildren(el('p', { text: what }), el('button', { type: 'button', class: 'button small', text: 'Stop using it', onclick: () => this.stopImported() }));
  }

  /** Rebuilds the list of classes; then focuses the control named by `focus` (keyboard users keep their place). */
  render(focus = null) {
    const items = this.classes.map((cls) => this.renderClass(cls));
    this.list.replaceChildren(...items);
    this.list.hidden = !items.length;
    this.renderControls();
    if (focus === 'new-class') this.nameInput.focus();
    else if (focus) this.root.querySelector(`[data-focus="${focus}"]`)?.focus();
  }

  renderClass(cls) {
    const fileInput = el('input', { type: 'file', accept: 'image/*', multiple: true, hidden: true, onchange: () => {
      const files = [...fileInput.files];
      fileInput.value = '';
      this.addPhotos(cls, files);
    } });
    const nameId = `class-name-${cls.id}`;
    const name = el('input', { id: nameId, class: 'class-name', type: 'text', value: cls.name, maxlength: String(MAX_LABEL), 'data-focus': `name-${cls.id}`, 'aria-label': `Name of the class ${cls.name}`, autocomplete: 'off' });
    name.addEventListener('change', () => this.rename(cls, name));
    name.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') name.value = cls.name;
      if (e.key === 'Enter') name.blur();
    });
    const thumbs = el('ul', { class: 'thumbs', 'aria-label': `Photos of ${cls.name}` });
    for (const e of cls.examples) {
      const img = el('img', { src: this.url(e), alt: e.name, width: 64, height: 64 });
      const remove = el('button', { type: 'button', class: 'remove', 'aria-label': `Remove ${e.name} from ${cls.name}`, title: `Remove ${e.name}`, 'data-focus': `remove-${e.id}`, text: '×', onclick: () => this.removePhoto(cls, e) });
      thumbs.append(el('li', {}, img, remove));
    }
    const add = el('button', { type: 'button', class: 'button small primary', 'data-focus': `add-${cls.id}`, 'aria-label': `Add photos to ${cls.name}`, text: 'Add photos…', onclick: () => fileInput.click() });
    const snap = el('button', { type: 'button', class: 'button small', 'aria-label': `Add a camera snapshot to ${cls.name}`, text: 'Snapshot', onclick: () => this.snapshot(cls) });
    const del = el('button', { type: 'button', class: 'button small danger', 'aria-label': `Delete the class ${cls.name}`, text: 'Delete', onclick: () => this.deleteClass(cls) });
    const item = el('li', { class: 'class-card', 'data-class': cls.name, 'data-own-drop': '' },
      el('div', { class: 'class-top' }, name, el('span', { class: 'count muted', text: plural(cls.examples.length, 'photo') }), del),
      thumbs,
      el('div', { class: 'class-add' }, add, snap, fileInput, el('span', { class: 'hint muted for-pointer', text: 'or drop or paste photos here' })),
    );
    item.addEventListener('dragover', (e) => {
      e.preventDefault();
      item.classList.add('over');
    });
    item.addEventListener('dragleave', (e) => {
      if (!item.contains(e.relatedTarget)) item.classList.remove('over');
    });
    item.addEventListener('drop', (e) => {
      e.preventDefault();
      item.classList.remove('over');
      const files = [...(e.dataTransfer?.files || [])];
      if (files.length) this.addPhotos(cls, files);
      else this.message(`Nothing was dropped on ${cls.name}: drop image files.`);
    });
    // Paste while focus is in this class: the photos go to it, not to the results.
    item.addEventListener('paste', (e) => {
      const files = [...(e.clipboardData?.items || [])].filter((i) => i.kind === 'file').map((i) => i.getAsFile()).filter(Boolean);
      if (!files.length) return;
      e.preventDefault();
      e.stopPropagation();
      this.addPhotos(cls, files.map((f, i) => new File([f], `pasted-${Date.now()}-${i + 1}.${f.type.split('/')[1] || 'png'}`, { type: f.type })));
    });
    return item;
  }

  url(example) {
    if (!this.urls.has(example.id)) this.urls.set(example.id, URL.createObjectURL(example.thumb));
    return this.urls.get(example.id);
  }

  forgetUrl(id) {
    const url = this.urls.get(id);
    if (url) URL.revokeObjectURL(url);
    this.urls.delete(id);
  }
}

/** Builds the panel in <section id="custom-classes">; `page` gives the page's message(text, kind),
 * announce(text) and explainError(err). */
export function initCustomClasses(page) {
  const root = document.getElementById('custom-classes');
  return new CustomClasses(root, page);
}

