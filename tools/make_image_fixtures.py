#!/usr/bin/env python3
"""Images as PIL and transformers' PIL-path processor see them (run by hand, not in CI).

Run from the repository root with the pinned environment of tools/requirements.txt:

    python tools/make_image_fixtures.py

It (re)writes tests/fixtures/images/, deterministically:
  src/*                 small source files (64x48 or smaller, made here from scikit-image's cat photo):
                        16-bit RGB and 16-bit greyscale (I;16) PNG, palette PNG with and without tRNS, LA and RGBA
                        PNG, CMYK, greyscale and arithmetic-coded JPEG (by jpegtran, from Debian's
                        libjpeg-turbo-progs), lossy and lossless WebP, a 2-frame GIF, a BMP, one JPEG in all 8 EXIF
                        orientations, tiny and thin images, and damaged JPEGs (fixed byte positions:
                        flipped bits and bytes in the scan data, stray markers after the scan header, cuts from the
                        DQT segment to the last byte, progressive and restart-interval variants)
  pil/<case>.png        the processor's output for `processor(images=load_image(path))` (the documented
                        transformers usage; what tests/fixtures/tiny/pil holds), as a uint8 RGB crop, with the
                        tiny model's preprocessing (tests/fixtures/tiny/preprocessor_config.json: shortest_edge 64,
                        crop 64, PIL bilinear)
  direct/<case>.png     the processor's output for `processor(images=Image.open(path))` (no load_image), only where
                        it differs from pil/<case>.png
  full448/<case>.png    the 3x1000 and 1000x3 strips, 1x1 and 2x2 images through google/bit-50's preprocessing
                        (shortest_edge 448, crop 448): the strips are resized to 448 x 149333 before the crop
  manifest.json         every case, its verdict and its crop (schema below)

What transformers 5.24 does with a file (read in its source):
  * image_utils.load_image (lines 474-516): PIL.Image.open(path); `image = PIL.ImageOps.exif_transpose(image)`;
    `image = image.convert("RGB")`. So EXIF orientation IS applied, and alpha/transparency is DROPPED (a plain
    convert, no compositing; PIL's I;16 -> RGB clips values above 255 to 255; 16-bit RGB PNGs open as 8-bit RGB,
    keeping the high byte).
  * the image processor (image_processing_backends.PilBackend.process_image, line 479 -> image_transforms
    .convert_to_rgb, lines 759-786) never reads EXIF; for a PIL image with "A" in its bands or
    info["transparency"] it composites onto WHITE (convert("RGBA"), alpha_composite over (255,255,255,255)),
    else image.convert("RGB"). After load_image the image is already RGB, so that never happens on the
    documented path; it does when an Image.open()ed image is passed straight in ("direct" below).
  * PIL.ImageOps.exif_transpose: orientation 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE,
    6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90 (PIL's ROTATE_n is counter-clockwise).
  * decoding errors surface when the pixels are first needed (convert), as OSError; PIL's default
    ImageFile.LOAD_TRUNCATED_IMAGES = False. libjpeg warnings (corrupt data) are not errors for PIL: it decodes
    them (into noise); libjpeg's fatal errors are "broken data stream", and data that ends before the decoder is
    done (EOI included) is "image file is truncated".

manifest.json: {"generated_by", "pipeline", "direct_pipeline", "exif", "preprocessor", "preprocessor_full448",
"cases": [case, ...]} with each case:
  name, group ("format" | "exif" | "thin" | "damaged" | "full448"), file ("src/..."), bytes, sha256 (of the file),
  description,
  opened: {format, mode, size [w, h], n_frames, exif_orientation, info_transparency} as Image.open reports
          (null when Image.open raises),
  verdict: "ok" | "error", and when "error": error {stage ("open" | "decode"), exception (class name), message},
  warnings: [Python warnings PIL emitted on the load_image path],
  when "ok": resized [w, h] (before the crop), crop ("pil/<name>.png" or "full448/<name>.png"), input_sha256 (of
             the processor's float32 pixel_values), loaded_mode_size (load_image's output: ["RGB", [w, h]]),
  direct: {verdict, error?, crop?, same_as_load_image (bool)}  (processor(images=Image.open(path)))
  load_truncated_images: {verdict, error?, crop_sha256?}  (damaged only: the same with LOAD_TRUNCATED_IMAGES True)
  exif cases: orientation, and max_abs_diff_vs_orientation_1 (uint8 levels, crops: JPEG noise only)
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import hashlib
import io
import json
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402
from transformers.image_utils import load_image  # noqa: E402

OUT = mf.FIX / "images"
SRC = OUT / "src"

# ----------------------------------------------------------------------------------------------------------------
# Sources


def base_image() -> Image.Image:
    """64x48 RGB: scikit-image's cat, box-filtered down (deterministic integer arithmetic in PIL)."""
    import skimage.data

    return Image.fromarray(skimage.data.chelsea()).resize((64, 48), Image.Resampling.BOX)


