// An image's width and height read from its header, before anything decodes it: a photo of
// 20,000 x 20,000 pixels, or a decompression bomb (a small file whose header promises billions of
// pixels), is refused without the browser allocating its pixels. Used by the worker (lib/images.js)
// and by the pages before they draw a thumbnail. No dependencies: it runs in a window or a worker.

/** {width, height, format} from a PNG, JPEG, GIF, WebP, BMP or AVIF header; null when the
 * format is not one of these or its header cannot be read (the decoder then says why). */
export async function headerSize(blob) {
  const head = new Uint8Array(await blob.slice(0, 64).arrayBuffer());
  const text = (at, n) => String.fromCharCode(...head.subarray(at, at + n));
  const be16 = (b, at) => (b[at] << 8) | b[at + 1];
  const be32 = (b, at) => ((b[at] << 24) >>> 0) + ((b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]);
  const le16 = (b, at) => b[at] | (b[at + 1] << 8);
  const le24 = (b, at) => b[at] | (b[at + 1] << 8) | (b[at + 2] << 16);
  const le32 = (b, at) => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) + b[at + 3] * 0x1000000;
  if (head.length >= 24 && head[0] === 0x89 && text(1, 3) === 'PNG' && text(12, 4) === 'IHDR') {
    return { width: be32(head, 16), height: be32(head, 20), format: 'PNG' };
  }
  if (head.length >= 4 && head[0] === 0xff && head[1] === 0xd8) return jpegSize(blob, be16);
  if (head.length >= 13 && (text(0, 6) === 'GIF87a' || text(0, 6) === 'GIF89a')) return gifSize(blob, le16);
  if (head.length >= 30 && text(0, 4) === 'RIFF' && text(8, 4) === 'WEBP') {
    const chunk = text(12, 4);
    if (chunk === 'VP8X') return { width: le24(head, 24) + 1, height: le24(head, 27) + 1, format: 'WebP' };
    if (chunk === 'VP8L' && head[20] === 0x2f) {
      const bits = le32(head, 21);
      return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1, format: 'WebP' };
    }
    if (chunk === 'VP8 ') return { width: le16(head, 26) & 0x3fff, height: le16(head, 28) & 0x3fff, format: 'WebP' };
    return null;
  }
  if (head.length >= 26 && text(0, 2) === 'BM') {
    if (le32(head, 14) === 12) return { width: le16(head, 18), height: le16(head, 20), format: 'BMP' };
    return { width: Math.abs(le32(head, 18) | 0), height: Math.abs(le32(head, 22) | 0), format: 'BMP' };
  }
  if (head.length >= 12 && text(4, 4) === 'ftyp' && /^avi[fs]/.test(text(8, 4))) return avifSize(blob, be32);
  return null;
}

/** A JPEG's size from its start-of-frame marker (SOF0-SOF15 but DHT, JPG and DAC), found by
 * walking the marker segments (EXIF and other application data may come first). */
async function jpegSize(blob, be16) {
  let at = 2;
  for (let segments = 0; segments < 1000 && at + 4 <= blob.size; segments++) {
    const b = new Uint8Array(await blob.slice(at, at + 9).arrayBuffer());
    if (b[0] !== 0xff) return null;
    const marker = b[1];
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return b.length >= 9 ? { width: be16(b, 7), height: be16(b, 5), format: 'JPEG' } : null;
    }
    if (marker === 0xda || marker === 0xd9) return null; // the scan before any frame header
    at += 2 + be16(b, 2);
  }
  return null;
}

/** A GIF's size: its logical screen, or its first frame where that is larger (browsers grow the
 * canvas to it). */
async function gifSize(blob, le16) {
  const b = new Uint8Array(await blob.slice(0, 65536).arrayBuffer());
  let width = le16(b, 6);
  let height = le16(b, 8);
  let at = 13 + (b[10] & 0x80 ? 3 << ((b[10] & 7) + 1) : 0);
  while (at < b.length) {
    if (b[at] === 0x2c && at + 9 <= b.length) {
      width = Math.max(width, le16(b, at + 1) + le16(b, at + 5));
      height = Math.max(height, le16(b, at + 3) + le16(b, at + 7));
      break;
    }
    if (b[at] !== 0x21) break;
    at += 2; // extension introducer and label, then its sub-blocks
    while (at < b.length && b[at]) at += b[at] + 1;
    at++;
  }
  return { width, height, format: 'GIF' };
}

/** An AVIF's size: the largest image spatial extent ('ispe') property in its first 64 KB. */
async function avifSize(blob, be32) {
  const b = new Uint8Array(await blob.slice(0, 65536).arrayBuffer());
  let best = null;
  for (let i = 0; i + 16 <= b.length; i++) {
    if (b[i] === 0x69 && b[i + 1] === 0x73 && b[i + 2] === 0x70 && b[i + 3] === 0x65) {
      const width = be32(b, i + 8);
      const height = be32(b, i + 12);
      if (!best || width * height > best.width * best.height) best = { width, height, format: 'AVIF' };
    }
  }
  return best;
}
