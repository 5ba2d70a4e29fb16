// <bit50-classifier model="URL"></bit50-classifier>: a self-contained drop zone that
// classifies photos on the visitor's device. One script tag adds it to any page:
//
//   <script type="module" src="https://example.org/bit50/bit50-embed.js"></script>
//   <bit50-classifier model="https://example.org/bit50/models/bit-50/"></bit50-classifier>
//
// Attributes: model (required), fallback-model (tried when model is not found, e.g. a
// mirror), top-k (default 3), head (a head file's URL: your own classes, from the demo page's
// export or `bit50 fit`, shown above the top-k). Events (bubbling, composed):
// 'prediction' {detail: {name, top, custom?, ms}}, 'ready' {detail: info},
// 'error' {detail: {code, message}}. It says, in plain sight, when the model's labels mean
// nothing (an untrained or test model), and when it uses its fallback model.
import { load, caveat } from './bit50.js';

const models = new Map(); // one load per model URL, shared by every widget on the page

const STYLE = `
:host { display: block; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24; max-width: 420px; }
[hidden] { display: none !important; }
.box { border: 2px dashed #b9c3d3; border-radius: 14px; background: #fbfcfe; padding: 16px; text-align: center; transition: background .15s, border-color .15s; }
.box.over { background: #e6ecfd; border-color: #2f5bea; }
.status { font-size: .85rem; color: #5b6470; margin: 0 0 10px; }
.status.error, .err { color: #b3261e; }
button { font: inherit; font-weight: 600; cursor: pointer; border-radius: 10px; padding: 8px 14px; border: 1px solid #2f5bea; background: #2f5bea; color: #fff; }
button:disabled { opacity: .5; cursor: default; }
button:focus-visible { outline: 3px solid #2f5bea; outline-offset: 2px; }
.hint { font-size: .85rem; color: #5b6470; margin: 8px 0 0; }
@media not (any-pointer: fine) { .hint { display: none; } } /* touch only: nothing to drop */
.result { display: flex; gap: 12px; align-items: flex-start; text-align: left; margin-top: 14px; }
.result img { width: 96px; height: 96px; object-fit: cover; border-radius: 10px; background: #eef1f5; flex: none; }
ol { list-style: none; margin: 0; padding: 0; flex: 1; min-width: 0; }
li { display: grid; grid-template-columns: 1fr auto; font-size: .9rem; gap: 2px 8px; margin-bottom: 5px; }
li:first-child .label { font-weight: 700; }
.label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.prob { color: #5b6470; font-variant-numeric: tabular-nums; }
.bar { grid-column: 1 / -1; height: 5px; background: #edf0f4; border-radius: 99px; overflow: hidden; }
.bar span { display: block; height: 100%; background: #2f5bea; }
.credit { font-size: .75rem; color: #8a929c; margin: 10px 0 0; }
.lists { flex: 1; min-width: 0; }
.title { font-size: .7rem; text-transform: uppercase; letter-spacing: .04em; color: #5b6470; margin: 0 0 4px; }
ol.custom { margin-bottom: 8px; }
ol.custom .bar span { background: #17803d; }
.notice { font-size: .85rem; font-weight: 600; color: #8a5a00; background: #fff3d6; border-radius: 8px; padding: 6px 10px; margin: 0 0 10px; text-align: left; }
.meaningless li:first-child .label { font-weight: 400; }
.meaningless .bar span { background: #b5bcc6; }
.vh { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
`;

// A constructed style sheet: a page whose CSP allows no inline style still styles the widget
// (a <style> element only where constructed sheets are missing: Safari before 16.4).
const SHEET = 'adoptedStyleSheets' in Document.prototype ? new CSSStyleSheet() : null;
SHEET?.replaceSync(STYLE);

