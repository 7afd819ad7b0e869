//! Where the API server is and how to authenticate: `--kubeconfig`, `$KUBECONFIG`, the
//! in-cluster service account, `~/.kube/config`. Problems here are configuration errors
//! (exit 2) naming the file.

use std::path::{Path, PathBuf};

use yaml_rust2::Yaml;

use crate::fsio::read_capped;
use crate::pem;

/// The service account directory mounted into every pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How requests authenticate, besides a client certificate.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// No bearer token.
    None,
    /// A fixed bearer token.
    Token(String),
    /// A bearer token read from this file before each request (bound tokens rotate).
    TokenFile(PathBuf),
    /// An exec credential plugin.
    Exec(ExecConfig),
}

/// `users[].user.exec` of a kubeconfig.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecConfig {
    /// Program to run.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// `client.authentication.k8s.io/v1` or `v1beta1`.
    pub api_version: String,
    /// Directory the command path is relative to (the kubeconfig's).
    pub dir: PathBuf,
}

/// Everything needed to reach one API server.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Where the configuration came from, for messages.
    pub origin: String,
    /// Base URL, without a trailing slash.
    pub server: String,
    /// CA certificates (DER) to trust; empty means the built-in web roots.
    pub ca: Vec<Vec<u8>>,
    /// Client certificate chain (PEM) and key (PEM).
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
    /// `insecure-skip-tls-verify`.
    pub insecure: bool,
    /// `proxy-url`; without it the environment's proxy settings apply (see [`super::proxy`]).
    pub proxy: Option<String>,
    /// `tls-server-name`: the name the server certificate is checked against and sent as
    /// SNI, in place of the URL's host.
    pub tls_server_name: Option<String>,
    /// Bearer token source.
    pub auth: Auth,
}

/// Finds the configuration: `--kubeconfig`, else the first `$KUBECONFIG` entry, else the
/// in-cluster service account, else `~/.kube/config`.
pub fn load(kubeconfig_flag: Option<&str>) -> Result<ClusterConfig, String> {
    if let Some(path) = kubeconfig_flag {
        return from_kubeconfig(Path::new(path)).map_err(|e| format!("--kubeconfig: {e}"));
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let first = std::env::split_paths(&list).next().unwrap_or_default();
        return from_kubeconfig(&first).map_err(|e| format!("$KUBECONFIG: {e}"));
    }
    if let (Ok(host), Ok(port)) = (
        std::env::var("KUBERNETES_SERVICE_HOST"),
        std::env::var("KUBERNETES_SERVICE_PORT"),
    ) {
        return in_cluster(&host, &port, Path::new(SERVICE_ACCOUNT_DIR));
    }
    match std::env::var_os("HOME") {
        Some(home) => {
            let path = Path::new(&home).join(".kube/config");
            from_kubeconfig(&path)
        }
        None => Err(
            "no Kubernetes configuration: give --kubeconfig, set $KUBECONFIG, or run in a pod"
                .to_string(),
        ),
    }
}

/// The in-cluster configuration from the service account files.
pub fn in_cluster(host: &str, port: &str, dir: &Path) -> Result<ClusterConfig, String> {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let token = dir.join("token");
    if let Err(e) = std::fs::metadata(&token) {
        return Err(format!(
            "in-cluster service account token {}: {}",
            token.display(),
            crate::fsio::why(&e)
        ));
    }
    let ca_path = dir.join("ca.crt");
    let ca = read_capped(&ca_path).map_err(|e| format!("in-cluster CA: {e}"))?;
    Ok(ClusterConfig {
        origin: format!("in-cluster service account ({})", dir.display()),
        server: format!("https://{host}:{port}"),
        ca: ders(&ca).map_err(|e| format!("in-cluster CA {}: {e}", ca_path.display()))?,
        client_cert: None,
        insecure: false,
        proxy: None,
        tls_server_name: None,
        auth: Auth::TokenFile(token),
    })
}

/// Reads a kubeconfig's current context. Errors read "kubeconfig PATH: why".
pub fn from_kubeconfig(path: &Path) -> Result<ClusterConfig, String> {
    current_context(path).map_err(|e| format!("kubeconfig {}: {e}", path.display()))
}

