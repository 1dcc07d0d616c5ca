//! `make fuzz`: runs every target (`dwcp_fuzz::TARGETS`) for its budget of executions from its corpus
//! (`fuzz/corpus/<target>/`), prints the executions and crashes per target, writes crashing inputs
//! to `fuzz/crashes/<target>-<n>`, and exits 1 if any target crashed.
//!
//! `dwcp-fuzz [EXECS_PER_TARGET] [SEED]` (defaults 200 000 and 1); `DWCP_FUZZ_ONLY=name` runs one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn seeds(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
}

/// Valid frames of every codec (built here: binary, so not kept as corpus files).
fn frame_seeds() -> Vec<Vec<u8>> {
    use dwcp_engines::compression::codec::Codec;
    let payload = br#"{"engine":"manager","kind":"breaker_open","at_ms":1}"#.repeat(20);
    [
        Codec::None,
        Codec::Lz4,
        Codec::Snappy,
        Codec::Zstd1,
        Codec::Zstd3,
        Codec::Zstd9,
    ]
    .into_iter()
    .filter_map(|c| dwcp_engines::compression::frame::encode(c, &payload).ok())
    .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let execs: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let seed: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let only = std::env::var("DWCP_FUZZ_ONLY").ok();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Crashes are reported by the runner, not by the panic hook's noise.
    std::panic::set_hook(Box::new(|_| {}));
    let mut crashed = 0;
    for t in &dwcp_fuzz::TARGETS {
        if only.as_deref().is_some_and(|o| o != t.name) {
            continue;
        }
        let mut s = seeds(&root.join("corpus").join(t.name));
        if t.name == "engine_frames" {
            s.extend(frame_seeds());
        }
        let n_seeds = s.len();
        let start = std::time::Instant::now();
        let r = dwcp_fuzz::fuzz(t, s, execs, seed);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{:<18} execs {:>8}  crashes {}  seeds {:>2}  corpus {:>4}  outcomes {:>4}  {:>6.1} s  {:>7.0} exec/s  slowest {} µs",
            t.name,
            r.execs,
            r.crashes.len(),
            n_seeds,
            r.corpus,
            r.outcomes,
            secs,
            r.execs as f64 / secs.max(1e-9),
            r.slowest_us
        );
        if !r.crashes.is_empty() {
            crashed += r.crashes.len();
            let dir = root.join("crashes");
            let _ = std::fs::create_dir_all(&dir);
            for (i, c) in r.crashes.iter().take(20).enumerate() {
                let _ = std::fs::write(dir.join(format!("{}-{i}", t.name)), c);
            }
        }
    }
    if crashed > 0 {
        println!("{crashed} crashing inputs (first ones in fuzz/crashes/)");
        return ExitCode::FAILURE;
    }
    println!("0 crashes");
    ExitCode::SUCCESS
}
