//! numpy's `.npy` format: float arrays for `--pixels` and inside the original BiT `.npz`;
//! anything else (object arrays, structured dtypes, Fortran order) is refused with a reason.

use super::pickle::Elem;
use crate::{bail, Result};

/// Parses a `.npy` array of f2, f4 or f8 (either byte order, C order): (shape, values as f32).
pub fn read(bytes: &[u8], source: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("{source}: not a .npy array");
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => bail!("{source}: unsupported .npy version {v}"),
    };
    let Some(header) = bytes.get(start..start.saturating_add(header_len)) else {
        bail!("{source}: truncated .npy header ({header_len} bytes claimed, {} present)", bytes.len() - start);
    };
    let Ok(header) = std::str::from_utf8(header) else {
        bail!("{source}: .npy header is not text");
    };
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}':"))? + key.len() + 3;
        Some(header[at..].trim_start())
    };
    let Some(descr) = field("descr") else {
        bail!("{source}: no dtype in the .npy header");
    };
    let Some(descr) = descr.strip_prefix('\'').and_then(|d| d.split('\'').next()) else {
        bail!("{source}: dtype {} is not a plain float type (structured arrays are not supported)", descr.split('}').next().unwrap_or(""));
    };
    let (order, kind) = descr.split_at(descr.len().min(1));
    let elem = match Elem::numpy(kind) {
        Some(elem) => elem,
        None if kind == "O" => bail!("{source}: object array (dtype '{descr}'); refusing, reading it would need pickle"),
        None => bail!("{source}: dtype '{descr}' is not a float type (f2, f4, f8)"),
    };
    if !matches!(order, "<" | ">" | "=" | "|") {
        bail!("{source}: dtype '{descr}' is not a float type (f2, f4, f8)");
    }
    if !field("fortran_order").unwrap_or("").starts_with("False") {
        bail!("{source}: Fortran-order arrays are not supported");
    }
    let shape_text = field("shape").unwrap_or("");
    let Some(inner) = shape_text.strip_prefix('(').and_then(|s| s.split(')').next()) else {
        bail!("{source}: no shape in the .npy header");
    };
    let mut shape = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u64>() {
            Ok(n) if shape.len() < 8 => shape.push(n),
            _ => bail!("{source}: bad shape ({inner}) in the .npy header"),
        }
    }
    let data = &bytes[start + header_len..];
    let need = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).and_then(|n| n.checked_mul(elem.size() as u64));
    if need != Some(data.len() as u64) {
        let need = need.map(|n| n.to_string()).unwrap_or_else(|| "more than 2^64".into());
        bail!("{source}: shape {shape:?} of '{descr}' needs {need} bytes, the file holds {}", data.len());
    }
    Ok((shape.iter().map(|&d| d as usize).collect(), elem.decode(data, order == ">")))
}

/// Writes a float32 array in `.npy` format (version 1).
pub fn write_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let bytes = super::write_f32(&[1, 3, 2, 2], &[0.5; 12]);
        assert_eq!(super::read(&bytes, "x.npy").unwrap(), (vec![1, 3, 2, 2], vec![0.5; 12]));
        for n in 0..bytes.len() {
            assert!(super::read(&bytes[..n], "x.npy").unwrap_err().message.starts_with("x.npy: "), "{n} bytes");
        }
        // numpy pads the header so the data starts on a 64-byte boundary, ending it with '\n'.
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert_eq!(bytes[10 + header_len - 1], b'\n');
    }

    fn error(bytes: &[u8]) -> String {
        super::read(bytes, "x.npy").unwrap_err().message
    }

    /// Version 2 (a 4-byte header length, as numpy writes for headers past 64 KiB), and its
    /// truncations.
    #[test]
    fn version_2() {
        let v1 = super::write_f32(&[3], &[1.0, 2.0, 3.0]);
        let header = &v1[10..10 + u16::from_le_bytes([v1[8], v1[9]]) as usize];
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        v2.extend((header.len() as u32).to_le_bytes());
        v2.extend(header);
        v2.extend(&v1[10 + header.len()..]);
        assert_eq!(super::read(&v2, "x.npy").unwrap(), (vec![3], vec![1.0, 2.0, 3.0]));
        assert_eq!(error(&v2[..11]), "x.npy: unsupported .npy version 2");
        assert_eq!(error(&v2[..12]), format!("x.npy: truncated .npy header ({} bytes claimed, 0 present)", header.len()));
    }

    /// f2 and f8 in either byte order, as numpy writes them (`write_f32`'s header with another
    /// descr); the `.npz` of the original BiT release holds f4, the others come from users.
    #[test]
    fn f2_and_f8_in_either_byte_order() {
        let with = |descr: &str, data: &[u8]| {
            let f4 = super::write_f32(&[2], &[0.0, 0.0]);
            let header = std::str::from_utf8(&f4[10..f4.len() - 8]).unwrap().replace("'<f4'", &format!("'{descr}'"));
            let mut bytes = f4[..8].to_vec();
            bytes.extend((header.len() as u16).to_le_bytes());
            bytes.extend(header.as_bytes());
            bytes.extend(data);
            super::read(&bytes, "x.npy").map_err(|e| e.message)
        };
        let halves = [0x3c00u16, 0xc100]; // 1.0, -2.5
        assert_eq!(with("<f2", &halves.map(u16::to_le_bytes).concat()), Ok((vec![2], vec![1.0, -2.5])));
        assert_eq!(with(">f2", &halves.map(u16::to_be_bytes).concat()), Ok((vec![2], vec![1.0, -2.5])));
        let doubles = [0.25f64, -3.0];
        assert_eq!(with("<f8", &doubles.map(f64::to_le_bytes).concat()), Ok((vec![2], vec![0.25, -3.0])));
        assert_eq!(with(">f8", &doubles.map(f64::to_be_bytes).concat()), Ok((vec![2], vec![0.25, -3.0])));
        assert_eq!(with("<f8", &[0u8; 8]).unwrap_err(), "x.npy: shape [2] of '<f8' needs 16 bytes, the file holds 8");
        assert_eq!(with("<i4", &[0u8; 8]).unwrap_err(), "x.npy: dtype '<i4' is not a float type (f2, f4, f8)");
    }

    #[test]
    fn headers_without_dtype_or_with_too_many_dimensions() {
        assert_eq!(error(b"\x93NUMPY\x01\x00\x00\x00"), "x.npy: no dtype in the .npy header");
        assert_eq!(error(b"\x93NUMPY\x01\x00\x00"), "x.npy: not a .npy array");
        let with_dims = |n: usize| super::write_f32(&vec![1; n], &[4.0]);
        assert_eq!(super::read(&with_dims(8), "x.npy").unwrap(), (vec![1; 8], vec![4.0]));
        assert_eq!(error(&with_dims(9)), "x.npy: bad shape (1, 1, 1, 1, 1, 1, 1, 1, 1) in the .npy header");
    }
}