fn current_context(path: &Path) -> Result<ClusterConfig, String> {
    let doc = crate::fsio::load_yaml(path)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let named = |list: &str, name: &str| -> Result<Yaml, String> {
        doc[list]
            .as_vec()
            .and_then(|v| v.iter().find(|e| e["name"].as_str() == Some(name)))
            .cloned()
            .ok_or_else(|| format!("no entry {name:?} in {list}"))
    };
    let context_name = match doc["current-context"].as_str().filter(|s| !s.is_empty()) {
        Some(name) => name.to_string(),
        None => match doc["contexts"].as_vec().map(Vec::as_slice) {
            Some([only]) => only["name"].as_str().unwrap_or_default().to_string(),
            _ => return Err("no current-context".to_string()),
        },
    };
    let context = named("contexts", &context_name)?;
    let context = &context["context"];
    let cluster_name = context["cluster"]
        .as_str()
        .ok_or("the current context names no cluster")?;
    let cluster = named("clusters", cluster_name)?;
    let cluster = &cluster["cluster"];
    let server = cluster["server"]
        .as_str()
        .ok_or_else(|| format!("cluster {cluster_name:?} has no server"))?;
    let insecure = cluster["insecure-skip-tls-verify"]
        .as_bool()
        .unwrap_or(false);
    let has_ca = ["certificate-authority-data", "certificate-authority"]
        .iter()
        .any(|key| cluster[*key].as_str().is_some_and(|v| !v.is_empty()));
    if insecure && has_ca {
        // As client-go: a CA that would not be checked is a mistake, not a choice.
        return Err(format!(
            "cluster {cluster_name:?}: insecure-skip-tls-verify with a certificate-authority: specifying a root certificates file with the insecure flag is not allowed"
        ));
    }
    let tls_server_name = match cluster["tls-server-name"].as_str() {
        None | Some("") => None,
        Some(name) => {
            rustls_pki_types::ServerName::try_from(name)
                .map_err(|e| format!("cluster {cluster_name:?}: tls-server-name {name:?}: {e}"))?;
            Some(name.to_string())
        }
    };
    let ca = match (
        cluster["certificate-authority-data"].as_str(),
        cluster["certificate-authority"].as_str(),
    ) {
        (Some(data), _) => ders(
            &pem::decode_base64(data.as_bytes())
                .map_err(|e| format!("certificate-authority-data: {e}"))?,
        )
        .map_err(|e| format!("certificate-authority-data: {e}"))?,
        (None, Some(file)) => ders(&read_capped(&dir.join(file))?)
            .map_err(|e| format!("certificate-authority {file}: {e}"))?,
        (None, None) => Vec::new(),
    };
    let user = match context["user"].as_str() {
        Some(name) => named("users", name)?["user"].clone(),
        None => Yaml::Null,
    };
    let material = |data_key: &str, file_key: &str| -> Result<Option<Vec<u8>>, String> {
        match (user[data_key].as_str(), user[file_key].as_str()) {
            (Some(data), _) => pem::decode_base64(data.as_bytes())
                .map(Some)
                .map_err(|e| format!("{data_key}: {e}")),
            (None, Some(file)) => read_capped(&dir.join(file)).map(Some),
            (None, None) => Ok(None),
        }
    };
    let client_cert = match (
        material("client-certificate-data", "client-certificate")?,
        material("client-key-data", "client-key")?,
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err("a client certificate needs both certificate and key".to_string()),
    };
    let auth = if let Some(token) = user["token"].as_str().filter(|t| !t.is_empty()) {
        Auth::Token(token.to_string())
    } else if let Some(file) = user["tokenFile"].as_str() {
        Auth::TokenFile(dir.join(file))
    } else if user["exec"].as_hash().is_some() {
        let exec = &user["exec"];
        Auth::Exec(ExecConfig {
            command: exec["command"]
                .as_str()
                .ok_or("exec has no command")?
                .to_string(),
            args: exec["args"]
                .as_vec()
                .map(|v| {
                    v.iter()
                        .filter_map(|a| a.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            env: exec["env"]
                .as_vec()
                .map(|v| {
                    v.iter()
                        .filter_map(|e| {
                            Some((
                                e["name"].as_str()?.to_string(),
                                e["value"].as_str()?.to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            api_version: exec["apiVersion"]
                .as_str()
                .unwrap_or("client.authentication.k8s.io/v1")
                .to_string(),
            dir: dir.clone(),
        })
    } else {
        Auth::None
    };
    Ok(ClusterConfig {
        origin: path.display().to_string(),
        server: server.trim_end_matches('/').to_string(),
        ca,
        client_cert,
        insecure,
        proxy: cluster["proxy-url"].as_str().map(str::to_string),
        tls_server_name,
        auth,
    })
}

/// Every certificate of a PEM bundle (or one DER certificate), as DER.
fn ders(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(data) {
        if let Ok(ureq::tls::PemItem::Certificate(cert)) = item {
            out.push(cert.der().to_vec());
        }
    }
    if out.is_empty() {
        if pem::cert_info(data, false).is_ok() {
            out.push(data.to_vec());
        } else {
            return Err("no certificate found".to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_context_and_relative_files() {
        let dir = std::env::temp_dir().join(format!("kcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
        std::fs::write(dir.join("token"), "tok").unwrap();
        let path = dir.join("config");
        std::fs::write(
            &path,
            "current-context: b\ncontexts:\n- name: a\n  context: {cluster: one, user: u1}\n- name: b\n  context: {cluster: two, user: u2}\nclusters:\n- name: one\n  cluster: {server: 'https://one'}\n- name: two\n  cluster: {server: 'https://two:6443/', certificate-authority: ca.pem, proxy-url: 'http://proxy:3128'}\nusers:\n- name: u1\n  user: {token: x}\n- name: u2\n  user: {tokenFile: token}\n",
        )
        .unwrap();
        let config = from_kubeconfig(&path).unwrap();
        assert_eq!(config.server, "https://two:6443");
        assert_eq!(config.ca.len(), 1);
        assert_eq!(config.auth, Auth::TokenFile(dir.join("token")));
        assert_eq!(config.proxy.as_deref(), Some("http://proxy:3128"));
        std::fs::write(&path, "current-context: nope\ncontexts: []\n").unwrap();
        assert!(from_kubeconfig(&path).unwrap_err().contains("nope"));
        std::fs::write(&path, "{ not yaml").unwrap();
        assert!(from_kubeconfig(&path).is_err());
        assert!(from_kubeconfig(&dir.join("missing"))
            .unwrap_err()
            .contains("no such file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn insecure_with_a_ca_is_refused_and_tls_server_name_is_read() {
        let dir = std::env::temp_dir().join(format!("kcfg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config");
        let write = |cluster: &str| {
            std::fs::write(
                &path,
                format!("current-context: c\ncontexts:\n- name: c\n  context: {{cluster: k}}\nclusters:\n- name: k\n  cluster: {{server: 'https://127.0.0.1:6443', {cluster}}}\n"),
            )
            .unwrap();
        };
        for ca in [
            "certificate-authority: ca.pem",
            "certificate-authority-data: AAAA",
        ] {
            write(&format!("insecure-skip-tls-verify: true, {ca}"));
            let err = from_kubeconfig(&path).unwrap_err();
            assert_eq!(
                err,
                format!("kubeconfig {}: cluster \"k\": insecure-skip-tls-verify with a certificate-authority: specifying a root certificates file with the insecure flag is not allowed", path.display())
            );
        }
        write("insecure-skip-tls-verify: true");
        assert!(from_kubeconfig(&path).unwrap().insecure);
        write("tls-server-name: kubernetes.test");
        let config = from_kubeconfig(&path).unwrap();
        assert_eq!(config.tls_server_name.as_deref(), Some("kubernetes.test"));
        write("tls-server-name: 'not a name!'");
        assert!(from_kubeconfig(&path)
            .unwrap_err()
            .contains("tls-server-name \"not a name!\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn in_cluster_needs_the_service_account_files() {
        let dir = std::env::temp_dir().join(format!("sa-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(in_cluster("10.0.0.1", "443", &dir)
            .unwrap_err()
            .contains("token"));
        std::fs::write(dir.join("token"), "t").unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
        std::fs::write(dir.join("ca.crt"), ca.cert.pem()).unwrap();
        let config = in_cluster("fd00::1", "443", &dir).unwrap();
        assert_eq!(config.server, "https://[fd00::1]:443");
        assert_eq!(config.auth, Auth::TokenFile(dir.join("token")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
