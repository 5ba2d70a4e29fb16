#!/usr/bin/env node
// Renders www/icons/icon.svg into the PNG icons the web app manifest lists (192 and 512 px,
// and a maskable 512 px with the safe-zone margin), with Debian's Chromium. Run by hand after
// changing the SVG; the PNGs are committed.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '../www/icons');
const svg = fs.readFileSync(path.join(dir, 'icon.svg'), 'utf8');
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/lib/chromium/chromium', args: ['--headless=new', '--no-sandbox'], ignoreDefaultArgs: ['--headless'] });
const page = await browser.newPage();
for (const [name, size, maskable] of [['icon-192.png', 192, false], ['icon-512.png', 512, false], ['icon-maskable-512.png', 512, true]]) {
  // A maskable icon's content must sit inside the central 80% circle: a full-bleed background.
  const inner = maskable ? `<div style="width:${size}px;height:${size}px;background:#2a4fd0;display:grid;place-items:center"><img src="data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}" width="${size * 0.78}" height="${size * 0.78}"></div>` : `<img src="data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}" width="${size}" height="${size}">`;
  await page.setViewportSize({ width: size, height: size });
  await page.setContent(`<html><body style="margin:0;background:transparent">${inner}</body></html>`);
  await page.screenshot({ path: path.join(dir, name), omitBackground: true, clip: { x: 0, y: 0, width: size, height: size } });
  console.log(`wrote www/icons/${name}`);
}
await browser.close();
