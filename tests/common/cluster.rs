//! A real kube-apiserver and etcd for the tests (../shared/tools/kube-apiserver.sh): one per
//! test binary, stopped by a watchdog when the binary exits; admin calls to set up objects;
//! and, for fault tests, the API server stopped and started again, etcd compacted, and the
//! server's count of list requests.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/tools/kube-apiserver.sh"
);

/// The running API server: its `env` file (URL, CA, tokens, kubeconfigs).
pub struct Cluster {
    env: HashMap<String, String>,
    pub agent: ureq::Agent,
}

/// One API server for the whole test binary: the one named by `X509_TEST_KUBE_ENV` (an
/// `env` file written by `kube-apiserver.sh up`), or one started here and stopped by a
/// watchdog when this process exits.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| match std::env::var("X509_TEST_KUBE_ENV") {
        Ok(path) => Cluster::load(std::path::Path::new(&path)),
        Err(_) => Cluster::up(&private_dir()),
    })
}

/// An API server of this test binary's own, never shared: for tests that stop it.
pub fn own_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::up(&private_dir()))
}

fn private_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "x509e-kas-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

impl Cluster {
    /// Creates the namespace `name` unless it exists.
    pub fn ensure_namespace(&self, name: &str) {
        let exists = self
            .agent
            .get(format!("{}/api/v1/namespaces/{name}", self.var("KUBE_URL")))
            .header(
                "Authorization",
                format!("Bearer {}", self.var("ADMIN_TOKEN")),
            )
            .call()
            .unwrap()
            .status()
            == 200;
        if !exists {
            self.call(
                "POST",
                "/api/v1/namespaces",
                Some(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name}})),
            );
        }
    }

    /// Applies `rendered` (documents `kubectl kustomize` wrote) with a server-side dry run,
    /// in `namespaces` (created first), but for the Prometheus Operator's kinds, whose CRDs
    /// a bare API server lacks: every object must pass. Gives the kinds applied.
    pub fn dry_run(&self, rendered: &str, namespaces: &[&str]) -> Vec<String> {
        for ns in namespaces {
            self.ensure_namespace(ns);
        }
        let core: Vec<&str> = rendered
            .split("\n---\n")
            .filter(|doc| !doc.contains("apiVersion: monitoring.coreos.com/"))
            .collect();
        let dir = TempDir::new("dry-run");
        let file = dir.write("rendered.yaml", core.join("\n---\n"));
        let out = Command::new(kubectl())
            .args(["apply", "--dry-run=server", "--kubeconfig"])
            .arg(self.var("KUBECONFIG_ADMIN"))
            .arg("-f")
            .arg(&file)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert_eq!(
            text.matches("(server dry run)").count(),
            core.len(),
            "{text}"
        );
        core.iter()
            .filter_map(|d| d.lines().find_map(|l| l.strip_prefix("kind: ")))
            .map(str::to_string)
            .collect()
    }

    /// Starts etcd and an API server with their state in `dir`; a watchdog stops them and
    /// removes `dir` when this process exits.
    pub fn up(dir: &std::path::Path) -> Self {
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("up")
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kube-apiserver.sh up failed (run `{SCRIPT} build` once): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; bash {SCRIPT} down {dir} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = dir.display()
        );
        // `setsid -f` forks the watchdog into its own session and returns at once.
        Command::new("setsid")
            .args(["-f", "sh", "-c", &watchdog])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        Self::load(&dir.join("env"))
    }

    /// Stops the API server and etcd now.
    pub fn down(&self) {
        let _ = Command::new("bash")
            .arg(SCRIPT)
            .arg("down")
            .arg(self.var("KAS_DIR"))
            .output();
    }

    /// The cluster described by an `env` file of `kube-apiserver.sh up`.
    fn load(env_file: &std::path::Path) -> Self {
        let text = std::fs::read_to_string(env_file).unwrap();
        let env: HashMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ca = std::fs::read(&env["KUBE_CA"]).unwrap();
        let roots: Vec<_> = ureq::tls::parse_pem(&ca)
            .filter_map(|i| match i.unwrap() {
                ureq::tls::PemItem::Certificate(c) => Some(c),
                _ => None,
            })
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .new_agent();
        Cluster { env, agent }
    }

    /// Sends the API server `signal` (etcd keeps running), waits until it is gone and
    /// returns its command line, for [`Cluster::start_apiserver`], and when the signal
    /// was sent.
    pub fn stop_apiserver(&self, signal: &str) -> (Vec<String>, Instant) {
        let dir = PathBuf::from(self.var("KAS_DIR"));
        let pid = std::fs::read_to_string(dir.join("kube-apiserver.pid"))
            .unwrap()
            .trim()
            .to_string();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let argv: Vec<String> = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).to_string())
            .collect();
        Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        let sent = Instant::now();
        // A zombie waiting for whoever adopted it to reap it is gone too.
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        (argv, sent)
    }

    /// Starts the API server stopped by [`Cluster::stop_apiserver`] again and waits until
    /// it is ready.
    pub fn start_apiserver(&self, argv: &[String]) {
        let dir = PathBuf::from(self.var("KAS_DIR"));
        let pid_file = dir.join("kube-apiserver.pid");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("kube-apiserver.log"))
            .unwrap();
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        // The watchdog stops the new process by this file.
        std::fs::write(&pid_file, child.id().to_string()).unwrap();
        std::thread::spawn(move || child.wait());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self
                .agent
                .get(format!("{}/readyz", self.var("KUBE_URL")))
                .header(
                    "Authorization",
                    format!("Bearer {}", self.var("ADMIN_TOKEN")),
                )
                .call()
                .map(|r| r.status().as_u16() == 200)
                .unwrap_or(false);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver did not come back"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Compacts etcd at its current revision: older continue tokens now get 410 Expired.
    pub fn compact(&self) {
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("compact")
            .arg(self.var("KAS_DIR"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "compact: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    /// How many LIST requests of `resource` this API server process has answered (its
    /// `apiserver_request_total` counter, every code and scope), to count the pages of a
    /// list. Only sound where nothing else lists `resource` meanwhile (tests/kube_flaky.rs,
    /// whose server is its own and whose tests take turns).
    pub fn list_requests(&self, resource: &str) -> u64 {
        self.requests(resource, "LIST")
    }

    /// How many requests of `verb` (`LIST`, `WATCH`) on `resource` this API server process
    /// has counted (`apiserver_request_total`, every code and scope; a watch is counted
    /// when it ends).
    pub fn requests(&self, resource: &str, verb: &str) -> u64 {
        let text = self
            .agent
            .get(format!("{}/metrics", self.var("KUBE_URL")))
            .header(
                "Authorization",
                format!("Bearer {}", self.var("ADMIN_TOKEN")),
            )
            .call()
            .unwrap()
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        let wanted = format!("resource=\"{resource}\"");
        let verb = format!("verb=\"{verb}\"");
        text.lines()
            .filter(|l| {
                l.starts_with("apiserver_request_total{")
                    && l.contains(&wanted)
                    && l.contains(&verb)
            })
            .map(|l| {
                let value = l.rsplit(' ').next().unwrap();
                value.parse::<f64>().unwrap() as u64
            })
            .sum()
    }

    pub fn var(&self, key: &str) -> &str {
        &self.env[key]
    }

    /// An admin API call; panics unless the status is 2xx.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let url = format!("{}{path}", self.var("KUBE_URL"));
        let auth = format!("Bearer {}", self.var("ADMIN_TOKEN"));
        let mut response = match (method, body) {
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .call(),
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            (m, Some(b)) => {
                let request = match m {
                    "POST" => self.agent.post(&url),
                    _ => self.agent.put(&url),
                };
                request
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .send(b.to_string())
            }
            _ => unreachable!(),
        }
        .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// A new namespace with these labels.
    pub fn namespace(&self, prefix: &str, labels: serde_json::Value) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        self.call(
            "POST",
            "/api/v1/namespaces",
            Some(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": labels}})),
        );
        name
    }

    pub fn secret(
        &self,
        ns: &str,
        name: &str,
        kind: &str,
        data: &[(&str, &str)],
        labels: serde_json::Value,
    ) {
        let data: Vec<(&str, &[u8])> = data.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        self.secret_bytes(ns, name, kind, &data, labels);
    }

    /// A Secret whose values are any bytes (keystores).
    pub fn secret_bytes(
        &self,
        ns: &str,
        name: &str,
        kind: &str,
        data: &[(&str, &[u8])],
        labels: serde_json::Value,
    ) {
        let data: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .map(|(k, v)| (k.to_string(), b64(v).into()))
            .collect();
        self.call(
            "POST",
            &format!("/api/v1/namespaces/{ns}/secrets"),
            Some(
                serde_json::json!({"apiVersion": "v1", "kind": "Secret", "type": kind,
                "metadata": {"name": name, "labels": labels}, "data": data}),
            ),
        );
    }

    pub fn tls_secret(&self, ns: &str, name: &str, cn: &str) {
        let now = now();
        self.secret(
            ns,
            name,
            "kubernetes.io/tls",
            &[("tls.crt", &pem(cn, now, now + 86_400)), ("tls.key", "KEY")],
            serde_json::json!({}),
        );
    }
}
