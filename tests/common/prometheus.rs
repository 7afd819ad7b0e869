//! A real Prometheus (Debian's package) on 127.0.0.1, with its own configuration and
//! storage in a temporary directory, and PromQL queries against it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{request, TempDir};

/// A running Prometheus, killed when dropped.
pub struct Prometheus {
    child: Child,
    /// Where it listens.
    pub addr: String,
    _dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Scrapes `target` every second.
    pub fn start(target: &str) -> Self {
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: x509-exporter\n    static_configs:\n      - targets: ['{target}']\n"
        );
        Self::with_config(&config, &[])
    }

    /// Runs with this prometheus.yml; `files` are written beside it first.
    pub fn with_config(config: &str, files: &[(&str, &str)]) -> Self {
        let dir = TempDir::new("prometheus");
        for (name, text) in files {
            dir.write(name, text);
        }
        let config_path = dir.write("prometheus.yml", config.replace("$DIR", &dir.str("")));
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.str("data")))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus) is needed by the tests");
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    /// Runs a PromQL query: the result's vector, or `None` while Prometheus does not
    /// answer.
    pub fn query(&self, promql: &str) -> Option<Vec<serde_json::Value>> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let addr = self.addr.parse().ok()?;
        let stream =
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        drop(stream);
        let response = request(addr, "GET", &format!("/api/v1/query?query={encoded}"), &[]);
        if response.status != 200 {
            return None;
        }
        let json: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
        Some(json["data"]["result"].as_array()?.clone())
    }

    /// Polls a query until `check` accepts its result.
    pub fn query_until(
        &self,
        promql: &str,
        check: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(result) = self.query(promql) {
                if check(&result) {
                    return result;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out on {promql}: {:?}",
                self.query(promql)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Runs `promtool COMMAND SUBCOMMAND PATH` (`check rules`, `test rules`); panics with its
/// report unless it succeeds.
pub fn promtool(command: &str, subcommand: &str, path: &Path) {
    let out = Command::new("promtool")
        .args([command, subcommand])
        .arg(path)
        .output()
        .expect("promtool (Debian package prometheus) is needed by the tests");
    assert!(
        out.status.success(),
        "promtool {command} {subcommand} {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shipped rules, with `for:` cut to zero so that alerts fire at once.
pub fn rules_firing_at_once() -> String {
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/prometheus/x509-certificate-exporter.rules.yml"
    ))
    .unwrap();
    rules
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 0s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
