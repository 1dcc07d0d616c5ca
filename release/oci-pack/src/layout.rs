//! Writes an OCI image layout (image-spec `image-layout.md`): `oci-layout`, `index.json` and
//! content-addressed `blobs/sha256/<hex>` for the config, the layer and the manifest.

use crate::{io_err, layer, oci_err, sha256_hex, Error};
use oci_spec::image::{
    Arch, Descriptor, ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder,
    MediaType, OciLayoutBuilder, Os, RootFsBuilder, Sha256Digest,
};
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

/// The annotation naming the tag of a manifest in `index.json` (what `skopeo copy oci:DIR:TAG` reads).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What a build produced: hex digests (no `sha256:` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub manifest_hex: String,
    pub manifest_size: u64,
    pub config_hex: String,
    pub layer_hex: String,
    pub wasm_hex: String,
}

fn descriptor(media_type: MediaType, bytes: &[u8]) -> Result<Descriptor, Error> {
    let d = Sha256Digest::from_str(&sha256_hex(bytes)).map_err(oci_err("digest"))?;
    Ok(Descriptor::new(media_type, bytes.len() as u64, d))
}

fn write_blob(out: &Path, bytes: &[u8]) -> Result<String, Error> {
    let hex = sha256_hex(bytes);
    let dir = out.join("blobs").join("sha256");
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let path = dir.join(&hex);
    std::fs::write(&path, bytes).map_err(io_err(&path))?;
    Ok(hex)
}

fn json(what: &str, v: &impl serde::Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| crate::invalid(what, e.to_string()))
}

/// Builds the layout for `wasm` into `out` (created if missing; an existing `blobs/`, `index.json` and
/// `oci-layout` there are replaced). The result depends only on `wasm` and `tag`.
pub fn build(wasm: &[u8], out: &Path, tag: &str) -> Result<Built, Error> {
    let layer = layer::build(wasm)?;
    let config = ImageConfigurationBuilder::default()
        .architecture(Arch::Wasm)
        .os(Os::Other("wasip1".into()))
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![format!("sha256:{}", layer.diff_id_hex)])
                .build()
                .map_err(oci_err("rootfs"))?,
        )
        .build()
        .map_err(oci_err("image config"))?;
    let config_bytes = json("image config", &config)?;

    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, &config_bytes)?)
        .layers(vec![descriptor(MediaType::ImageLayerGzip, &layer.gzip)?])
        .build()
        .map_err(oci_err("manifest"))?;
    let manifest_bytes = json("manifest", &manifest)?;

    let mut manifest_desc = descriptor(MediaType::ImageManifest, &manifest_bytes)?;
    manifest_desc.set_annotations(Some(HashMap::from([(
        REF_NAME.to_string(),
        tag.to_string(),
    )])));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest_desc])
        .build()
        .map_err(oci_err("index"))?;
    let layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()
        .map_err(oci_err("oci-layout"))?;

    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let blobs = out.join("blobs");
    if blobs.exists() {
        std::fs::remove_dir_all(&blobs).map_err(io_err(&blobs))?;
    }
    let config_hex = write_blob(out, &config_bytes)?;
    let layer_hex = write_blob(out, &layer.gzip)?;
    let manifest_hex = write_blob(out, &manifest_bytes)?;
    for (name, bytes) in [
        ("oci-layout", json("oci-layout", &layout)?),
        ("index.json", json("index", &index)?),
    ] {
        let p = out.join(name);
        std::fs::write(&p, bytes).map_err(io_err(&p))?;
    }
    Ok(Built {
        manifest_hex,
        manifest_size: manifest_bytes.len() as u64,
        config_hex,
        layer_hex,
        wasm_hex: sha256_hex(wasm),
    })
}
