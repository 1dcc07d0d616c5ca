//! `oci-pack`: build or verify the OCI image layout of the dwcp filter module.
//!
//! ```text
//! oci-pack build  --wasm dist/dwcp_filter.wasm --out dist/release/oci --tag 0.1.0
//! oci-pack verify --dir dist/release/oci [--wasm dist/dwcp_filter.wasm]
//! ```
//! Both print `manifest sha256:<hex>` (the value for `WasmPlugin.spec.sha256`, without the prefix) and
//! exit 0; any error exits 1 with a message naming the file or blob; bad usage exits 64.

use dwcp_oci_pack::{layout, sha256_hex, verify};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: oci-pack build --wasm FILE --out DIR [--tag TAG]\n       oci-pack verify --dir DIR [--wasm FILE]";

fn flag(args: &[String], name: &str) -> Option<String> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(64);
    };
    match (cmd.as_str(), run(cmd, &args[1..])) {
        (_, Ok(())) => ExitCode::SUCCESS,
        ("build" | "verify", Err(Some(e))) => {
            eprintln!("oci-pack {cmd}: {e}");
            ExitCode::from(1)
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(64)
        }
    }
}

/// `Err(None)` is a usage error.
fn run(cmd: &str, args: &[String]) -> Result<(), Option<String>> {
    match cmd {
        "build" => {
            let wasm_path = PathBuf::from(flag(args, "--wasm").ok_or(None)?);
            let out = PathBuf::from(flag(args, "--out").ok_or(None)?);
            let tag = flag(args, "--tag").unwrap_or_else(|| "latest".into());
            let wasm = std::fs::read(&wasm_path)
                .map_err(|e| Some(format!("{}: {e}", wasm_path.display())))?;
            let b = layout::build(&wasm, &out, &tag).map_err(|e| Some(e.to_string()))?;
            println!("manifest sha256:{}", b.manifest_hex);
            println!("layer    sha256:{}", b.layer_hex);
            println!("config   sha256:{}", b.config_hex);
            println!("module   sha256:{}", b.wasm_hex);
            Ok(())
        }
        "verify" => {
            let dir = PathBuf::from(flag(args, "--dir").ok_or(None)?);
            let found = verify::verify(&dir).map_err(|e| Some(e.to_string()))?;
            if let Some(p) = flag(args, "--wasm") {
                let want = std::fs::read(&p).map_err(|e| Some(format!("{p}: {e}")))?;
                let want_hex = sha256_hex(&want);
                if let Some(v) = found.iter().find(|v| v.wasm_hex != want_hex) {
                    return Err(Some(format!(
                        "layout module sha256:{} differs from {p} (sha256:{want_hex})",
                        v.wasm_hex
                    )));
                }
            }
            for v in &found {
                println!(
                    "manifest sha256:{} tag {} module sha256:{} ({} bytes): OK",
                    v.manifest_hex,
                    v.tag.as_deref().unwrap_or("-"),
                    v.wasm_hex,
                    v.wasm.len()
                );
            }
            Ok(())
        }
        _ => Err(None),
    }
}
