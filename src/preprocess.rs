//! Image in, network input out: decode, EXIF orientation, RGB the way PIL converts,
//! resize of the short side with PIL's antialiased bilinear filter (bit-exact: the
//! same fixed-point coefficients and rounding as Pillow's Resample.c), centre crop
//! with floor offsets, rescale and normalise (spec §6).

use crate::config::PreprocessorConfig;
use crate::{bail, Context, ErrorKind, Result, WithKind};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};
use std::io::Cursor;

/// Larger images are refused before decoding (a 64 MP photo is ~190 MB as RGB). There is no
/// minimum: like transformers' processor, a 1x1 image is resized and classified.
pub const MAX_PIXELS: u64 = 64_000_000;

/// Decodes JPEG, PNG, WebP, GIF (first frame) or BMP bytes into upright RGB.
pub fn decode(bytes: &[u8], source: &str) -> Result<RgbImage> {
    if bytes.is_empty() {
        bail!(NotImage, "{source}: empty file, not an image");
    }
    #[cfg(not(target_arch = "wasm32"))]
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return jpeg::decode(bytes, source);
    }
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().context(|| format!("{source}: cannot read")).kind(ErrorKind::NotImage)?;
    if reader.format().is_none() {
        bail!(NotImage, "{source}: not an image (expected JPEG, PNG, WebP, GIF or BMP)");
    }
    let mut decoder = reader.into_decoder().context(|| format!("{source}: cannot decode image")).kind(ErrorKind::DamagedImage)?;
    let (w, h) = decoder.dimensions();
    check_size(w as u64, h as u64, source)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).context(|| format!("{source}: cannot decode image")).kind(ErrorKind::DamagedImage)?;
    img.apply_orientation(orientation);
    Ok(to_rgb_like_pil(img))
}

fn check_size(width: u64, height: u64, source: &str) -> Result<()> {
    if width * height > MAX_PIXELS {
        bail!(TooLarge, "{source}: image is {width}x{height}, over the limit of {MAX_PIXELS} pixels");
    }
    Ok(())
}

/// JPEG through libjpeg-turbo's decoder (mozjpeg), the one PIL uses, for identical pixels, and
/// refused exactly where PIL refuses (checked against it: tests/fixtures/images, group "damaged"):
/// - libjpeg's fatal errors (a bogus marker or table): PIL's "broken data stream";
/// - data that ends before the decoder is done, EOI included: PIL's "image file is truncated"
///   (PIL's default, `LOAD_TRUNCATED_IMAGES = False`);
/// - but not libjpeg's warnings about corrupt entropy-coded data (bad Huffman codes, stray or
///   wrong restart markers): PIL ignores them and classifies whatever libjpeg decoded, so do we.
/// CMYK and YCCK JPEGs come out as CMYK and convert to RGB as PIL converts them.
#[cfg(not(target_arch = "wasm32"))]
mod jpeg {
    use crate::{bail, Result};
    use image::metadata::Orientation;
    use image::{DynamicImage, RgbImage};
    use mozjpeg::{ColorSpace, Marker};
    use mozjpeg_sys::{jpeg_common_struct, JWRN_JPEG_EOF};
    use std::cell::Cell;
    use std::os::raw::c_int;

    // Set when the data ran out: mozjpeg's source then feeds libjpeg a fake EOI and warns JWRN_JPEG_EOF.
    thread_local!(static ENDED_EARLY: Cell<bool> = const { Cell::new(false) });

    // Message codes are unique, so the level (-1 for this warning) needs no check.
    extern "C-unwind" fn on_message(cinfo: &mut jpeg_common_struct, _level: c_int) {
        // SAFETY: libjpeg calls this with its own valid error manager installed.
        if unsafe { (*cinfo.err).msg_code } == JWRN_JPEG_EOF as c_int {
            ENDED_EARLY.with(|e| e.set(true));
        }
    }

