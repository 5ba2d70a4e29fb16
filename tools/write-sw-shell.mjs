#!/usr/bin/env node
// Writes www/sw-shell.js for the service worker (www/sw.js): the app shell's files, and a
// version derived from their contents, so that any change to any of them is a new deploy
// (the browser compares sw.js and the scripts it imports byte for byte on every visit).
// Run by build.sh after building and after choosing the model; an argument names another
// site folder (tests make deploys of their own).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const www = process.argv[2] || path.join(path.dirname(fileURLToPath(import.meta.url)), '../www');
const listed = ['index.html', 'app.js', 'styles.css', 'custom-classes.js', 'custom-classes.css', 'bit50.js', 'bit50-worker.js', 'bit50-embed.js', 'manifest.webmanifest', 'models/index.json'];
const folders = ['lib', 'pkg', 'pkg/threads', 'icons', 'samples'];
const files = [...listed.filter((f) => fs.existsSync(path.join(www, f)))];
for (const dir of folders) {
  if (!fs.existsSync(path.join(www, dir))) continue;
  for (const f of fs.readdirSync(path.join(www, dir)).sort()) {
    if (fs.statSync(path.join(www, dir, f)).isFile()) files.push(`${dir}/${f}`);
  }
}
const hash = crypto.createHash('sha256');
for (const f of files) hash.update(f).update(fs.readFileSync(path.join(www, f)));
const version = hash.digest('hex').slice(0, 16);
fs.writeFileSync(path.join(www, 'sw-shell.js'), `// Written by tools/write-sw-shell.mjs: the app shell the service worker caches.\nself.SHELL = ${JSON.stringify({ version, files }, null, 1)};\n`);
console.log(`www/sw-shell.js: ${files.length} files, version ${version}`);
