//! `--web.config.file`, in the Prometheus exporter-toolkit format: TLS on the listener (with
//! certificate files reloaded when they change, and client certificates) and basic auth users
//! with bcrypt hashes. Paths in the file are relative to the file's directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use yaml_rust2::Yaml;

/// How often, at most, the certificate files are checked for a change.
const RECHECK: Duration = Duration::from_secs(1);

/// What the web configuration file asks for.
#[derive(Default)]
pub struct WebConfig {
    /// TLS on the listener, when `tls_server_config` gives a certificate.
    pub tls: Option<Arc<ServerConfig>>,
    /// Basic auth: user → bcrypt hash. Empty: no authentication.
    pub users: HashMap<String, String>,
    /// The file it was read from, and its stamp then.
    source: Option<(PathBuf, Option<Stamp>)>,
}

impl WebConfig {
    /// Reads the file again if it changed since it was last read, as exporter-toolkit does
    /// (there, on every connection): `None` when unchanged; else whether the new settings
    /// took over. A file that does not load leaves the current settings in force, and is
    /// not tried again until it changes once more.
    pub fn reload(&mut self) -> Option<Result<(), String>> {
        let (path, stamp) = self.source.as_mut()?;
        let now = self::stamp(path);
        if now == *stamp {
            return None;
        }
        *stamp = now;
        let path = path.clone();
        Some(load(&path).map(|new| *self = new))
    }
}

/// `client_auth_type`, as Go's crypto/tls names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// Reads and checks the file; every error names it (and the setting or file at fault).
pub fn load(path: &Path) -> Result<WebConfig, String> {
    let fail = |why: String| format!("web config {}: {why}", path.display());
    let stamp = stamp(path);
    let doc = crate::kubeconfig::load_yaml(path).map_err(fail)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    check_keys(
        &doc,
        "",
        &[
            "tls_server_config",
            "http_server_config",
            "basic_auth_users",
        ],
    )
    .map_err(fail)?;
    let users = users(&doc["basic_auth_users"]).map_err(fail)?;
    let http = &doc["http_server_config"];
    check_keys(http, "http_server_config.", &["http2", "headers"]).map_err(fail)?;
    if !http.is_badvalue() && !http.is_null() {
        log::warn!(
            "web config {}: http_server_config is ignored (this exporter speaks HTTP/1.1 and sets its own headers)",
            path.display()
        );
    }
    let tls = match &doc["tls_server_config"] {
        Yaml::BadValue | Yaml::Null => None,
        section => Some(tls(section, dir).map_err(fail)?),
    };
    Ok(WebConfig {
        tls,
        users,
        source: Some((path.to_path_buf(), stamp)),
    })
}

/// Refuses keys the format does not have: a typo must not turn security off.
fn check_keys(section: &Yaml, prefix: &str, known: &[&str]) -> Result<(), String> {
    let Some(map) = section.as_hash() else {
        return match section {
            Yaml::BadValue | Yaml::Null => Ok(()),
            _ if prefix.is_empty() => Err("not a mapping".to_string()),
            _ => Err(format!("{} is not a mapping", prefix.trim_end_matches('.'))),
        };
    };
    for key in map.keys() {
        match key.as_str() {
            Some(k) if known.contains(&k) => {}
            _ => return Err(format!("unknown setting {prefix}{}", describe(key))),
        }
    }
    Ok(())
}

fn describe(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        _ => format!("{value:?}"),
    }
}

fn string<'a>(section: &'a Yaml, key: &str) -> Result<Option<&'a str>, String> {
    match &section[key] {
        Yaml::BadValue | Yaml::Null => Ok(None),
        Yaml::String(s) if s.is_empty() => Ok(None),
        Yaml::String(s) => Ok(Some(s)),
        other => Err(format!(
            "tls_server_config.{key}: expected a string, got {}",
            describe(other)
        )),
    }
}

fn users(section: &Yaml) -> Result<HashMap<String, String>, String> {
    let mut users = HashMap::new();
    let Some(map) = section.as_hash() else {
        return match section {
            Yaml::BadValue | Yaml::Null => Ok(users),
            _ => Err("basic_auth_users is not a mapping".to_string()),
        };
    };
    for (user, hash) in map {
        let user = describe(user);
        let Some(hash) = hash.as_str() else {
            return Err(format!("basic_auth_users.{user}: expected a bcrypt hash"));
        };
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(format!("basic_auth_users.{user}: not a bcrypt hash"));
        }
        users.insert(user, hash.to_string());
    }
    Ok(users)
}