    extern "C-unwind" fn on_fatal(cinfo: &mut jpeg_common_struct) {
        // SAFETY: as above; format_message writes at most JMSG_LENGTH_MAX (80) bytes, NUL included.
        let mut buffer = [0u8; 80];
        unsafe {
            if let Some(format) = (*cinfo.err).format_message {
                let format: unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &mut [u8; 80]) = std::mem::transmute(format);
                format(cinfo, &mut buffer);
            }
        }
        let text = buffer.split(|&b| b == 0).next().unwrap_or_default();
        std::panic::resume_unwind(Box::new(String::from_utf8_lossy(text).into_owned()));
    }

    struct Read {
        width: usize,
        height: usize,
        rgb: Vec<u8>,
        orientation: Orientation,
    }

    /// Decodes a JPEG (the header, the pixel budget and EXIF orientation included) into upright RGB.
    pub fn decode(bytes: &[u8], source: &str) -> Result<RgbImage> {
        ENDED_EARLY.with(|e| e.set(false));
        let result = std::panic::catch_unwind(|| -> std::io::Result<Result<Read>> {
            // SAFETY: a zeroed jpeg_error_mgr is what jpeg_std_error expects to fill in.
            let mut err: mozjpeg_sys::jpeg_error_mgr = unsafe { std::mem::zeroed() };
            unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
            err.error_exit = Some(on_fatal);
            err.emit_message = Some(on_message);
            let header = mozjpeg::Decompress::with_err(err).with_markers(&[Marker::APP(1)]).from_mem(bytes)?;
            let (width, height) = header.size();
            if let Err(e) = super::check_size(width as u64, height as u64, source) {
                return Ok(Err(e)); // refused from the header, before decoding
            }
            let exif = header.markers().find_map(|m| m.data.strip_prefix(b"Exif\0\0"));
            let orientation = exif.and_then(Orientation::from_exif_chunk).unwrap_or(Orientation::NoTransforms);
            let cmyk = matches!(header.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK);
            let mut started = if cmyk { header.to_colorspace(ColorSpace::JCS_CMYK)? } else { header.rgb()? };
            let pixels = started.read_scanlines::<u8>()?;
            started.finish()?;
            let rgb = if cmyk { cmyk_to_rgb_like_pil(&pixels) } else { pixels };
            Ok(Ok(Read { width, height, rgb, orientation }))
        });
        if ENDED_EARLY.with(Cell::get) {
            bail!(DamagedImage, "{source}: truncated JPEG (the data ends before the image does)");
        }
        let why = match result {
            Ok(Ok(Err(e))) => return Err(e),
            Ok(Ok(Ok(Read { width, height, rgb, orientation }))) => match RgbImage::from_vec(width as u32, height as u32, rgb) {
                Some(img) => {
                    let mut img = DynamicImage::ImageRgb8(img);
                    img.apply_orientation(orientation);
                    return Ok(img.into_rgb8());
                }
                None => "fewer scanlines than the header says".into(),
            },
            Ok(Err(e)) => e.to_string(),
            Err(payload) => payload.downcast::<String>().map(|m| *m).unwrap_or_else(|_| "libjpeg failed".into()),
        };
        bail!(DamagedImage, "{source}: corrupt JPEG, broken data stream ({why})")
    }

    /// PIL reads a 4-channel JPEG as Adobe's inverted CMYK ("CMYK;I", whatever the markers say),
    /// then Convert.c's cmyk2rgb: `nk = 255 - k`, `r = nk - c * nk / 255` (rounded as MULDIV255).
    fn cmyk_to_rgb_like_pil(cmyk: &[u8]) -> Vec<u8> {
        let muldiv255 = |a: u32, b: u32| {
            let t = a * b + 128;
            ((t >> 8) + t) >> 8
        };
        cmyk.chunks_exact(4)
            .flat_map(|p| {
                let nk = p[3] as u32; // 255 - (255 - k): the stored value is inverted
                [0, 1, 2].map(|c| (nk - muldiv255(255 - p[c] as u32, nk)) as u8)
            })
            .collect()
    }
}

