// The demo page: load a model, classify dropped / picked / pasted photos and camera frames.
import { load, drawHeatmap, caveat, Bit50Error } from './bit50.js';
import { initCustomClasses } from './custom-classes.js';
import { headerSize } from './lib/image-header.js';
import { DEFAULT_LIMITS } from './lib/images.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let model = null;
let loading = null;
let cardCount = 0;

const reducedMotion = matchMedia('(prefers-reduced-motion: reduce)');

const fmtBytes = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.round(n / 1024)} KB`);
const pct = (p) => `${(p * 100).toFixed(p >= 0.995 || p < 0.0005 ? 0 : 1)}%`;

/** Shows a message that stays until dismissed (errors) or a few seconds (notes). */
function message(text, kind = 'error') {
  const box = document.createElement('div');
  box.className = `message ${kind}`;
  const p = document.createElement('p');
  p.textContent = text;
  const close = document.createElement('button');
  close.className = 'close';
  close.type = 'button';
  close.setAttribute('aria-label', 'Dismiss this message');
  close.textContent = '×';
  close.onclick = () => box.remove();
  box.append(p, close);
  $('messages').append(box);
  if (kind !== 'error') setTimeout(() => box.remove(), 6000);
  return box;
}

function announce(text) {
  const a = $('announcer');
  a.textContent = '';
  setTimeout(() => (a.textContent = text), 50);
}

function explainError(err) {
  const hints = {
    'not-found': 'Weights not found.',
    checksum: 'Checksum mismatch: the weights are damaged or do not belong to this model.',
    network: 'Network error.',
    'bad-model': 'This is not a model this page can load.',
    'no-webgpu': 'No WebGPU.',
    'not-image': 'Not an image.',
    truncated: 'Damaged image.',
    'too-large': 'File too large.',
    'bad-head': 'Not a usable head file.',
    'other-model': 'A head for another model.',
  };
  const hint = hints[err.code];
  return hint ? `${hint} ${err.message}` : err.message || String(err);
}

/** ?model=URL, else the site's default, as models/index.json (written by ./build.sh serve) names it. */
async function defaultModelUrl() {
  if (params.get('model')) return params.get('model');
  try {
    const r = await fetch('models/index.json', { cache: 'no-cache' });
    if (r.ok) return `models/${(await r.json()).default}`;
  } catch {}
  return 'models/bit-50/';
}

/** Where the network runs, in plain words. */
const whereItRuns = (info) => (info.backend === 'webgpu' ? 'this device’s graphics chip' : 'this device’s processor');

const PHASES = { preparing: 'Preparing the graphics chip', measuring: 'Measuring which is faster here', downloading: 'Downloading the weights' };
let shownPhase = null;

/** The load's progress, one phase at a time (bit50.js load: onProgress), in one short line. */
function showProgress(p) {
  const bar = $('progress');
  if (p.total > 0) {
    bar.max = p.total;
    bar.value = p.loaded;
  } else {
    bar.removeAttribute('value'); // indeterminate: how long is not known yet
  }
  bar.dataset.phase = p.phase;
  if (p.phase === 'downloading') {
    const fromCache = p.loaded > 0 && p.cachedBytes >= p.loaded;
    const verb = fromCache ? 'Reading the weights from the cache' : PHASES.downloading;
    $('model-status').textContent = `${verb}: ${fmtBytes(p.loaded)} of ${fmtBytes(p.total)} (${Math.floor((100 * p.loaded) / (p.total || 1))}%)`;
  } else {
    $('model-status').textContent = `${PHASES[p.phase] ?? p.phase}${p.total ? ` (${p.loaded} of ${p.total})` : ''}…`;
  }
  // Said once per phase (the bytes would be too many to hear).
  if (p.phase !== shownPhase) announce(`${PHASES[p.phase] ?? p.phase}…`);
  shownPhase = p.phase;
}

/**
 * The model panel for a loaded model: what it is and where it runs, in plain words (a model
 * whose labels mean nothing says so); the technical facts behind "Technical details".
 */
function showModel(info, seconds) {
  const warning = caveat(info);
  $('model-name').textContent = info.name;
  $('progress').value = $('progress').max;
  $('progress').dataset.phase = 'ready';
  // Where WebGPU is missing (rather than measured slower), the processor is the slower choice.
  const slower = info.backend !== 'webgpu' && !/^measured at load/.test(info.fallback_reason || '');
  const what = warning ? warning.long : `A trained network: it tells ${info.classes.toLocaleString('en')} kinds of things apart.`;
  const status = $('model-status');
  status.textContent = `${what} It runs on ${whereItRuns(info)}${slower ? ' (no WebGPU here: slower)' : ''}.`;
  status.classList.toggle('warn-text', !!warning);
  const threads = info.threads > 1 ? `, ${info.threads} threads` : info.workers > 1 ? `, ${info.workers} workers side by side` : '';
  $('adapter').textContent = info.backend === 'webgpu' ? info.adapter : `the CPU, in WebAssembly (${info.wasm}${threads})`;
  $('path-title').textContent = info.backend === 'webgpu' ? 'Kernels' : 'Why the CPU';
  $('path').textContent = info.backend === 'webgpu' ? `${info.kernels}, ${info.precision}${info.subgroups ? ', subgroups' : ''}, ${info.batch} per submission (${info.featureLevel})` : info.fallback_reason;
  $('weights-source').textContent = info.fromCache
    ? `${fmtBytes(info.bytes)} ${info.dtype}, from this browser's cache (no download)`
    : `${fmtBytes(info.bytes)} ${info.dtype}, downloaded and checked (sha256), now cached`;
  if (seconds !== undefined) $('loaded').textContent = `${info.classes} classes, ${info.image_size}×${info.image_size} input, in ${seconds.toFixed(1)} s`;
  $('model-sha256').textContent = info.sha256;
  document.body.dataset.backend = info.backend;
}