/// Where the certificate or key comes from: a file (`file_key`) or inline PEM (`inline_key`).
fn material(
    section: &Yaml,
    dir: &Path,
    file_key: &str,
    inline_key: &str,
) -> Result<Material, String> {
    match (string(section, file_key)?, string(section, inline_key)?) {
        (Some(file), None) => Ok(Material::File(dir.join(file))),
        (None, Some(text)) => Ok(Material::Inline(text.as_bytes().to_vec())),
        (None, None) => Err(format!("tls_server_config: {file_key} is missing")),
        (Some(_), Some(_)) => Err(format!(
            "tls_server_config: {file_key} and {inline_key} are both given"
        )),
    }
}

fn tls(section: &Yaml, dir: &Path) -> Result<Arc<ServerConfig>, String> {
    check_keys(
        section,
        "tls_server_config.",
        &[
            "cert_file",
            "key_file",
            "cert",
            "key",
            "client_auth_type",
            "client_ca_file",
            "client_allowed_sans",
            "min_version",
            "max_version",
            "cipher_suites",
            "curve_preferences",
            "prefer_server_cipher_suites",
        ],
    )?;
    for ignored in [
        "cipher_suites",
        "curve_preferences",
        "prefer_server_cipher_suites",
    ] {
        if !section[ignored].is_badvalue() {
            log::warn!("web config: tls_server_config.{ignored} is ignored: rustls offers only its own modern suites and groups");
        }
    }
    if !section["client_allowed_sans"].is_badvalue() {
        return Err("tls_server_config.client_allowed_sans is not supported".to_string());
    }
    let cert = material(section, dir, "cert_file", "cert")?;
    let key = material(section, dir, "key_file", "key")?;
    let auth = match string(section, "client_auth_type")?.unwrap_or("NoClientCert") {
        "NoClientCert" => ClientAuth::NoClientCert,
        "RequestClientCert" => ClientAuth::RequestClientCert,
        "RequireAnyClientCert" => ClientAuth::RequireAnyClientCert,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: unknown value {other:?} (NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
            ))
        }
    };
    let versions = versions(
        string(section, "min_version")?,
        string(section, "max_version")?,
    )?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let verifying = matches!(
        auth,
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
    );
    let ca_file = string(section, "client_ca_file")?.map(|p| dir.join(p));
    let builder = match (auth, ca_file) {
        (ClientAuth::NoClientCert, None) => builder.with_no_client_auth(),
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err(
                "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert"
                    .to_string(),
            )
        }
        (_, None) if verifying => {
            return Err(format!(
                "tls_server_config: client_auth_type {auth:?} needs client_ca_file"
            ))
        }
        (_, Some(ca)) if verifying => {
            let mut roots = RootCertStore::empty();
            let certs = read_certs(&read(&ca)?).map_err(|e| format!("{}: {e}", ca.display()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let verifier = match auth {
                ClientAuth::VerifyClientCertIfGiven => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("{}: {e}", ca.display()))?,
            )
        }
        _ => builder.with_client_cert_verifier(Arc::new(AnyClientCert {
            mandatory: auth == ClientAuth::RequireAnyClientCert,
            signatures: Signatures(Arc::clone(&provider)),
        })),
    };
    let resolver = Reloading::new(cert, key, provider)?;
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |key: &str, value: Option<&str>, default: u8| match value {
        None => Ok(default),
        Some("TLS12") => Ok(2),
        Some("TLS13") => Ok(3),
        Some(old @ ("TLS10" | "TLS11")) => Err(format!(
            "tls_server_config.{key}: {old} is not offered (TLS12 and TLS13 are)"
        )),
        Some(other) => Err(format!(
            "tls_server_config.{key}: unknown version {other:?} (TLS12 or TLS13)"
        )),
    };
    let (min, max) = (rank("min_version", min, 2)?, rank("max_version", max, 3)?);
    if min > max {
        return Err("tls_server_config: min_version is above max_version".to_string());
    }
    Ok([&rustls::version::TLS12, &rustls::version::TLS13]
        [usize::from(min - 2)..=usize::from(max - 2)]
        .to_vec())
}

