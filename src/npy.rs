//! Just enough of numpy's `.npy` format to read a stored float32 input tensor
//! (`--pixels`), refusing anything else with a reason.

use crate::{bail, Result};

/// Reads a little-endian float32, C-order array: (shape, values).
pub fn read_f32(bytes: &[u8], source: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("{source}: not a .npy file");
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => bail!("{source}: unsupported .npy version {v}"),
    };
    let Some(header) = bytes.get(start..start.saturating_add(header_len)) else {
        bail!("{source}: truncated .npy header");
    };
    let header = String::from_utf8_lossy(header);
    let field = |key: &str| -> Option<String> {
        let at = header.find(&format!("'{key}':"))? + key.len() + 3;
        Some(header[at..].trim_start().to_string())
    };
    let descr = field("descr").unwrap_or_default();
    if !descr.starts_with("'<f4'") {
        bail!("{source}: dtype {} is not little-endian float32 ('<f4')", descr.split(',').next().unwrap_or(""));
    }
    if !field("fortran_order").unwrap_or_default().starts_with("False") {
        bail!("{source}: Fortran-order arrays are not supported");
    }
    let shape_text = field("shape").unwrap_or_default();
    let Some(inner) = shape_text.strip_prefix('(').and_then(|s| s.split(')').next()) else {
        bail!("{source}: no shape in the .npy header");
    };
    let mut shape = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<usize>() {
            Ok(n) => shape.push(n),
            Err(_) => bail!("{source}: bad dimension {part:?} in the .npy shape"),
        }
    }
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let data = &bytes[start + header_len..];
    match count {
        Some(n) if n.checked_mul(4) == Some(data.len()) => {}
        _ => bail!("{source}: shape {shape:?} does not match the {} data bytes", data.len()),
    }
    let values = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((shape, values))
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
        assert_eq!(super::read_f32(&bytes, "x.npy").unwrap(), (vec![1, 3, 2, 2], vec![0.5; 12]));
        assert!(super::read_f32(&bytes[..bytes.len() - 1], "x.npy").unwrap_err().0.contains("x.npy"));
    }
}