let loads = 0;

/**
 * Loads the model at `url`. The model in use (if any) stays in use until the new one is
 * ready, and stays if it fails (the network off, a wrong URL).
 */
async function loadModel(url) {
  const attempt = ++loads;
  const previous = model;
  $('model-url').value = url;
  $('progress').removeAttribute('value');
  $('progress').dataset.phase = 'starting';
  $('model-status').classList.remove('warn-text');
  $('model-status').textContent = 'Starting…';
  shownPhase = null;
  if (!previous) $('model-name').textContent = 'loading…';
  document.body.dataset.model = 'loading';
  const t0 = performance.now();
  let next;
  try {
    loading = load(url, { onProgress: (p) => attempt === loads && showProgress(p) });
    next = await loading;
  } catch (err) {
    if (attempt !== loads) return false;
    loading = null;
    const offline = navigator.onLine === false && err.code === 'network';
    const why = offline ? 'this device is offline, and the model is not in this browser’s cache.' : explainError(err);
    if (previous) {
      document.body.dataset.model = 'ready';
      showModel(previous.info);
      message(`${url} could not be loaded: ${why} Still using ${previous.info.name}.`);
      return false;
    }
    document.body.dataset.model = 'error';
    $('model-name').textContent = 'not loaded';
    $('progress').value = 0;
    $('model-status').textContent = 'The model could not be loaded.';
    for (const id of ['adapter', 'path', 'weights-source', 'loaded', 'model-sha256']) $(id).textContent = '—';
    message(`${offline ? `${url} could not be loaded: ${why}` : explainError(err)} Pick another model under “Use another model”.`);
    return false;
  }
  if (attempt !== loads) {
    next.dispose();
    return false;
  }
  loading = null;
  model = next;
  previous?.dispose();
  const info = model.info;
  showModel(info, (performance.now() - t0) / 1000);
  document.body.dataset.model = 'ready';
  announce($('model-status').textContent);
  if (info.cacheFailed) message(`The weights could not be kept in this browser's storage (${info.cacheFailed}): the model runs, but the next visit downloads them again and the page cannot work offline.`, 'warn');
  customClasses.useModel(model);
  const current = model;
  current.addEventListener('devicelost', () => message('The graphics chip stopped answering (its device was lost); reloading the model…', 'warn'));
  current.addEventListener('recovered', () => {
    if (current !== model) return;
    message(`Recovered: the model runs again on ${whereItRuns(current.info)}.`, 'note');
    showModel(current.info);
  });
  return true;
}