/// Reads and decodes an image file.
#[cfg(not(target_arch = "wasm32"))]
pub fn open(path: &std::path::Path) -> Result<RgbImage> {
    let source = path.display().to_string();
    let bytes = std::fs::read(path).context(|| format!("{source}: cannot read"))?;
    decode(&bytes, &source)
}

/// PIL's `convert("RGB")`: alpha is dropped (not composited), grey is repeated.
/// 16-bit colour keeps its high byte (PIL reads it as "RGB"), but 16-bit grey is
/// PIL's integer mode "I;16", which converts by clamping to 255 (checked with Pillow 13).
fn to_rgb_like_pil(img: DynamicImage) -> RgbImage {
    let reduce16 = |img: &DynamicImage, f: fn(u16) -> u8| {
        let rgb16 = img.to_rgb16();
        let (w, h) = rgb16.dimensions();
        RgbImage::from_vec(w, h, rgb16.into_raw().into_iter().map(f).collect()).expect("same size")
    };
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgba16(_) => reduce16(&img, |v| (v >> 8) as u8),
        DynamicImage::ImageLuma16(_) | DynamicImage::ImageLumaA16(_) => reduce16(&img, |v| v.min(255) as u8),
        other => other.to_rgb8(),
    }
}

/// Builds an RGB image from RGBA pixels (what a browser's canvas gives).
pub fn from_rgba(width: u32, height: u32, rgba: &[u8], source: &str) -> Result<RgbImage> {
    check_size(width as u64, height as u64, source)?;
    if rgba.len() as u64 != width as u64 * height as u64 * 4 {
        bail!(BadInput, "{source}: {} bytes of RGBA for {width}x{height}", rgba.len());
    }
    let rgb = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    Ok(RgbImage::from_vec(width, height, rgb).expect("size checked"))
}

/// Size after resizing the short side to `short` (transformers' `get_resize_output_image_size`:
/// the long side is truncated, `int(short * long / short_in)`). In u64: a 1x64,000,000 strip
/// resizes to 448 x 28,672,000,000, which overflows wasm32's usize (only the crop is computed).
pub fn resized_size(width: u32, height: u32, short: usize) -> (u64, u64) {
    // short * long is exact in f64 (< 2^53) and the division rounds once, as Python's does.
    let scaled = |long: u32, short_in: u32| (short as f64 * long as f64 / short_in as f64) as u64;
    if width <= height {
        (short as u64, scaled(height, width))
    } else {
        (scaled(width, height), short as u64)
    }
}

/// Resize (PIL bilinear) then centre crop to `crop` x `crop`, as uint8 RGB.
/// Only the cropped window of the resized image is ever computed, so memory stays at the
/// input, the crop and a band of input rows however long the resized image would be:
/// each output pixel of Pillow's resampling depends only on its own coordinates.
pub fn resize_and_crop(img: &RgbImage, config: &PreprocessorConfig) -> RgbImage {
    let (w, h) = img.dimensions();
    let (rw, rh) = resized_size(w, h, config.shortest_edge);
    let crop = config.crop;
    let (left, top) = ((rw - crop as u64) / 2, (rh - crop as u64) / 2);
    let horizontal = Coefficients::bilinear(w as usize, rw, left, crop);
    let vertical = Coefficients::bilinear(h as usize, rh, top, crop);
    // Horizontal pass over the rows the vertical pass reads, then the vertical pass (Pillow's order).
    let (first_row, last_row) = vertical.rows_used();
    let src = img.as_raw();
    let width = w as usize;
    let mut tmp = vec![0u8; (last_row - first_row) * crop * 3];
    for y in first_row..last_row {
        let row = &src[y * width * 3..(y + 1) * width * 3];
        let out = &mut tmp[(y - first_row) * crop * 3..(y - first_row + 1) * crop * 3];
        for x in 0..crop {
            for c in 0..3 {
                out[x * 3 + c] = horizontal.apply(x, |i| row[i * 3 + c]);
            }
        }
    }
    let mut out = vec![0u8; crop * crop * 3];
    for y in 0..crop {
        for x in 0..crop * 3 {
            out[y * crop * 3 + x] = vertical.apply(y, |i| tmp[(i - first_row) * crop * 3 + x]);
        }
    }
    RgbImage::from_vec(crop as u32, crop as u32, out).expect("size matches")
}

