//! The single image layer: a gzip-compressed tar holding `plugin.wasm`, with every variable field fixed.

use crate::{invalid, Error, PLUGIN_FILE, WASM_HEADER};
use std::io::{Read, Write};

/// A built layer: the compressed blob and the digest of the uncompressed tar (the OCI `diff_id`).
pub struct Layer {
    pub gzip: Vec<u8>,
    pub diff_id_hex: String,
}

/// Builds the layer for a module. Refuses bytes that are not a WebAssembly binary module.
pub fn build(wasm: &[u8]) -> Result<Layer, Error> {
    if !wasm.starts_with(&WASM_HEADER) {
        return Err(invalid(
            "module",
            "not a WebAssembly binary module (missing \\0asm version 1 header)",
        ));
    }
    let tar = tar_of(wasm).map_err(|e| invalid("layer tar", e.to_string()))?;
    let diff_id_hex = crate::sha256_hex(&tar);
    // GzBuilder writes mtime 0 and no file name unless told otherwise; the OS byte is fixed too.
    let mut gz = flate2::GzBuilder::new()
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar)
        .map_err(|e| invalid("layer gzip", e.to_string()))?;
    let gzip = gz
        .finish()
        .map_err(|e| invalid("layer gzip", e.to_string()))?;
    Ok(Layer { gzip, diff_id_hex })
}

fn tar_of(wasm: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header.set_path(PLUGIN_FILE)?;
    header.set_size(wasm.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    b.append(&header, wasm)?;
    b.into_inner()
}

/// Reads a layer back: (the uncompressed tar's sha256, the `plugin.wasm` bytes). Errors if the tar holds
/// anything but exactly one regular file named `plugin.wasm`.
pub fn extract(gzip: &[u8]) -> Result<(String, Vec<u8>), Error> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gzip)
        .read_to_end(&mut tar)
        .map_err(|e| invalid("layer", format!("not gzip: {e}")))?;
    let diff_id = crate::sha256_hex(&tar);
    let mut archive = tar::Archive::new(tar.as_slice());
    let entries = archive
        .entries()
        .map_err(|e| invalid("layer", format!("not a tar: {e}")))?;
    let mut found: Option<Vec<u8>> = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid("layer", format!("bad tar entry: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| invalid("layer", format!("bad tar path: {e}")))?
            .display()
            .to_string();
        if path != PLUGIN_FILE || found.is_some() {
            return Err(invalid(
                "layer",
                format!("unexpected entry {path:?}: the layer must hold only {PLUGIN_FILE}"),
            ));
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| invalid("layer", format!("reading {PLUGIN_FILE}: {e}")))?;
        found = Some(bytes);
    }
    let wasm = found.ok_or_else(|| invalid("layer", format!("{PLUGIN_FILE} not found")))?;
    if !wasm.starts_with(&WASM_HEADER) {
        return Err(invalid(
            "layer",
            format!("{PLUGIN_FILE} is not a WebAssembly binary module"),
        ));
    }
    Ok((diff_id, wasm))
}