def png_raw(arr: np.ndarray, color_type: int, bit_depth: int) -> bytes:
    """A minimal PNG writer (PIL cannot write 16-bit RGB): filter 0 on every row, one IDAT."""
    h, w = arr.shape[:2]
    dt = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + np.ascontiguousarray(arr[y]).astype(dt).tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def encode(img, fmt, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg_segments(d: bytes):
    """(marker, offset, length) of each marker segment up to and including SOS."""
    assert d[:2] == b"\xff\xd8"
    i, out = 2, []
    while True:
        assert d[i] == 0xFF, i
        m = d[i + 1]
        n = int.from_bytes(d[i + 2:i + 4], "big")
        out.append((m, i, n))
        if m == 0xDA:
            return out
        i += 2 + n


def arithmetic(jpeg: bytes) -> bytes:
    """jpegtran (Debian: libjpeg-turbo-progs) re-encodes the same coefficients with arithmetic coding."""
    if shutil.which("jpegtran") is None:
        sys.exit("jpegtran is missing: apt-get install libjpeg-turbo-progs")
    return subprocess.run(["jpegtran", "-arithmetic"], input=jpeg, capture_output=True, check=True).stdout


def format_sources(base):
    """name -> (bytes, description)."""
    a = np.asarray(base)
    h, w, _ = a.shape
    yy, xx = np.mgrid[0:h, 0:w]
    grey = np.asarray(base.convert("L"))
    out = {}

    low = ((xx * 7 + yy * 13) % 256).astype(np.uint16)
    rgb16 = a.astype(np.uint16) * 256 + low[..., None]
    out["png16-rgb.png"] = (png_raw(rgb16, 2, 16),
                            "16-bit RGB PNG (colour type 2, depth 16): high byte = the cat, low byte = (7x+13y)%256; "
                            "PIL opens it as 8-bit RGB keeping the high byte (no rounding)")
    g16 = np.where(xx < w // 2, grey.astype(np.uint16) * 257, grey.astype(np.uint16))
    out["png16-grey.png"] = (encode(Image.fromarray(g16.astype(np.uint16)), "PNG"),
                             "16-bit greyscale PNG (PIL mode I;16): left half grey*257 (0..65535), right half grey "
                             "(0..255); PIL's I;16 -> RGB clips at 255 (no scaling)")
    pal = base.quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out["palette.png"] = (encode(pal, "PNG"), "palette PNG (P, 32 colours), no transparency")
    trns = bytes((i * 8) % 256 for i in range(32))
    out["palette-trns.png"] = (encode(pal, "PNG", transparency=trns),
                               "palette PNG with a tRNS chunk (alpha of index i = 8i)")
    alpha = np.round(np.linspace(255, 0, w))[None, :].repeat(h, 0).astype(np.uint8)
    out["la.png"] = (encode(Image.merge("LA", [Image.fromarray(grey), Image.fromarray(alpha)]), "PNG"),
                     "greyscale + alpha PNG (LA), alpha 255 -> 0 left to right")
    out["rgba.png"] = (encode(Image.fromarray(np.dstack([a, alpha[::-1, ::-1]])), "PNG"),
                       "RGBA PNG, alpha 0 -> 255 left to right")
    out["cmyk.jpg"] = (encode(base.convert("CMYK"), "JPEG", quality=90),
                       "CMYK JPEG (PIL writes an Adobe APP14 marker, inverted CMYK), quality 90")
    out["grey.jpg"] = (encode(base.convert("L"), "JPEG", quality=90), "greyscale JPEG, quality 90")
    out["arithmetic.jpg"] = (arithmetic(encode(base, "JPEG", quality=85)),
                             "arithmetic-coded JPEG: the quality 85 baseline JPEG through `jpegtran -arithmetic` "
                             "(lossless transcoding; Pillow cannot write arithmetic coding)")
    out["lossy.webp"] = (encode(base, "WEBP", quality=80, method=4), "lossy WebP (VP8), quality 80")
    out["lossless.webp"] = (encode(base, "WEBP", lossless=True), "lossless WebP (VP8L)")
    frame1 = base.transpose(Image.Transpose.ROTATE_180).quantize(colors=32, method=Image.Quantize.MEDIANCUT,
                                                                  dither=Image.Dither.NONE)
    out["anim.gif"] = (encode(pal, "GIF", save_all=True, append_images=[frame1], duration=100, loop=0),
                       "2-frame GIF (frame 1 = the cat upside down): PIL opens frame 0")
    out["rgb.bmp"] = (encode(base, "BMP"), "24-bit BMP (bottom-up rows)")
    return out


# Stored pixels = the inverse of what exif_transpose applies, so that every file displays upright.
EXIF_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # exif_transpose applies ROTATE_270
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,  # exif_transpose applies ROTATE_90
}


def exif_sources(base):
    out = {}
    for o, t in EXIF_STORE.items():
        stored = base if t is None else base.transpose(t)
        exif = Image.Exif()
        exif[0x0112] = o
        out[f"exif-{o}.jpg"] = (encode(stored, "JPEG", quality=90, exif=exif.tobytes()),
                                f"64x48 upright cat stored for EXIF Orientation {o} (pixels {stored.size[0]}x"
                                f"{stored.size[1]}, transposed by {t.name if t else 'nothing'}), JPEG quality 90")
    return out


def thin_sources(base):
    out = {}
    for w, h in [(1, 1), (2, 2), (3, 100), (100, 3), (15, 40), (1000, 3)]:
        img = base.resize((w, h), Image.Resampling.BOX)
        out[f"{w}x{h}.png"] = (encode(img, "PNG"), f"{w}x{h} RGB PNG (the cat box-filtered to {w}x{h})")
    return out


def damaged_sources(base):
    d = encode(base, "JPEG", quality=85)
    segs = jpeg_segments(d)
    m, off, n = segs[-1]
    sos_end = off + 2 + n  # first byte of the entropy-coded data
    assert d[-2:] == b"\xff\xd9" and d[sos_end - 1] != 0xFF
    ecs = d[sos_end:-2]
    assert ecs.count(b"\xff\x00") == ecs.count(b"\xff")  # no markers inside: baseline, no restart interval
    garbage = bytes((i * 37 + 11) % 256 for i in range(256))
    cut = len(d) // 2
    return sos_end, {
        "jpeg-ok.jpg": (d, f"the intact baseline JPEG (64x48, quality 85, {len(d)} bytes, entropy-coded data "
                           f"from byte {sos_end} to {len(d) - 2}) that the damaged ones start from"),
        "jpeg-bad-huffman.jpg": (d[:sos_end + 40] + b"\xff\x00" * 8 + d[sos_end + 56:],
                                 f"bytes {sos_end + 40}..{sos_end + 55} (16 bytes of entropy-coded data) replaced by "
                                 "FF 00 x 8 = 64 one-bits: no Huffman code is all ones (invalid code)"),
        "jpeg-stray-rst.jpg": (d[:sos_end + 16] + b"\xff\xd3" + d[sos_end + 16:],
                               f"marker FF D3 (RST3; the file has no restart interval) inserted at byte "
                               f"{sos_end + 16}, 16 bytes after the scan header"),
        "jpeg-stray-dht.jpg": (d[:sos_end + 16] + b"\xff\xc4" + d[sos_end + 16:],
                               f"marker FF C4 (DHT) inserted at byte {sos_end + 16}, 16 bytes after the scan header "
                               "(its 'length' is then read from the entropy-coded bytes that follow)"),
        "jpeg-truncated-half.jpg": (d[:cut], f"the first {cut} of {len(d)} bytes (cut half-way, inside the scan)"),
        "jpeg-no-eoi.jpg": (d[:-2], "all bytes but the final EOI marker (FF D9): truncated just before EOI"),
        "jpeg-garbage-after-eoi.jpg": (d + garbage, "256 bytes (37i+11 mod 256) appended after EOI"),
        **more_damage(d, sos_end, segs),
        **damaged_variants(base),
    }


def safe_spot(d: bytes, at: int) -> int:
    """The first offset from `at` whose byte and neighbours are not FF (so a change creates or breaks no marker)."""
    while 0xFF in d[at - 1:at + 2]:
        at += 1
    return at


def more_damage(d, sos_end, segs):
    """Bit flips, stray markers and cuts at several places of the baseline JPEG."""
    ecs_len = len(d) - 2 - sos_end
    one = safe_spot(d, sos_end + ecs_len // 3)
    flipped = bytearray(d)
    flipped[one] ^= 0x01
    spots = [safe_spot(d, sos_end + ecs_len * k // 5) for k in (1, 2, 3, 4)]
    several = bytearray(d)
    for at in spots:
        several[at] ^= 0x5A
    at = safe_spot(d, sos_end + 24)
    dqt = next(off for m, off, n in segs if m == 0xDB)
    out = {
        "jpeg-flip-1bit.jpg": (bytes(flipped), f"bit 0 of byte {one} (entropy-coded data) flipped"),
        "jpeg-flip-bytes.jpg": (bytes(several), f"bytes {spots} (entropy-coded data, 1/5 to 4/5 in) XORed with 5A"),
    }
    for marker, what in [(0xD9, "EOI"), (0xD8, "SOI"), (0xC0, "SOF0"), (0x17, "an undefined code")]:
        out[f"jpeg-stray-{what.split()[-1].lower()}.jpg"] = (
            d[:at] + bytes([0xFF, marker]) + d[at:],
            f"marker FF {marker:02X} ({what}) inserted at byte {at}, inside the entropy-coded data")
    for name, cut, why in [("jpeg-cut-dqt.jpg", dqt + 10, "inside the DQT segment"),
                           ("jpeg-cut-scan-header.jpg", sos_end - 3, "inside the SOS (scan) header"),
                           ("jpeg-cut-after-scan-header.jpg", sos_end, "right after the scan header: no scan data"),
                           ("jpeg-cut-quarter.jpg", sos_end + ecs_len // 4, "a quarter into the scan data"),
                           ("jpeg-cut-ff.jpg", len(d) - 1, "the last byte: the file ends with FF, the EOI's D9 missing")]:
        out[name] = (d[:cut], f"the first {cut} of {len(d)} bytes: cut {why}")
    return out


def damaged_variants(base):
    """Progressive and restart-interval JPEGs, intact and damaged."""
    prog = encode(base, "JPEG", quality=85, progressive=True)
    rst = encode(base, "JPEG", quality=85, restart_marker_blocks=4)
    first_rst = next(i for i in range(len(rst) - 1) if rst[i] == 0xFF and rst[i + 1] == 0xD0)
    return {
        "jpeg-progressive.jpg": (prog, f"progressive JPEG, quality 85, {len(prog)} bytes (intact)"),
        "jpeg-progressive-cut.jpg": (prog[:len(prog) * 3 // 5], f"the progressive JPEG cut at "
                                     f"{len(prog) * 3 // 5} of {len(prog)} bytes (inside a later scan)"),
        "jpeg-restart.jpg": (rst, "baseline JPEG with a restart interval of 4 MCUs (DRI, RST0..7 markers), intact"),
        "jpeg-restart-wrong.jpg": (rst[:first_rst + 1] + b"\xd4" + rst[first_rst + 2:],
                                   f"the restart JPEG with its first RST0 (byte {first_rst}) changed to RST4"),
    }


# ----------------------------------------------------------------------------------------------------------------
# Reference runs


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def run_processor(processor, image):
    sizes = []
    orig = processor.resize

    def resize(*a, **kw):
        out = orig(*a, **kw)
        sizes.append((int(out.shape[-1]), int(out.shape[-2])))
        return out

    processor.resize = resize
    try:
        pv = processor(images=image, return_tensors="np")["pixel_values"]
    finally:
        del processor.resize
    assert len(sizes) == 1 and pv.dtype == np.float32 and pv.shape[:2] == (1, 3), (sizes, pv.shape)
    return pv, list(sizes[0])


def crop_uint8(pv):
    x = pv[0].astype(np.float64)
    k = np.round((x * 0.5 + 0.5) * 255.0)
    assert k.min() >= 0 and k.max() <= 255 and np.abs(x - (k / 255.0 - 0.5) / 0.5).max() < 1e-6
    return k.astype(np.uint8).transpose(1, 2, 0)


def error_of(e, stage):
    return {"stage": stage, "exception": type(e).__name__, "message": str(e)}


def opened_info(path):
    try:
        with Image.open(path) as im:
            return {
                "format": im.format,
                "mode": im.mode,
                "size": list(im.size),
                "n_frames": getattr(im, "n_frames", 1),
                "exif_orientation": im.getexif().get(0x0112),
                "info_transparency": (None if im.info.get("transparency") is None
                                      else "bytes" if isinstance(im.info["transparency"], bytes)
                                      else repr(im.info["transparency"])),
            }, None
    except Exception as e:  # noqa: BLE001
        return None, error_of(e, "open")


def via_load_image(processor, path):
    """(pv, resized, loaded, warnings) or raises."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = load_image(str(path))
        pv, resized = run_processor(processor, img)
    # ResourceWarning (a multi-frame file left open by load_image) depends on garbage collection: not recorded
    return pv, resized, img, [f"{w.category.__name__}: {w.message}" for w in caught
                              if not issubclass(w.category, ResourceWarning)]


def via_direct(processor, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as im:
            return run_processor(processor, im)


def run_case(processor, name, group, desc, data, crop_dir):
    path = SRC / name
    mf.save_bytes(path, data)
    stem = Path(name).stem.replace(".", "-")
    case = {"name": name, "group": group, "file": f"src/{name}", "bytes": len(data), "sha256": sha256(data),
            "description": desc}
    opened, open_err = opened_info(path)
    case["opened"] = opened
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    try:
        pv, resized, img, warns = via_load_image(processor, path)
    except Exception as e:  # noqa: BLE001
        case["verdict"] = "error"
        case["error"] = open_err or error_of(e, "decode")
        assert type(e).__name__ == case["error"]["exception"] and str(e) == case["error"]["message"], e
        pv = None
    if pv is not None:
        crop = crop_uint8(pv)
        rel = f"{crop_dir}/{stem}.png"
        mf.save_bytes(OUT / rel, encode(Image.fromarray(crop), "PNG"))
        case.update({"verdict": "ok", "warnings": warns, "resized": resized, "crop": rel,
                     "input_sha256": mf.sha256_f32(pv), "loaded_mode_size": [img.mode, list(img.size)]})
    if crop_dir == "pil":
        try:
            dpv, dres = via_direct(processor, path)
            direct = {"verdict": "ok", "resized": dres}
            same = pv is not None and np.array_equal(dpv, pv)
            direct["same_as_load_image"] = bool(same)
            if not same:
                rel = f"direct/{stem}.png"
                mf.save_bytes(OUT / rel, encode(Image.fromarray(crop_uint8(dpv)), "PNG"))
                direct["crop"] = rel
                direct["input_sha256"] = mf.sha256_f32(dpv)
        except Exception as e:  # noqa: BLE001
            direct = {"verdict": "error", "error": open_err or error_of(e, "decode"), "same_as_load_image":
                      case["verdict"] == "error"}
        case["direct"] = direct
    return case, (crop_uint8(pv) if pv is not None else None)


def with_load_truncated(processor, path):
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        pv, _, _, _ = via_load_image(processor, path)
        return {"verdict": "ok", "input_sha256": mf.sha256_f32(pv)}
    except Exception as e:  # noqa: BLE001
        return {"verdict": "error", "error": error_of(e, "decode")}
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def main():
    os.chdir(mf.ROOT)
    import transformers

    transformers.utils.logging.set_verbosity_error()

    if OUT.exists():
        shutil.rmtree(OUT)
    processor = mf.PilProcessor.from_pretrained(mf.FIX / "tiny")
    assert processor.size["shortest_edge"] == 64 and processor.crop_size == {"height": 64, "width": 64}
    full = mf.PilProcessor.from_pretrained(mf.ASSETS)
    assert full.size["shortest_edge"] == 448 and full.crop_size == {"height": 448, "width": 448}
    base = base_image()
    cases = []

    for name, (data, desc) in format_sources(base).items():
        case, _ = run_case(processor, name, "format", desc, data, "pil")
        cases.append(case)

    crops = {}
    for name, (data, desc) in exif_sources(base).items():
        case, crops[name] = run_case(processor, name, "exif", desc, data, "pil")
        o = int(name.split("-")[1].split(".")[0])
        case["orientation"] = o
        assert case["opened"]["exif_orientation"] == o
        cases.append(case)
    ref = crops["exif-1.jpg"].astype(np.int32)
    for case in cases:
        if case["group"] == "exif":
            d = int(np.abs(crops[case["name"]].astype(np.int32) - ref).max())
            m = float(np.abs(crops[case["name"]].astype(np.int32) - ref).mean())
            assert m < 3.0, (case["name"], m)  # upright after exif_transpose: JPEG noise only
            case["max_abs_diff_vs_orientation_1"] = d
            case["mean_abs_diff_vs_orientation_1"] = m
            assert case["direct"]["same_as_load_image"] == (case["orientation"] == 1)

    for name, (data, desc) in thin_sources(base).items():
        case, _ = run_case(processor, name, "thin", desc, data, "pil")
        cases.append(case)

    for (w, h), name, resized in [((3, 1000), "3x1000.png", [448, 149333]), ((1000, 3), "1000x3-448.png", [149333, 448]),
                                  ((1, 1), "1x1-448.png", [448, 448]), ((2, 2), "2x2-448.png", [448, 448])]:
        case, _ = run_case(full, name, "full448", f"{w}x{h} RGB PNG (the cat box-filtered to {w}x{h}) through "
                           "google/bit-50's preprocessing (assets/google-bit-50/preprocessor_config.json)",
                           encode(base.resize((w, h), Image.Resampling.BOX), "PNG"), "full448")
        assert case["resized"] == resized, case["resized"]
        cases.append(case)

    sos_end, damaged = damaged_sources(base)
    for name, (data, desc) in damaged.items():
        case, _ = run_case(processor, name, "damaged", desc, data, "pil")
        case["load_truncated_images"] = with_load_truncated(processor, SRC / name)
        cases.append(case)

    names = [c["name"] for c in cases]
    crops_written = [c[k] for c in cases for k in ("crop",) if k in c] + [c["direct"]["crop"] for c in cases
                                                                        if "crop" in c.get("direct", {})]
    assert len(set(names)) == len(names) and len(set(crops_written)) == len(crops_written)
    gb = mf.versions()
    gb["script"] = "tools/make_image_fixtures.py"
    gb["float_format"] = ("crops: uint8 RGB PNG of the processor's pixel_values (x * 0.5 + 0.5) * 255, exact; "
                          "resized = [w, h] before the crop; input_sha256 = sha256 of the float32 pixel_values")
    manifest = {
        "generated_by": gb,
        "pipeline": "processor(images=transformers.image_utils.load_image(path)): Image.open, "
                    "ImageOps.exif_transpose, convert('RGB') (alpha dropped), then BitImageProcessorPil "
                    "(resize shortest edge, PIL bilinear; center crop; rescale; normalize)",
        "direct_pipeline": "processor(images=PIL.Image.open(path)): no EXIF transpose; convert_to_rgb composites "
                           "images with an alpha band or info['transparency'] onto white, else convert('RGB')",
        "exif": "load_image applies PIL.ImageOps.exif_transpose (orientation 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, "
                "4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90; ROTATE_n counter-"
                "clockwise); the image processor itself ignores EXIF",
        "load_truncated_images_default": False,
        "preprocessor": "tests/fixtures/tiny/preprocessor_config.json",
        "preprocessor_full448": "assets/google-bit-50/preprocessor_config.json",
        "jpeg_entropy_data_offset": sos_end,
        "cases": cases,
    }
    mf.write_compact_json(OUT / "manifest.json", manifest)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    for c in cases:
        extra = c.get("error", {}).get("message", "") if c["verdict"] == "error" else c["resized"]
        d = c.get("direct", {})
        print(f"  {c['name']:28s} {c['verdict']:5s} {extra}  direct: {d.get('verdict')} "
              f"same={d.get('same_as_load_image')}  {c.get('warnings', '')}")
    print(f"images/: {total} bytes")
    assert total < 1_200_000, total


if __name__ == "__main__":
    main()