class Bit50Classifier extends HTMLElement {
  static get observedAttributes() {
    return ['model', 'head'];
  }

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    if (SHEET) root.adoptedStyleSheets = [SHEET];
    root.innerHTML = `${SHEET ? '' : `<style>${STYLE}</style>`}
      <div class="box" part="dropzone">
        <p class="status" part="status" aria-live="polite">Loading the model…</p>
        <p class="notice" part="notice" hidden></p>
        <button type="button" part="button" disabled>Choose a photo</button>
        <input type="file" accept="image/*" hidden>
        <p class="hint">or drop one here</p>
        <div class="result" part="result" hidden aria-live="polite"><img alt="">
          <div class="lists"><div class="custom-block" hidden><p class="title">Your classes</p><ol class="custom"></ol><p class="title">ImageNet</p></div><ol class="top"></ol></div></div>
        <p class="credit">BiT-50, running on your device</p>
      </div>`;
    this._box = root.querySelector('.box');
    this._status = root.querySelector('.status');
    this._notice = root.querySelector('.notice');
    this._button = root.querySelector('button');
    this._input = root.querySelector('input');
    this._result = root.querySelector('.result');
    this._button.onclick = () => this._input.click();
    this._input.onchange = () => {
      if (this._input.files[0]) this.classify(this._input.files[0]);
      this._input.value = '';
    };
    const box = this._box;
    box.addEventListener('dragover', (e) => {
      e.preventDefault();
      box.classList.add('over');
    });
    box.addEventListener('dragleave', () => box.classList.remove('over'));
    box.addEventListener('drop', (e) => {
      e.preventDefault();
      e.stopPropagation();
      box.classList.remove('over');
      const file = e.dataTransfer?.files?.[0];
      if (file) this.classify(file);
    });
  }

  connectedCallback() {
    this._load();
  }

  attributeChangedCallback(name) {
    if (!this.isConnected) return;
    if (name === 'head') this._loadHead();
    else this._load();
  }

  _load(url = this.getAttribute('model')) {
    if (!url) {
      this._fail({ code: 'bad-input', message: 'the model attribute is missing' });
      return;
    }
    const absolute = new URL(url, document.baseURI).href;
    if (this._url === absolute) return;
    if (url === this.getAttribute('model')) this._missing = null;
    this._url = absolute;
    if (!models.has(absolute)) {
      models.set(absolute, load(absolute, {
        onProgress: (p) => {
          for (const el of document.querySelectorAll('bit50-classifier')) {
            if (el._url === absolute && !el._model) el._status.textContent = loadingText(p);
          }
        },
      }));
    }
    this._model = null;
    this._button.disabled = true;
    this._status.classList.remove('error');
    this._showNotice();
    models.get(absolute).then(
      (model) => {
        if (this._url !== absolute) return;
        this._model = model;
        this._button.disabled = false;
        this._showNotice();
        this._status.textContent = this._ready();
        this._emit('ready', model.info);
        this._loadHead();
      },
      (err) => {
        models.delete(absolute);
        if (this._url !== absolute) return;
        const fallback = this.getAttribute('fallback-model');
        if (err.code === 'not-found' && fallback && new URL(fallback, document.baseURI).href !== absolute) {
          this._missing = absolute;
          this._load(fallback);
          return;
        }
        this._fail(err);
      },
    );
  }

  /** What the user must know about the model: that it is the fallback, that its labels mean nothing. */
  _showNotice() {
    const lines = [];
    if (this._missing && this._missing !== this._url) {
      const fallback = this._model?.info.name ?? this.getAttribute('fallback-model');
      lines.push(`The model ${this.getAttribute('model')} was not found, so this uses its fallback model, ${fallback}.`);
    }
    const warning = this._model && caveat(this._model.info);
    if (warning) lines.push(warning.long);
    this._notice.textContent = lines.join(' ');
    this._notice.hidden = !lines.length;
  }

  _ready() {
    const engine = this._model.info.backend === 'webgpu' ? 'WebGPU' : 'CPU';
    return this._head ? `Ready (${engine}), with your classes: ${this._head.classes.join(', ')}` : `Ready (${engine})`;
  }

  /** Reads the head file named by the head attribute; the widget works without it meanwhile. */
  async _loadHead(url = this.getAttribute('head')) {
    this._head = null;
    if (!this._model) return;
    if (!url) {
      this._status.textContent = this._ready();
      return;
    }
    const model = this._model;
    const absolute = new URL(url, document.baseURI).href;
    this._headUrl = absolute;
    try {
      const response = await fetch(absolute);
      if (!response.ok) throw Object.assign(new Error(`${absolute}: HTTP ${response.status}`), { code: response.status === 404 ? 'not-found' : 'network' });
      const head = await model.loadHead(await response.text(), { source: absolute.split('/').pop() || absolute });
      if (this._headUrl !== absolute || this._model !== model) return;
      this._head = head;
      this._status.classList.remove('error');
      this._status.textContent = this._ready();
      this._emit('head', { classes: head.classes });
    } catch (err) {
      if (this._headUrl !== absolute) return;
      this._fail({ code: err.code || 'network', message: `the head file cannot be used: ${err.message}` });
    }
  }

  _fail(err) {
    this._status.textContent = `Cannot classify: ${err.message}`;
    this._status.classList.add('error');
    this._emit('error', { code: err.code || 'error', message: err.message });
  }

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
  }

  /** Classifies a Blob/File (or any input bit50.js accepts) and shows the result. */
  async classify(input) {
    if (!this._model) {
      this._fail({ code: 'not-loaded', message: 'the model is not loaded yet' });
      return null;
    }
    const k = Number(this.getAttribute('top-k')) || 3;
    this._status.classList.remove('error');
    this._status.textContent = 'Classifying…';
    try {
      const r = await this._model.classify(input, { topK: k, head: this._head });
      const img = this._result.querySelector('img');
      if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
      img.src = input instanceof Blob ? URL.createObjectURL(input) : '';
      img.alt = input.name || 'photo';
      const items = (list) =>
        list.map((p) => {
          const li = document.createElement('li');
          li.innerHTML = '<span class="label"></span><span class="prob"></span><span class="bar"><span></span></span>';
          li.querySelector('.label').textContent = p.label;
          li.querySelector('.prob').textContent = `${(p.prob * 100).toFixed(1)}%`;
          li.querySelector('.bar span').style.width = `${Math.max(1, p.prob * 100)}%`;
          return li;
        });
      const warning = caveat(this._model.info);
      this._result.querySelector('ol.top').replaceChildren(...items(r.top));
      this._result.classList.toggle('meaningless', !!warning);
      this._result.querySelector('ol.custom').replaceChildren(...items(r.custom?.slice(0, k) ?? []));
      this._result.querySelector('.custom-block').hidden = !r.custom;
      this._result.hidden = false;
      const best = r.custom?.[0] ?? r.top[0];
      // Labels that mean nothing are not given as the answer (the notice above says why; the
      // status, read out, says it too).
      if (!r.custom && warning) {
        const why = Object.assign(document.createElement('span'), { className: 'vh', textContent: ` ${warning.short}` });
        this._status.replaceChildren(`Classified in ${Math.round(r.ms)} ms.`, why);
      } else {
        this._status.textContent = `${best.label} (${Math.round(r.ms)} ms)`;
      }
      const detail = { name: input.name || 'image', top: r.top, ms: r.ms };
      if (r.custom) detail.custom = r.custom;
      this._emit('prediction', detail);
      return detail;
    } catch (err) {
      this._fail(err);
      return null;
    }
  }
}

/** The status line while the model loads (bit50.js load: onProgress). */
function loadingText(p) {
  if (p.phase === 'downloading') return `Downloading the weights… ${p.total ? Math.floor((100 * p.loaded) / p.total) : 0}%`;
  if (p.phase === 'measuring') return 'Measuring which is faster here, the graphics chip or the processor…';
  return 'Preparing the graphics chip…';
}

if (!customElements.get('bit50-classifier')) customElements.define('bit50-classifier', Bit50Classifier);