/// Pillow's fixed-point resampling weights for a window of output positions.
struct Coefficients {
    /// Per output position: first input index and the integer weights.
    taps: Vec<(usize, Vec<i32>)>,
}

/// Pillow keeps 22 fractional bits so that a sum of 8-bit products fits an i32.
const PRECISION_BITS: u32 = 32 - 8 - 2;

impl Coefficients {
    /// Weights for output positions `first..first + count` of a resize from `in_size` to `out_size`
    /// with the triangle filter (support 1), widened by the scale when shrinking (antialiasing).
    fn bilinear(in_size: usize, out_size: u64, first: u64, count: usize) -> Self {
        let filter = |x: f64| {
            let x = x.abs();
            if x < 1.0 { 1.0 - x } else { 0.0 }
        };
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale; // triangle support 1.0, times the scale
        let taps = (first..first + count as u64)
            .map(|xx| {
                let center = (xx as f64 + 0.5) * scale;
                let ss = 1.0 / filterscale;
                // C's (int) cast truncates toward zero; values here are >= -support.
                let xmin = ((center - support + 0.5) as i64).max(0) as usize;
                let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
                let weights: Vec<f64> = (xmin..xmax).map(|x| filter((x as f64 - center + 0.5) * ss)).collect();
                let total: f64 = weights.iter().sum();
                let fixed = weights
                    .iter()
                    .map(|&w| {
                        let w = if total != 0.0 { w / total } else { w };
                        // Pillow rounds negative weights down; the triangle filter has none.
                        (w * (1u32 << PRECISION_BITS) as f64 + 0.5) as i32
                    })
                    .collect();
                (xmin, fixed)
            })
            .collect();
        Coefficients { taps }
    }

    /// Input rows `[first, last)` that any output position reads.
    fn rows_used(&self) -> (usize, usize) {
        let first = self.taps.iter().map(|(s, _)| *s).min().unwrap_or(0);
        let last = self.taps.iter().map(|(s, w)| s + w.len()).max().unwrap_or(0);
        (first, last)
    }

    /// One output sample: the weighted sum, rounded and clamped like Pillow's `clip8`.
    fn apply(&self, out_index: usize, sample: impl Fn(usize) -> u8) -> u8 {
        let (start, weights) = &self.taps[out_index];
        let mut acc: i32 = 1 << (PRECISION_BITS - 1);
        for (k, &w) in weights.iter().enumerate() {
            acc = acc.wrapping_add(sample(start + k) as i32 * w);
        }
        (acc >> PRECISION_BITS).clamp(0, 255) as u8
    }
}

/// uint8 HWC -> float32 CHW: `x * rescale_factor` in float64, rounded to f32, then `(x - mean) / std`.
pub fn normalize(crop: &RgbImage, config: &PreprocessorConfig) -> Vec<f32> {
    let (w, h) = crop.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, px) in crop.pixels().enumerate() {
        for c in 0..3 {
            let x = (px.0[c] as f64 * config.rescale_factor) as f32;
            out[c * plane + i] = (x - config.mean[c]) / config.std[c];
        }
    }
    out
}

/// The whole processor: decoded image -> `[3][crop][crop]` network input.
pub fn preprocess(img: &RgbImage, config: &PreprocessorConfig) -> Vec<f32> {
    normalize(&resize_and_crop(img, config), config)
}

