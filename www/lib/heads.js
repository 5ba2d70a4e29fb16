// Heads (your own classes) in the worker: the wasm Head objects that bit50.js's Head
// instances stand for, by id, so that classify() need not parse a head's file every frame.
// A few are kept; one that was dropped is read again from the JSON each call carries.

const KEEP = 8;

export class HeadCache {
  /** engine(): the current wasm Engine (heads are checked against its model). */
  constructor(engine) {
    this.engine = engine;
    this.byId = new Map();
  }

  /** Keeps a wasm Head as `id`; resolves what the page needs: {json, summary}. */
  add(id, head) {
    this.byId.delete(id);
    this.byId.set(id, head);
    while (this.byId.size > KEEP) {
      const [oldest, old] = this.byId.entries().next().value;
      this.byId.delete(oldest);
      old.free();
    }
    return { json: head.to_json(), summary: JSON.parse(head.summary()) };
  }

  /** Reads a head file's text, checked against the model (Bit50Error 'bad-head' or 'other-model'). */
  load(id, json, source = 'the head file') {
    const engine = this.engine();
    if (!engine) throw Object.assign(new Error('no model is loaded'), { code: 'not-loaded' });
    return this.add(id, engine.load_head(new TextEncoder().encode(json), source));
  }

  /** The wasm Head for {id, json}, read again if it was dropped. */
  get({ id, json }) {
    const head = this.byId.get(id);
    if (head) {
      this.byId.delete(id);
      this.byId.set(id, head); // most recently used last
      return head;
    }
    this.load(id, json);
    return this.byId.get(id);
  }
}
