//! A small, defensive zip reader: enough for torch's `pytorch_model.bin` (stored
//! entries) and numpy's `.npz` (stored or deflated, zip64 records).
//!
//! Nothing read from the archive is trusted: the central directory, every local
//! header and every entry's data must lie inside the bytes actually present,
//! sizes must agree, inflated data is capped at the size the directory claims,
//! and every entry's CRC-32 is checked before its bytes are handed out.

use crate::{bail, Result};
use std::borrow::Cow;

/// Largest entry we will inflate, whatever the archive claims.
pub const MAX_ENTRY_BYTES: u64 = 4 << 30;

#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    method: u16,
    crc: u32,
    compressed: u64,
    pub size: u64,
    local_offset: u64,
}

/// A parsed archive borrowing the file's bytes.
pub struct Zip<'a> {
    bytes: &'a [u8],
    source: String,
    /// Where the central directory starts: every entry's data ends at or before it.
    directory: u64,
    pub entries: Vec<Entry>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

impl<'a> Zip<'a> {
    pub fn parse(bytes: &'a [u8], source: &str) -> Result<Self> {
        let truncated = || crate::Error::from(format!("{source}: truncated or corrupt zip archive"));
        // End of central directory: the last "PK\5\6" within the final 64 KiB + 22 bytes.
        if bytes.len() < 22 {
            bail!("{source}: truncated zip archive ({} bytes)", bytes.len());
        }
        let lowest = bytes.len().saturating_sub(22 + 0xFFFF);
        let eocd = (lowest..=bytes.len() - 22)
            .rev()
            .find(|&i| bytes[i..i + 4] == *b"PK\x05\x06")
            .ok_or_else(|| crate::Error::from(format!("{source}: truncated zip archive (no end of central directory)")))?;
        let mut count = u16_at(bytes, eocd + 10).ok_or_else(truncated)? as u64;
        let mut cd_size = u32_at(bytes, eocd + 12).ok_or_else(truncated)? as u64;
        let mut cd_offset = u32_at(bytes, eocd + 16).ok_or_else(truncated)? as u64;
        // Zip64: a locator right before the EOCD points at the zip64 EOCD record.
        if eocd >= 20 && bytes[eocd - 20..eocd - 16] == *b"PK\x06\x07" {
            let at = u64_at(bytes, eocd - 12).ok_or_else(truncated)?;
            let at = usize::try_from(at).map_err(|_| truncated())?;
            if bytes.get(at..at.saturating_add(4)) != Some(b"PK\x06\x06") {
                bail!("{source}: corrupt zip64 end of central directory");
            }
            count = u64_at(bytes, at + 32).ok_or_else(truncated)?;
            cd_size = u64_at(bytes, at + 40).ok_or_else(truncated)?;
            cd_offset = u64_at(bytes, at + 48).ok_or_else(truncated)?;
        }
        // The central directory lies before the end record (and the zip64 records between them).
        let cd_end = cd_offset.checked_add(cd_size).ok_or_else(truncated)?;
        if cd_end > eocd as u64 {
            bail!("{source}: central directory ({cd_size} bytes at {cd_offset}) runs into the end record at {eocd}");
        }
        // Each central record is at least 46 bytes: a count beyond that is a lie.
        if count > cd_size / 46 {
            bail!("{source}: zip claims {count} entries in a {cd_size}-byte central directory");
        }
        let cd = &bytes[cd_offset as usize..cd_end as usize];
        let mut entries = Vec::with_capacity(count as usize);
        let mut at = 0usize;
        for _ in 0..count {
            if cd.get(at..at + 4) != Some(b"PK\x01\x02") {
                bail!("{source}: corrupt zip central directory");
            }
            let method = u16_at(cd, at + 10).ok_or_else(truncated)?;
            let flags = u16_at(cd, at + 8).ok_or_else(truncated)?;
            let crc = u32_at(cd, at + 16).ok_or_else(truncated)?;
            let mut compressed = u32_at(cd, at + 20).ok_or_else(truncated)? as u64;
            let mut size = u32_at(cd, at + 24).ok_or_else(truncated)? as u64;
            let name_len = u16_at(cd, at + 28).ok_or_else(truncated)? as usize;
            let extra_len = u16_at(cd, at + 30).ok_or_else(truncated)? as usize;
            let comment_len = u16_at(cd, at + 32).ok_or_else(truncated)? as usize;
            let mut local_offset = u32_at(cd, at + 42).ok_or_else(truncated)? as u64;
            let name_at = at + 46;
            let name = cd.get(name_at..name_at + name_len).ok_or_else(truncated)?;
            let name = String::from_utf8_lossy(name).to_string();
            let extra = cd.get(name_at + name_len..name_at + name_len + extra_len).ok_or_else(truncated)?;
            // Zip64 extended information: the fields that are 0xFFFFFFFF, in order.
            let mut e = 0;
            while e + 4 <= extra.len() {
                let id = u16_at(extra, e).unwrap_or(0);
                let len = u16_at(extra, e + 2).unwrap_or(0) as usize;
                let body = extra.get(e + 4..e + 4 + len).ok_or_else(truncated)?;
                if id == 1 {
                    let mut f = 0;
                    for field in [&mut size, &mut compressed, &mut local_offset] {
                        if *field == 0xFFFF_FFFF {
                            *field = u64_at(body, f).ok_or_else(truncated)?;
                            f += 8;
                        }
                    }
                }
                e += 4 + len;
            }
            if flags & 1 != 0 {
                bail!("{source}: zip entry {name} is encrypted");
            }
            entries.push(Entry { name, method, crc, compressed, size, local_offset });
            at = name_at + name_len + extra_len + comment_len;
        }
        Ok(Zip { bytes, source: source.to_string(), directory: cd_offset, entries })
    }

    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The entry's uncompressed bytes, checked against its sizes and CRC-32.
    pub fn read(&self, entry: &Entry) -> Result<Cow<'a, [u8]>> {
        let (source, name) = (&self.source, &entry.name);
        let bytes = self.bytes;
        let bad = |what: &str| crate::Error::from(format!("{source}: zip entry {name}: {what}"));
        let local = usize::try_from(entry.local_offset).map_err(|_| bad("local header past the end of the file"))?;
        if bytes.get(local..local.saturating_add(4)) != Some(b"PK\x03\x04") {
            bail!("{source}: zip entry {name}: no local header at offset {local}");
        }
        let name_len = u16_at(bytes, local + 26).ok_or_else(|| bad("truncated local header"))? as u64;
        let extra_len = u16_at(bytes, local + 28).ok_or_else(|| bad("truncated local header"))? as u64;
        let start = entry.local_offset + 30 + name_len + extra_len;
        let end = start.checked_add(entry.compressed).ok_or_else(|| bad("size overflows"))?;
        if end > self.directory {
            bail!("{source}: zip entry {name}: {} bytes at offset {start} run into the central directory at {}", entry.compressed, self.directory);
        }
        if entry.size > MAX_ENTRY_BYTES {
            bail!("{source}: zip entry {name}: claims {} bytes, more than the {MAX_ENTRY_BYTES} allowed", entry.size);
        }
        let raw = &bytes[start as usize..end as usize];
        let data: Cow<'a, [u8]> = match entry.method {
            0 => {
                if entry.compressed != entry.size {
                    bail!("{source}: zip entry {name}: stored entry has {} bytes but claims {}", entry.compressed, entry.size);
                }
                Cow::Borrowed(raw)
            }
            8 => {
                // Deflate cannot expand more than ~1032:1; a bigger claim is a lie.
                if entry.size > entry.compressed.saturating_mul(1032).saturating_add(64) {
                    bail!("{source}: zip entry {name}: claims {} bytes from {} compressed", entry.size, entry.compressed);
                }
                let out = miniz_oxide::inflate::decompress_to_vec_with_limit(raw, entry.size as usize)
                    .map_err(|e| bad(&format!("cannot inflate ({:?})", e.status)))?;
                if out.len() as u64 != entry.size {
                    bail!("{source}: zip entry {name}: inflates to {} bytes, claims {}", out.len(), entry.size);
                }
                Cow::Owned(out)
            }
            m => bail!("{source}: zip entry {name}: unsupported compression method {m}"),
        };
        let crc = crc32fast::hash(&data);
        if crc != entry.crc {
            bail!("{source}: zip entry {name}: CRC-32 {crc:08x} does not match the recorded {:08x}", entry.crc);
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_empty_archive_is_its_22_byte_end_record() {
        // What Python's zipfile writes for an archive with no entries.
        let mut empty = b"PK\x05\x06".to_vec();
        empty.resize(22, 0);
        assert_eq!(super::Zip::parse(&empty, "e.zip").unwrap().entries.len(), 0);
        assert_eq!(super::Zip::parse(&empty[..21], "e.zip").err().unwrap().message, "e.zip: truncated zip archive (21 bytes)");
        // A directory that would reach into the end record (one byte at offset 0).
        empty[12] = 1;
        assert_eq!(
            super::Zip::parse(&empty, "e.zip").err().unwrap().message,
            "e.zip: central directory (1 bytes at 0) runs into the end record at 0"
        );
    }

    /// One deflated entry `w` whose directory claims `size` bytes (in a zip64 extra field).
    fn deflated_claiming(size: u64) -> Vec<u8> {
        deflated_with_extra(size, &[])
    }

    /// The same, with `other` extra fields before the zip64 one.
    fn deflated_with_extra(size: u64, other: &[u8]) -> Vec<u8> {
        let data = miniz_oxide::deflate::compress_to_vec(&[7u8; 64], 6);
        let mut zip = b"PK\x03\x04".to_vec();
        zip.resize(30, 0);
        zip[26] = 1; // name length
        zip.push(b'w');
        zip.extend_from_slice(&data);
        let cd_offset = zip.len();
        let mut cd = b"PK\x01\x02".to_vec();
        cd.resize(46, 0);
        cd[10] = 8; // deflated
        cd[16..20].copy_from_slice(&crc32fast::hash(&[7u8; 64]).to_le_bytes());
        cd[20..24].copy_from_slice(&(data.len() as u32).to_le_bytes());
        cd[24..28].copy_from_slice(&u32::MAX.to_le_bytes()); // the size is in the zip64 field
        cd[28] = 1;
        cd[30] = 12 + other.len() as u8; // extra length
        cd.push(b'w');
        cd.extend_from_slice(other);
        cd.extend_from_slice(&[1, 0, 8, 0]);
        cd.extend_from_slice(&size.to_le_bytes());
        let mut eocd = b"PK\x05\x06".to_vec();
        eocd.resize(22, 0);
        eocd[10] = 1;
        eocd[12..16].copy_from_slice(&(cd.len() as u32).to_le_bytes());
        eocd[16..20].copy_from_slice(&(cd_offset as u32).to_le_bytes());
        [zip, cd, eocd].concat()
    }

    #[test]
    fn no_entry_may_claim_more_than_max_entry_bytes() {
        let read = |size: u64| {
            let bytes = deflated_claiming(size);
            let zip = super::Zip::parse(&bytes, "w.zip").unwrap();
            assert_eq!(zip.entries[0].size, size);
            zip.read(&zip.entries[0]).map(|d| d.into_owned()).map_err(|e| e.message)
        };
        let max = super::MAX_ENTRY_BYTES;
        assert_eq!(read(max + 1).unwrap_err(), format!("w.zip: zip entry w: claims {} bytes, more than the {max} allowed", max + 1));
        // At the limit the next check speaks: deflate cannot expand that far.
        assert!(read(max).unwrap_err().contains(&format!("claims {max} bytes from ")));
        assert_eq!(read(64).unwrap(), vec![7u8; 64], "the honest claim reads");
    }

    #[test]
    fn a_count_beyond_what_the_directory_can_hold_is_refused() {
        let mut bytes = deflated_claiming(64);
        let count = bytes.len() - 12; // the end record's entry count
        bytes[count] = 2;
        assert_eq!(super::Zip::parse(&bytes, "w.zip").err().unwrap().message, "w.zip: zip claims 2 entries in a 59-byte central directory");
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<u8>, String> {
        let zip = super::Zip::parse(bytes, "w.zip").map_err(|e| e.message)?;
        zip.read(&zip.entries[0]).map(|d| d.into_owned()).map_err(|e| e.message)
    }

    #[test]
    fn the_end_record_is_looked_for_in_the_last_64_kib_and_22_bytes() {
        // What follows the end record is its comment (at most 0xFFFF bytes); beyond that, not a zip.
        let zip = deflated_claiming(64);
        assert_eq!(read_all(&[zip.as_slice(), &[0u8; 0xFFFF]].concat()).unwrap(), vec![7u8; 64]);
        assert_eq!(read_all(&[zip.as_slice(), &[0u8; 0x10000]].concat()).unwrap_err(), "w.zip: truncated zip archive (no end of central directory)");
    }

    #[test]
    fn the_zip64_field_is_found_after_other_extra_fields() {
        // An extended timestamp (0x5455, 5 bytes) first, as Info-ZIP writes it.
        let bytes = deflated_with_extra(64, &[0x55, 0x54, 5, 0, 1, 0, 0, 0, 0]);
        assert_eq!(read_all(&bytes).unwrap(), vec![7u8; 64]);
        // An extra field whose length runs past the extra data.
        let mut bytes = deflated_with_extra(64, &[0x55, 0x54, 5, 0, 1, 0, 0, 0, 0]);
        let at = bytes.windows(4).position(|w| w == b"UT\x05\x00").unwrap();
        bytes[at + 2] = 30;
        assert_eq!(read_all(&bytes).unwrap_err(), "w.zip: truncated or corrupt zip archive");
    }

    #[test]
    fn deflate_claims_are_bounded_by_its_greatest_ratio_and_data_by_the_directory() {
        let compressed = miniz_oxide::deflate::compress_to_vec(&[7u8; 64], 6).len() as u64;
        let most = compressed * 1032 + 64;
        // At the bound, the claim is believed until the data inflates to less; past it, not.
        assert_eq!(read_all(&deflated_claiming(most)).unwrap_err(), format!("w.zip: zip entry w: inflates to 64 bytes, claims {most}"));
        assert_eq!(read_all(&deflated_claiming(most + 1)).unwrap_err(), format!("w.zip: zip entry w: claims {} bytes from {compressed} compressed", most + 1));
        // The entry's data ends where the directory starts; one byte more runs into it.
        let mut bytes = deflated_claiming(64);
        let cd = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        bytes[cd + 20] += 1;
        assert_eq!(read_all(&bytes).unwrap_err(), format!("w.zip: zip entry w: {} bytes at offset 31 run into the central directory at {cd}", compressed + 1));
    }
}