async function ready() {
  if (model) return model;
  if (loading) {
    try {
      return await loading;
    } catch {}
  }
  throw new Bit50Error('not-loaded', 'No model is loaded: load one under “Use another model”.');
}

function drawThumb(canvas, bitmap) {
  const max = 480;
  const scale = Math.min(1, max / Math.max(bitmap.width, bitmap.height));
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
}

function renderTop(list, top) {
  list.replaceChildren();
  for (const [rank, p] of top.entries()) {
    const li = document.createElement('li');
    li.className = rank === 0 ? 'best' : '';
    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = p.label;
    const value = document.createElement('span');
    value.className = 'prob';
    value.textContent = pct(p.prob);
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    fill.style.width = `${Math.max(0.5, p.prob * 100)}%`;
    bar.append(fill);
    li.append(label, value, bar);
    li.dataset.index = p.index;
    list.append(li);
  }
}

/** A placeholder card for one photo, waiting its turn. */
function newCard(file) {
  const card = $('card-template').content.firstElementChild.cloneNode(true);
  card.id = `card-${++cardCount}`;
  const name = file.name || 'pasted image';
  card.querySelector('.name').textContent = name;
  card.setAttribute('aria-label', name);
  card.classList.add('waiting');
  thumbnailBitmap(file).then(
    (bitmap) => {
      drawThumb(card.querySelector('.photo'), bitmap);
      bitmap.close();
    },
    () => card.querySelector('.thumb').classList.add('broken'),
  );
  return card;
}

/**
 * The photo decoded for its thumbnail, unless its header says it is over the pixel limit (the
 * worker refuses it from its header too: a decompression bomb is never decoded).
 */
async function thumbnailBitmap(file) {
  const size = await headerSize(file);
  const max = (model?.info.limits ?? DEFAULT_LIMITS).max_pixels;
  if (size && size.width * size.height > max) throw new Error('no thumbnail');
  return createImageBitmap(file, { imageOrientation: 'from-image' });
}

function fillCard(card, file, result) {
  card.classList.remove('waiting', 'busy');
  card.classList.add('done');
  card.querySelector('.state').hidden = true;
  // A model whose labels mean nothing says so on every card, in plain sight, and its first
  // label is not set apart as the answer.
  const warning = model && caveat(model.info);
  const notice = card.querySelector('.card-notice');
  notice.hidden = !warning;
  notice.textContent = warning?.short ?? '';
  card.classList.toggle('meaningless', !!warning);
  renderTop(card.querySelector('.top'), result.top);
  customClasses.showResult(card, result.custom);
  card.querySelector('.meta').textContent = `${Math.round(result.ms)} ms · ${model?.info.backend === 'webgpu' ? 'graphics chip' : 'processor'}`;
  const toggle = card.querySelector('.toggle-heat');
  toggle.hidden = false;
  toggle.onclick = () => toggleHeatmap(card, file, result.top[0], toggle);
  card.dataset.top = JSON.stringify(result.top);
}

/**
 * A photo's error, said once, on its card (banners are for the page's own problems), without
 * the file name the card already shows.
 */