/// The mirror image (left-right) of a `[3][size][size]` network input: the extra view of an
/// example that a head trained with flips also learns from.
pub fn mirror(pixels: &[f32], size: usize) -> Vec<f32> {
    let mut out = pixels.to_vec();
    for row in out.chunks_exact_mut(size.max(1)) {
        row.reverse();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pixel_limit_is_inclusive() {
        assert_eq!(MAX_PIXELS, 8000 * 8000);
        assert!(check_size(8000, 8000, "square.png").is_ok());
        assert!(check_size(MAX_PIXELS, 1, "strip.png").is_ok());
        let e = check_size(8000, 8001, "big.png").unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooLarge);
        assert!(e.message.starts_with("big.png: image is 8000x8001"), "{e}");
    }

    #[test]
    fn canvas_rgba_drops_alpha_and_its_sizes_are_checked() {
        let rgba = [1, 2, 3, 255, 4, 5, 6, 0, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22];
        let rgb = from_rgba(3, 2, &rgba, "canvas").unwrap();
        assert_eq!(rgb.dimensions(), (3, 2));
        assert_eq!(rgb.as_raw(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 19, 20, 21]);
        for (w, h, bytes) in [(3, 2, &rgba[..20]), (2, 3, &rgba[..20]), (4, 2, &rgba[..]), (1, 1, &rgba[..])] {
            let e = from_rgba(w, h, bytes, "canvas").unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadInput, "{w}x{h}, {} bytes: {e}", bytes.len());
        }
        // The limit itself is allowed (refused here only for its missing bytes); one row more is not.
        assert_eq!(from_rgba(8000, 8000, &[], "canvas").unwrap_err().kind, ErrorKind::BadInput);
        assert_eq!(from_rgba(8000, 8001, &[], "canvas").unwrap_err().kind, ErrorKind::TooLarge);
    }

    #[test]
    fn resized_size_truncates_the_long_side() {
        assert_eq!(resized_size(451, 300, 448), (673, 448)); // 448*451/300 = 673.49
        assert_eq!(resized_size(300, 451, 448), (448, 673));
        assert_eq!(resized_size(512, 512, 448), (448, 448));
    }

    #[test]
    fn sixteen_bit_images_reduce_like_pil() {
        // Pillow 13: RGB;16 -> RGB keeps the high byte; I;16 -> RGB clamps at 255.
        let values = [0u16, 255, 256, 1000, 40000, 65535];
        let rgb = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(6, 1, |x, _| image::Rgb([values[x as usize]; 3]));
        let out = to_rgb_like_pil(DynamicImage::ImageRgb16(rgb));
        assert_eq!(out.pixels().map(|p| p.0[0]).collect::<Vec<_>>(), [0, 0, 1, 3, 156, 255]);
        let grey = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(6, 1, |x, _| image::Luma([values[x as usize]]));
        let out = to_rgb_like_pil(DynamicImage::ImageLuma16(grey));
        assert_eq!(out.pixels().map(|p| p.0[1]).collect::<Vec<_>>(), [0, 255, 255, 255, 255, 255]);
    }

    #[test]
    fn mirror_reverses_each_row_of_each_channel() {
        let pixels: Vec<f32> = (0..2 * 2 * 3).map(|x| x as f32).collect();
        assert_eq!(mirror(&pixels, 2), [1.0, 0.0, 3.0, 2.0, 5.0, 4.0, 7.0, 6.0, 9.0, 8.0, 11.0, 10.0]);
    }

    #[test]
    fn same_size_is_identity() {
        let img = RgbImage::from_fn(20, 20, |x, y| image::Rgb([x as u8 * 7, y as u8 * 5, (x * y) as u8]));
        let config = PreprocessorConfig { shortest_edge: 20, crop: 20, rescale_factor: 1.0 / 255.0, mean: [0.5; 3], std: [0.5; 3] };
        assert_eq!(resize_and_crop(&img, &config), img);
    }
}