/// Where a certificate or key comes from.
enum Material {
    File(PathBuf),
    Inline(Vec<u8>),
}

impl Material {
    /// The bytes, and a stamp that changes when a file changes (inline material never does).
    fn load(&self) -> Result<(Vec<u8>, Option<Stamp>), String> {
        match self {
            Material::File(path) => {
                // Stamped first: a change made while reading shows at the next check.
                let stamp = stamp(path);
                Ok((read(path)?, stamp))
            }
            Material::Inline(text) => Ok((text.clone(), None)),
        }
    }

    fn stamp(&self) -> Option<Stamp> {
        match self {
            Material::File(path) => stamp(path),
            Material::Inline(_) => None,
        }
    }

    fn name(&self) -> String {
        match self {
            Material::File(path) => path.display().to_string(),
            Material::Inline(_) => "inline PEM".to_string(),
        }
    }
}

type Stamp = (u64, u64, SystemTime);
/// The stamps of the certificate and the key.
type Stamps = (Option<Stamp>, Option<Stamp>);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.ino(), meta.len(), meta.modified().ok()?))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    crate::files::read_limited(path).map_err(|e| format!("read {}: {e}", path.display()))
}

fn read_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate".to_string());
    }
    Ok(certs)
}

/// The server certificate, read again when its files change (checked at most once a
/// [`RECHECK`], at a handshake). A change that does not load keeps the previous pair.
#[derive(Debug)]
struct Reloading {
    cert: Material,
    key: Material,
    provider: Arc<CryptoProvider>,
    current: Mutex<Current>,
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    stamps: Stamps,
    checked: Instant,
}

/// Names the material; never prints key bytes.
impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl Reloading {
    fn new(cert: Material, key: Material, provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let (pair, stamps) = load_pair(&cert, &key, &provider)?;
        Ok(Self {
            cert,
            key,
            provider,
            current: Mutex::new(Current {
                key: pair,
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    fn key(&self) -> Arc<CertifiedKey> {
        let mut current = super::lock(&self.current);
        if current.checked.elapsed() >= RECHECK {
            current.checked = Instant::now();
            let stamps = (self.cert.stamp(), self.key.stamp());
            if stamps != current.stamps {
                match load_pair(&self.cert, &self.key, &self.provider) {
                    Ok((key, stamps)) => {
                        log::info!("TLS certificate {} reloaded", self.cert.name());
                        current.key = key;
                        current.stamps = stamps;
                    }
                    Err(e) => {
                        log::warn!("TLS certificate not reloaded, keeping the previous one: {e}");
                        current.stamps = stamps;
                    }
                }
            }
        }
        Arc::clone(&current.key)
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }
}

/// The certificate chain and its private key, checked to match, with the files' stamps.
fn load_pair(
    cert: &Material,
    key: &Material,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, Stamps), String> {
    let (cert_pem, cert_stamp) = cert.load()?;
    let (key_pem, key_stamp) = key.load()?;
    let certs = read_certs(&cert_pem).map_err(|e| format!("{}: {e}", cert.name()))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{}: not a PEM private key: {e}", key.name()))?;
    let pair = CertifiedKey::from_der(certs, private, provider)
        .map_err(|e| format!("{} and {}: {e}", cert.name(), key.name()))?;
    Ok((Arc::new(pair), (cert_stamp, key_stamp)))
}

/// `RequestClientCert` and `RequireAnyClientCert`: a client certificate is asked for (and,
/// for the second, required) and its handshake signature checked, but its chain is not.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    signatures: Signatures,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.signatures.schemes()
    }
}

/// Handshake signatures checked with a provider's algorithms: the part of certificate
/// verification kept by the verifiers that take any certificate (here, and the healthcheck's).
#[derive(Debug)]
pub struct Signatures(pub Arc<CryptoProvider>);

impl Signatures {
    /// A TLS 1.2 handshake signature.
    pub fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    /// A TLS 1.3 handshake signature.
    pub fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    /// The signature schemes offered.
    pub fn schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