function failCard(card, err) {
  card.classList.remove('waiting', 'busy');
  card.classList.add(err.code === 'cancelled' ? 'cancelled' : 'failed');
  const state = card.querySelector('.state');
  state.hidden = false;
  state.classList.remove('muted');
  state.classList.toggle('error-text', err.code !== 'cancelled');
  const name = card.querySelector('.name').textContent;
  const text = String(err.message || err).replace(`${name}: `, '');
  state.textContent = err.code === 'cancelled' ? 'Cancelled.' : `${text.charAt(0).toUpperCase()}${text.slice(1)}.`.replace(/\.\.$/, '.');
}

/** The batches being classified, to cancel them ("Clear all"). */
const running = new Set();

/**
 * Classifies photos as one batch: a placeholder card for each at once, at the top in the order
 * given, filled in that order as results come (WebGPU: several per GPU submission; the CPU
 * path without threads: several workers side by side), with "3 of 10" progress.
 */
async function classifyFiles(files) {
  const list = [...files];
  if (!list.length) return [];
  const cards = list.map(newCard);
  $('cards').prepend(...cards);
  $('empty').hidden = true;
  $('clear').hidden = false;
  // On a phone the drop zone fills the screen: bring the first new result into view.
  if (cards[0].getBoundingClientRect().top > innerHeight * 0.6) cards[0].scrollIntoView({ block: 'start', behavior: reducedMotion.matches ? 'auto' : 'smooth' });
  const controller = new AbortController();
  running.add(controller);
  const status = (done) => {
    if (list.length > 1) $('queue').textContent = done < list.length ? `Classifying ${list.length} photos: ${done} of ${list.length} done` : '';
    const nextCard = cards.find((c) => c.classList.contains('waiting'));
    nextCard?.classList.add('busy');
    if (nextCard) nextCard.querySelector('.state').textContent = 'Classifying…';
  };
  cards.forEach((c, i) => (c.querySelector('.state').textContent = list.length > 1 ? `Waiting (${i + 1} of ${list.length})…` : 'Waiting…'));
  $('queue-cancel').hidden = list.length < 2;
  let done = 0;
  status(0);
  try {
    const m = await ready();
    const results = await m.classify(list, {
      topK: 5,
      head: customClasses.head,
      signal: controller.signal,
      onResult: (result, i) => {
        if (result.error) failCard(cards[i], result.error);
        else fillCard(cards[i], list[i], result);
        status(++done);
      },
    });
    const good = results.filter((r) => !r.error);
    const best = (r) => r.custom?.[0] ?? r.top[0];
    const warning = caveat(m.info);
    if (good.length === 1 && list.length === 1) {
      const r = good[0];
      announce(`${list[0].name || 'Image'}: ${!r.custom && warning ? warning.short : `${best(r).label}, ${pct(best(r).prob)}.`}`);
    }
    else if (list.length > 1) announce(`${good.length} of ${list.length} photos classified.`);
    return results;
  } catch (err) {
    cards.forEach((c) => failCard(c, err));
    return [];
  } finally {
    running.delete(controller);
    if (!running.size) {
      $('queue').textContent = '';
      $('queue-cancel').hidden = true;
    }
  }
}

function cancelRunning() {
  for (const c of running) c.abort();
}

