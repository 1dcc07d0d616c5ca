//! Packs a proxy-wasm module as an OCI image layout that Istio's `WasmPlugin` can pull (`oci://…`), and
//! verifies such layouts.
//!
//! Format: the **compat variant** of the Wasm image spec (solo-io/wasm `spec-compat.md`), which Istio's
//! image fetcher (`pkg/wasm/imagefetcher.go`) tries first for OCI manifests: exactly one layer of media
//! type `application/vnd.oci.image.layer.v1.tar+gzip` whose tar holds a file named `plugin.wasm`. Unlike
//! the *oci* variant (custom `application/vnd.module.wasm.*` media types, which Istio only accepts with
//! exactly two layers), the compat variant is accepted by every registry and by docker/skopeo/crane/oras.
//!
//! Reproducibility invariant: the layout is a pure function of (module bytes, tag). The tar entry has
//! fixed metadata (mtime 0, uid/gid 0, mode 0644, no user names), the gzip header has mtime 0 and no file
//! name, the config has no `created` time, and JSON is written by `serde_json` in declaration order. So
//! the same module always yields the same manifest digest — the digest that goes into
//! `WasmPlugin.spec.sha256` (for `oci://` URLs Istio compares it with the *manifest* digest).

pub mod layer;
pub mod layout;
pub mod verify;

/// Errors of building or verifying a layout. Each names the file or blob it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Oci { what: String, message: String },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(crate) fn oci_err(what: &str) -> impl FnOnce(oci_spec::OciSpecError) -> Error + '_ {
    move |e| Error::Oci {
        what: what.to_string(),
        message: e.to_string(),
    }
}

pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Invalid {
        what: what.into(),
        message: message.into(),
    }
}

/// `sha256` of bytes as 64 lowercase hex characters.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The name Istio looks for inside the layer.
pub const PLUGIN_FILE: &str = "plugin.wasm";
/// The `\0asm` magic and version 1 that start every WebAssembly binary module.
pub const WASM_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

#[cfg(test)]
mod tests;
