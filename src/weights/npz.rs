//! numpy's `.npz` (a zip of `.npy` files), as the original Big Transfer release
//! ships its weights. Only plain float arrays are read; object arrays (which
//! would need pickle) and structured dtypes are refused.

use super::zip::Zip;
use crate::model::{Tensor, TensorMap};
use crate::{bail, Result};

/// Reads every `.npy` entry of an npz archive as an f32 tensor named without `.npy`.
pub fn read_npz(zip: &Zip, source: &str) -> Result<TensorMap> {
    let mut out = TensorMap::new();
    for entry in &zip.entries {
        let Some(name) = entry.name.strip_suffix(".npy") else {
            bail!("{source}: npz entry {} is not a .npy file", entry.name);
        };
        let bytes = zip.read(entry)?;
        let (shape, data) = super::npy::read(&bytes, &format!("{source}: {}", entry.name))?;
        if out.insert(name.to_string(), Tensor::new(shape, data)).is_some() {
            bail!("{source}: array {name} appears twice");
        }
    }
    Ok(out)
}