async function toggleHeatmap(card, file, best, button) {
  const heat = card.querySelector('.heat');
  const legend = card.querySelector('.heat-legend');
  const on = button.getAttribute('aria-pressed') !== 'true';
  button.setAttribute('aria-pressed', String(on));
  button.textContent = on ? 'Hide the heatmap' : 'Show where it looks';
  if (!on) {
    heat.hidden = true;
    legend.hidden = true;
    return;
  }
  if (!heat.dataset.drawn) {
    button.disabled = true;
    try {
      const map = await (await ready()).explain(file, best.index);
      const photo = card.querySelector('.photo');
      heat.width = photo.width;
      heat.height = photo.height;
      const ctx = heat.getContext('2d');
      ctx.fillStyle = 'rgba(0,0,0,0.35)';
      ctx.fillRect(0, 0, heat.width, heat.height);
      ctx.clearRect(
        (map.crop.x / map.imageWidth) * heat.width,
        (map.crop.y / map.imageHeight) * heat.height,
        (map.crop.width / map.imageWidth) * heat.width,
        (map.crop.height / map.imageHeight) * heat.height,
      );
      drawHeatmap(ctx, map, 0, 0, heat.width, heat.height, { alpha: 0.6 });
      heat.dataset.drawn = '1';
      legend.querySelector('.legend-title').textContent = `Where it sees “${best.label}”:`;
      legend.querySelector('.legend-crop').hidden = map.crop.width >= map.imageWidth && map.crop.height >= map.imageHeight;
    } catch (err) {
      // The photo's problem: said on its card.
      const state = card.querySelector('.state');
      state.hidden = false;
      state.classList.add('error-text');
      state.textContent = `No heatmap: ${explainError(err)}`;
      button.setAttribute('aria-pressed', 'false');
      button.textContent = 'Show where it looks';
      button.disabled = false;
      return;
    }
    button.disabled = false;
  }
  heat.hidden = false;
  legend.hidden = false;
  announce(`Heatmap shown: red marks where the network sees ${best.label} most, blue least.`);
}

// Drop anywhere.
let dragDepth = 0;
const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
window.addEventListener('dragenter', (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth++;
  $('drop-overlay').hidden = false;
});
// Elements marked data-own-drop (your own classes) take their drops themselves.
const ownDrop = (e) => e.target instanceof Element && e.target.closest('[data-own-drop]');
window.addEventListener('dragover', (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  e.dataTransfer.dropEffect = 'copy';
  $('drop-overlay').hidden = !!ownDrop(e);
});
window.addEventListener('dragleave', () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) $('drop-overlay').hidden = true;
});
window.addEventListener('drop', (e) => {
  e.preventDefault();
  dragDepth = 0;
  $('drop-overlay').hidden = true;
  if (ownDrop(e)) return;
  const files = [...(e.dataTransfer?.files || [])];
  if (!files.length) {
    message('Nothing to classify was dropped: drop image files.');
    return;
  }
  classifyFiles(files);
});

// Pick.
$('pick').onclick = () => $('file-input').click();

// The sample photos (copied to samples/ by build.sh): one click classifies one.
for (const button of document.querySelectorAll('.sample')) {
  button.onclick = async () => {
    const name = button.dataset.sample;
    let file;
    try {
      const response = await fetch(`samples/${name}`);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const blob = await response.blob();
      file = new File([blob], name, { type: blob.type });
    } catch (err) {
      message(`The sample photo ${name} could not be fetched (${err.message}).`);
      return;
    }
    classifyFiles([file]);
  };
}
$('file-input').onchange = (e) => {
  classifyFiles(e.target.files);
  e.target.value = '';
};

// Paste.
window.addEventListener('paste', (e) => {
  if (e.target instanceof HTMLInputElement) return;
  const files = [...(e.clipboardData?.items || [])].filter((i) => i.kind === 'file').map((i) => i.getAsFile()).filter(Boolean);
  if (files.length) {
    e.preventDefault();
    classifyFiles(files.map((f, i) => (f.name && f.name !== 'image.png' ? f : new File([f], `pasted-${i + 1}.${(f.type.split('/')[1] || 'png')}`, { type: f.type }))));
  }
});

// Camera.
let stream = null;
let liveRunning = false;
let snapCount = 0;
$('camera-start').onclick = async () => {
  if (!navigator.mediaDevices?.getUserMedia) {
    message('This browser gives no access to a camera (a secure page, https or localhost, is needed).');
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment', width: { ideal: 640 } }, audio: false });
  } catch (err) {
    message(`The camera could not be opened: ${err.message}`);
    return;
  }
  const video = $('video');
  video.srcObject = stream;
  await video.play().catch(() => {});
  $('camera').hidden = false;
  $('camera-start').disabled = true;
  $('snapshot').focus();
  liveLoop();
};

