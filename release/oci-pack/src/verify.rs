//! Verifies a layout as a registry and Istio would: every blob named by `index.json` exists and hashes
//! to its digest with the declared size; the manifest has one `tar+gzip` layer holding only
//! `plugin.wasm` (a WebAssembly module); the config's `rootfs.diff_ids` is the uncompressed layer's
//! digest.

use crate::{invalid, io_err, layer, oci_err, sha256_hex, Error};
use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType, OciLayout,
};
use std::path::Path;

/// What a verified layout holds (one entry per manifest in `index.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub tag: Option<String>,
    pub manifest_hex: String,
    pub wasm_hex: String,
    pub wasm: Vec<u8>,
}

fn blob(dir: &Path, d: &Descriptor, what: &str) -> Result<Vec<u8>, Error> {
    let hex = d
        .as_digest_sha256()
        .ok_or_else(|| invalid(what, format!("digest {} is not sha256", d.digest())))?;
    let path = dir.join("blobs").join("sha256").join(hex);
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    let actual = sha256_hex(&bytes);
    if actual != hex {
        return Err(invalid(
            what,
            format!("blob sha256:{hex} hashes to sha256:{actual}"),
        ));
    }
    if bytes.len() as u64 != d.size() {
        return Err(invalid(
            what,
            format!(
                "blob sha256:{hex} is {} bytes, descriptor says {}",
                bytes.len(),
                d.size()
            ),
        ));
    }
    Ok(bytes)
}

/// Verifies the layout in `dir`.
pub fn verify(dir: &Path) -> Result<Vec<Verified>, Error> {
    let layout = OciLayout::from_file(dir.join("oci-layout")).map_err(oci_err("oci-layout"))?;
    if layout.image_layout_version() != "1.0.0" {
        return Err(invalid(
            "oci-layout",
            format!(
                "unsupported imageLayoutVersion {}",
                layout.image_layout_version()
            ),
        ));
    }
    let index = ImageIndex::from_file(dir.join("index.json")).map_err(oci_err("index.json"))?;
    if index.manifests().is_empty() {
        return Err(invalid("index.json", "no manifests"));
    }
    let mut out = Vec::new();
    for (i, md) in index.manifests().iter().enumerate() {
        let what = format!("index.json manifests[{i}]");
        if md.media_type() != &MediaType::ImageManifest {
            return Err(invalid(
                &what,
                format!("media type {} is not an image manifest", md.media_type()),
            ));
        }
        let mbytes = blob(dir, md, &what)?;
        let manifest =
            ImageManifest::from_reader(mbytes.as_slice()).map_err(oci_err("manifest"))?;
        let cbytes = blob(dir, manifest.config(), "config")?;
        let config =
            ImageConfiguration::from_reader(cbytes.as_slice()).map_err(oci_err("image config"))?;
        // Istio's compat variant: exactly one gzip'd tar layer.
        let [l] = manifest.layers().as_slice() else {
            return Err(invalid(
                "manifest",
                format!(
                    "{} layers; Istio's compat format needs exactly 1",
                    manifest.layers().len()
                ),
            ));
        };
        if l.media_type() != &MediaType::ImageLayerGzip {
            return Err(invalid(
                "manifest",
                format!(
                    "layer media type {} (expected {})",
                    l.media_type(),
                    MediaType::ImageLayerGzip
                ),
            ));
        }
        let lbytes = blob(dir, l, "layer")?;
        let (diff_id, wasm) = layer::extract(&lbytes)?;
        let want = vec![format!("sha256:{diff_id}")];
        if config.rootfs().diff_ids() != &want {
            return Err(invalid(
                "config",
                format!(
                    "rootfs.diff_ids {:?} do not match the layer ({want:?})",
                    config.rootfs().diff_ids()
                ),
            ));
        }
        let tag = md
            .annotations()
            .as_ref()
            .and_then(|a| a.get(crate::layout::REF_NAME).cloned());
        out.push(Verified {
            tag,
            manifest_hex: sha256_hex(&mbytes),
            wasm_hex: sha256_hex(&wasm),
            wasm,
        });
    }
    Ok(out)
}
