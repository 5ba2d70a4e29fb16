// Your own classes, kept in this browser (IndexedDB), so they survive a reload: each class
// with its example photos (the image, a thumbnail, and the model's features of it), and a
// few settings (flips; an imported head in use). Nothing here is sent anywhere.
//
// Database 'bit50-your-classes', version 1:
//   classes   {id, name, order}
//   examples  {id, classId, name, blob, thumb, added, features: {model: sha256, views: [Float32Array]}}
//   settings  {key, value}

const DB = 'bit50-your-classes';
const VERSION = 1;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function open() {
  const req = indexedDB.open(DB, VERSION);
  req.onupgradeneeded = () => {
    const db = req.result;
    db.createObjectStore('classes', { keyPath: 'id' });
    db.createObjectStore('examples', { keyPath: 'id' }).createIndex('classId', 'classId');
    db.createObjectStore('settings', { keyPath: 'key' });
  };
  return request(req);
}

export class ClassStore {
  constructor() {
    this.ready = open();
  }

  async _run(stores, mode, fn) {
    const db = await this.ready;
    const tx = db.transaction(stores, mode);
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error('the browser refused to store it (is its storage full?)'));
    });
    const result = await fn(...stores.map((s) => tx.objectStore(s)));
    await done;
    return result;
  }

  /** Every class, in order, with its examples (oldest first). */
  async load() {
    return this._run(['classes', 'examples'], 'readonly', async (classes, examples) => {
      const all = (await request(classes.getAll())).sort((a, b) => a.order - b.order);
      const photos = (await request(examples.getAll())).sort((a, b) => a.added - b.added);
      return all.map((c) => ({ ...c, examples: photos.filter((e) => e.classId === c.id) }));
    });
  }

  putClass({ id, name, order }) {
    return this._run(['classes'], 'readwrite', (classes) => request(classes.put({ id, name, order })));
  }

  /** Deletes a class and its examples. */
  deleteClass(id) {
    return this._run(['classes', 'examples'], 'readwrite', async (classes, examples) => {
      const keys = await request(examples.index('classId').getAllKeys(id));
      for (const key of keys) examples.delete(key);
      classes.delete(id);
    });
  }

  putExample(example) {
    return this._run(['examples'], 'readwrite', (examples) => request(examples.put(example)));
  }

  deleteExample(id) {
    return this._run(['examples'], 'readwrite', (examples) => request(examples.delete(id)));
  }

  async setting(key, fallback = null) {
    const row = await this._run(['settings'], 'readonly', (settings) => request(settings.get(key)));
    return row ? row.value : fallback;
  }

  setSetting(key, value) {
    return this._run(['settings'], 'readwrite', (settings) => (value === null ? request(settings.delete(key)) : request(settings.put({ key, value }))));
  }
}