async function liveLoop() {
  if (liveRunning) return;
  liveRunning = true;
  const video = $('video');
  const live = $('live');
  while (stream) {
    try {
      const m = await ready();
      if (video.readyState < 2) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const r = await m.classify(video, { topK: 3, head: customClasses.head });
      if (!stream) break;
      const warning = caveat(m.info);
      live.replaceChildren(
        ...r.top.map((p) => {
          const d = document.createElement('div');
          d.textContent = `${p.label} ${pct(p.prob)}`;
          return d;
        }),
      );
      live.classList.toggle('meaningless', !!warning);
      if (warning) live.prepend(Object.assign(document.createElement('div'), { className: 'live-notice', textContent: warning.short }));
      customClasses.showLive(live, r.custom);
      live.dataset.frames = String(Number(live.dataset.frames || 0) + 1);
    } catch (err) {
      live.textContent = explainError(err);
      await new Promise((r) => setTimeout(r, 1000));
    }
    await new Promise((r) => requestAnimationFrame(r));
  }
  liveRunning = false;
}

$('snapshot').onclick = async () => {
  const video = $('video');
  if (!stream || video.readyState < 2) return;
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext('2d').drawImage(video, 0, 0);
  const blob = await new Promise((r) => canvas.toBlob(r, 'image/png'));
  classifyFiles([new File([blob], `snapshot-${++snapCount}.png`, { type: 'image/png' })]);
};

$('camera-stop').onclick = stopCamera;
function stopCamera() {
  stream?.getTracks().forEach((t) => t.stop());
  stream = null;
  $('video').srcObject = null;
  $('camera').hidden = true;
  $('camera-start').disabled = false;
  $('live').replaceChildren();
  $('camera-start').focus();
}

$('clear').onclick = () => {
  cancelRunning();
  $('cards').replaceChildren();
  $('messages').replaceChildren();
  $('empty').hidden = false;
  $('clear').hidden = true;
  $('pick').focus();
};
$('queue-cancel').onclick = () => {
  cancelRunning();
  $('pick').focus();
};

$('model-form').onsubmit = (e) => {
  e.preventDefault();
  const url = $('model-url').value.trim();
  if (!url) return;
  loadModel(url).then((loaded) => {
    if (!loaded) return;
    const u = new URL(location.href);
    u.searchParams.set('model', url);
    history.replaceState(null, '', u);
  });
};

/**
 * The service worker (sw.js): the page offline and installable, and cross-origin isolated
 * (threads for the CPU path) even where the host sends no COOP/COEP headers. Resolves true
 * when the page is about to reload: into a new deploy installed on an earlier visit, or, on
 * the first visit, into an isolated page once the service worker controls it.
 */
async function startServiceWorker() {
  if (!('serviceWorker' in navigator)) return false;
  const sw = navigator.serviceWorker;
  try {
    const reg = await sw.register('sw.js');
    const reload = () => {
      location.reload();
      return true;
    };
    if (reg.waiting && sw.controller) {
      const took = new Promise((r) => sw.addEventListener('controllerchange', r, { once: true }));
      reg.waiting.postMessage('activate');
      await took;
      return reload();
    }
    if (!self.crossOriginIsolated && !sessionStorage.getItem('bit50-isolating')) {
      const isolate = () => {
        sessionStorage.setItem('bit50-isolating', '1');
        return reload();
      };
      if (sw.controller) return isolate();
      sw.addEventListener('controllerchange', isolate, { once: true });
    }
  } catch (err) {
    console.warn(`bit50: no service worker (${err.message}): the page needs the network on every visit`);
  }
  return false;
}

const customClasses = initCustomClasses({ message, announce, explainError });

// For tests and the curious.
window.bit50 = { get model() { return model; }, loadModel, classifyFiles, customClasses };

startServiceWorker().then((reloading) => reloading || defaultModelUrl().then(loadModel));
