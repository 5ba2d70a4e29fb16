// Image input in the worker: every supported kind of input becomes RGBA pixels, checked
// against the limits the wasm module exports (so they are written in one place, in Rust).
import { CodedError } from './errors.js';
import { headerSize } from './image-header.js';

/** Files larger than this are refused before decoding. */
const MAX_FILE_BYTES = 50 * 1024 * 1024;
/** The limits until the wasm module gives its own (and for pages with no model loaded). */
export const DEFAULT_LIMITS = { max_pixels: 64_000_000 };
let limits = DEFAULT_LIMITS;

/** The wasm module's `limits()`, once it is loaded. */
export function setLimits(json) {
  limits = JSON.parse(json);
}

/**
 * Browsers decode truncated files silently (grey at the bottom), so check the ends:
 * a JPEG's scan data (after its first SOS, past any EXIF thumbnail) must reach an EOI
 * marker, and a PNG must hold its IEND chunk.
 */
async function checkComplete(blob, name) {
  const head = new Uint8Array(await blob.slice(0, 8).arrayBuffer());
  const isJpeg = head[0] === 0xff && head[1] === 0xd8;
  const isPng = head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47;
  if (isJpeg) {
    const b = new Uint8Array(await blob.arrayBuffer());
    let i = 2;
    // Walk the marker segments up to the first start-of-scan.
    while (i + 4 <= b.length && b[i] === 0xff && b[i + 1] !== 0xda) {
      if (b[i + 1] === 0xff) {
        i++;
        continue;
      }
      i += 2 + ((b[i + 2] << 8) | b[i + 3]);
    }
    let ok = false;
    for (let j = i + 2; j + 1 < b.length; j++) {
      if (b[j] === 0xff && b[j + 1] === 0xd9) {
        ok = true;
        break;
      }
    }
    if (!ok) throw new CodedError('truncated', `${name}: the JPEG file is truncated or damaged (its image data has no end marker)`);
  } else if (isPng) {
    const tail = new Uint8Array(await blob.slice(Math.max(0, blob.size - 64)).arrayBuffer());
    if (!String.fromCharCode(...tail).includes('IEND')) throw new CodedError('truncated', `${name}: the PNG file is truncated or damaged (no IEND chunk)`);
  }
}

/** Turns {kind: 'blob'|'bitmap'|'rgba'} into {width, height, data: RGBA bytes, name}. */
export async function toRGBA(image) {
  const name = image.name || 'image';
  if (image.kind === 'rgba') return { width: image.width, height: image.height, data: new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.byteLength), name };
  let bitmap = image.bitmap;
  if (image.kind === 'blob') {
    const blob = image.blob;
    if (blob.size === 0) throw new CodedError('not-image', `${name}: empty file, not an image`);
    if (blob.size > MAX_FILE_BYTES) throw new CodedError('too-large', `${name}: ${(blob.size / 1048576).toFixed(1)} MB is over the ${MAX_FILE_BYTES / 1048576} MB limit`);
    if (blob.type && !blob.type.startsWith('image/')) throw new CodedError('not-image', `${name}: not an image (${blob.type})`);
    // From the header, before the browser decodes (and allocates) a single pixel.
    const size = await headerSize(blob);
    if (size && size.width * size.height > limits.max_pixels) {
      throw new CodedError('too-large', `${name}: image is ${size.width}x${size.height} (its ${size.format} header says), over the limit of ${limits.max_pixels} pixels`);
    }
    await checkComplete(blob, name);
    try {
      bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
    } catch {
      throw new CodedError('not-image', `${name}: not an image this browser can decode`);
    }
  }
  try {
    const { width, height } = bitmap;
    if (width * height > limits.max_pixels) throw new CodedError('too-large', `${name}: image is ${width}x${height}, over the limit of ${limits.max_pixels} pixels`);
    return { width, height, data: readPixels(bitmap), name };
  } finally {
    bitmap.close?.();
  }
}

let gl = null;
/**
 * RGBA bytes of a bitmap, not premultiplied: through WebGL when it can (exact, like
 * PIL's convert("RGB"), which drops alpha), else through a 2D canvas (which loses
 * the colour of fully transparent pixels).
 */
function readPixels(bitmap) {
  const { width, height } = bitmap;
  try {
    if (gl === null) gl = new OffscreenCanvas(1, 1).getContext('webgl2', { premultipliedAlpha: false }) || false;
    if (gl && width <= gl.getParameter(gl.MAX_TEXTURE_SIZE) && height <= gl.getParameter(gl.MAX_TEXTURE_SIZE)) {
      const tex = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, tex);
      gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
      gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
      gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, bitmap);
      const fb = gl.createFramebuffer();
      gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, tex, 0);
      const out = new Uint8Array(width * height * 4);
      gl.pixelStorei(gl.PACK_ALIGNMENT, 1);
      gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, out);
      const err = gl.getError();
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      gl.deleteFramebuffer(fb);
      gl.deleteTexture(tex);
      if (err === gl.NO_ERROR) return out;
    }
  } catch {
    gl = false;
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const data = ctx.getImageData(0, 0, width, height).data;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
