//! `--web.config.file`, in the Prometheus exporter-toolkit format: TLS on the listener (with
//! client certificates) and basic auth users with bcrypt hashes. Paths in the file are
//! relative to the file's directory. The file and every file it names are watched through
//! one mechanism, [`WebConfig::reload`]: a change to any of them loads the whole config anew.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use yaml_rust2::Yaml;

/// What the web configuration file asks for.
#[derive(Default)]
pub struct WebConfig {
    /// TLS on the listener, when `tls_server_config` sets any TLS setting.
    pub tls: Option<Arc<ServerConfig>>,
    /// Basic auth: user → bcrypt hash. Empty: no authentication.
    pub users: HashMap<String, String>,
    /// Whether a TLS client must present a certificate (`RequireAnyClientCert`,
    /// `RequireAndVerifyClientCert`).
    pub client_cert_required: bool,
    /// The config file, then every file it names, each with its stamp when it was read.
    watched: Vec<(PathBuf, Option<Stamp>)>,
}

impl WebConfig {
    /// Loads the config again when the file or any file it names (certificate, key, client
    /// CA) has changed since it was read, as exporter-toolkit re-reads them: `None` when
    /// nothing changed; else whether the new settings took over. Settings that do not load,
    /// or that [`WebConfig::refusal`] refuses, leave the current ones in force; they are not
    /// tried again until a file changes once more.
    pub fn reload(&mut self) -> Option<Result<(), String>> {
        let (path, _) = self.watched.first()?;
        let path = path.clone();
        let mut changed = false;
        for (file, stamp) in &mut self.watched {
            let now = self::stamp(file);
            changed |= now != *stamp;
            *stamp = now;
        }
        if !changed {
            return None;
        }
        let mut watched = Vec::new();
        let new = match read_config(&path, &mut watched) {
            Ok(new) => new,
            Err(e) => {
                // Files the new version names are watched too: the one it waits for may
                // be written next.
                for (file, stamp) in watched {
                    if !self.watched.iter().any(|(known, _)| *known == file) {
                        self.watched.push((file, stamp));
                    }
                }
                return Some(Err(e));
            }
        };
        if let Some(why) = self.refusal(&new) {
            return Some(Err(format!(
                "web config {}: {why}; restart the exporter to change it",
                path.display()
            )));
        }
        *self = WebConfig { watched, ..new };
        Some(Ok(()))
    }

    /// Why settings loaded anew may not replace these, if they may not. Whether the port
    /// speaks TLS is fixed at start, as in exporter-toolkit; and a reload never turns basic
    /// auth or a required client certificate off, so that a file caught half-written (a
    /// valid YAML prefix that lost `basic_auth_users`) cannot leave the port open.
    fn refusal(&self, new: &WebConfig) -> Option<&'static str> {
        let (tls, auth) = (self.tls.is_some(), !self.users.is_empty());
        [
            (
                tls && new.tls.is_none(),
                "would turn TLS off, which is on since start",
            ),
            (
                !tls && new.tls.is_some(),
                "would turn TLS on, which is off since start",
            ),
            (
                auth && new.users.is_empty(),
                "would turn basic auth off (no basic_auth_users left)",
            ),
            (
                self.client_cert_required && !new.client_cert_required,
                "would stop requiring client certificates",
            ),
        ]
        .into_iter()
        .find_map(|(refused, why)| refused.then_some(why))
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
    let mut watched = Vec::new();
    let config = read_config(path, &mut watched)?;
    Ok(WebConfig { watched, ..config })
}

/// The settings of the file, watching nothing yet: the files read on the way, the config
/// first, are added to `watched` with their stamps, whether they load or not.
fn read_config(
    path: &Path,
    watched: &mut Vec<(PathBuf, Option<Stamp>)>,
) -> Result<WebConfig, String> {
    let fail = |why: String| format!("web config {}: {why}", path.display());
    watched.push((path.to_path_buf(), stamp(path)));
    let doc = crate::fsio::load_yaml(path).map_err(fail)?;
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
    let section = &doc["tls_server_config"];
    let known = [TLS_SWITCHES, TLS_OTHERS].concat();
    check_keys(section, "tls_server_config.", &known).map_err(fail)?;
    // As exporter-toolkit: TLS is on when any of these is set; `tls_server_config: {}`, or
    // one with only versions or suites, leaves it off.
    let mut enabled = false;
    for key in TLS_SWITCHES {
        enabled |= string(section, key).map_err(fail)?.is_some();
    }
    let (tls, client_cert_required) = match enabled {
        true => {
            let (config, required) = tls(section, dir, watched).map_err(fail)?;
            (Some(config), required)
        }
        false => (None, false),
    };
    Ok(WebConfig {
        tls,
        users,
        client_cert_required,
        watched: Vec::new(),
    })
}

/// The settings of `tls_server_config` any of which turns TLS on.
const TLS_SWITCHES: &[&str] = &[
    "cert_file",
    "key_file",
    "cert",
    "key",
    "client_auth_type",
    "client_ca_file",
    "client_ca",
];

/// Its other settings.
const TLS_OTHERS: &[&str] = &[
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
];

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

/// Where the certificate, key or client CA comes from: a file (`file_key`) or inline PEM
/// (`inline_key`); None when neither is given.
fn material(
    section: &Yaml,
    dir: &Path,
    file_key: &str,
    inline_key: &str,
) -> Result<Option<Material>, String> {
    match (string(section, file_key)?, string(section, inline_key)?) {
        (Some(file), None) => Ok(Some(Material::File(dir.join(file)))),
        (None, Some(text)) => Ok(Some(Material::Inline(text.as_bytes().to_vec()))),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(format!(
            "tls_server_config: {file_key} and {inline_key} are both given"
        )),
    }
}

/// The TLS settings, and whether a client certificate is required; the files they name
/// are added to `watched` with their stamps.
fn tls(
    section: &Yaml,
    dir: &Path,
    watched: &mut Vec<(PathBuf, Option<Stamp>)>,
) -> Result<(Arc<ServerConfig>, bool), String> {
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
    let missing = |what: &str| format!("tls_server_config: {what}_file (or {what}) is missing");
    let cert = material(section, dir, "cert_file", "cert")?.ok_or_else(|| missing("cert"))?;
    let key = material(section, dir, "key_file", "key")?.ok_or_else(|| missing("key"))?;
    let auth = match string(section, "client_auth_type")?.unwrap_or("NoClientCert") {
        "NoClientCert" => ClientAuth::NoClientCert,
        "RequestClientCert" => ClientAuth::RequestClientCert,
        // "RequireClientCert" is exporter-toolkit's older name for it.
        "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
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
    let client_ca = material(section, dir, "client_ca_file", "client_ca")?;
    let builder = match (auth, client_ca) {
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
            let pem = ca.load(watched)?;
            let certs = read_certs(&pem).map_err(|e| format!("{}: {e}", ca.name()))?;
            for cert in certs {
                roots.add(cert).map_err(|e| format!("{}: {e}", ca.name()))?;
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
                    .map_err(|e| format!("{}: {e}", ca.name()))?,
            )
        }
        _ => builder.with_client_cert_verifier(Arc::new(AnyClientCert {
            mandatory: auth == ClientAuth::RequireAnyClientCert,
            signatures: Signatures(Arc::clone(&provider)),
        })),
    };
    let pair = load_pair(&cert, &key, &provider, watched)?;
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(pair)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let required = matches!(
        auth,
        ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
    );
    Ok((Arc::new(config), required))
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

/// Where a certificate, key or CA comes from.
enum Material {
    File(PathBuf),
    Inline(Vec<u8>),
}

impl Material {
    /// The bytes; a file is added to `watched`, stamped before it is read so that a change
    /// made while reading shows at the next check.
    fn load(&self, watched: &mut Vec<(PathBuf, Option<Stamp>)>) -> Result<Vec<u8>, String> {
        match self {
            Material::File(path) => {
                watched.push((path.clone(), stamp(path)));
                read(path)
            }
            Material::Inline(text) => Ok(text.clone()),
        }
    }

    fn name(&self) -> String {
        match self {
            Material::File(path) => path.display().to_string(),
            Material::Inline(_) => "inline PEM".to_string(),
        }
    }
}

/// What tells a file's content changed: device, inode, size, and change and modification
/// times (a Secret volume's update swaps a symlink, which changes the inode followed).
type Stamp = (u64, u64, u64, SystemTime, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.modified().ok()?,
        meta.ctime(),
        meta.ctime_nsec(),
    ))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    crate::fsio::read_limited(path).map_err(|e| format!("read {}: {e}", path.display()))
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

/// The certificate chain and its private key, checked to match.
fn load_pair(
    cert: &Material,
    key: &Material,
    provider: &CryptoProvider,
    watched: &mut Vec<(PathBuf, Option<Stamp>)>,
) -> Result<Arc<CertifiedKey>, String> {
    let cert_pem = cert.load(watched)?;
    let key_pem = key.load(watched)?;
    let certs = read_certs(&cert_pem).map_err(|e| format!("{}: {e}", cert.name()))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{}: not a PEM private key: {e}", key.name()))?;
    let pair = CertifiedKey::from_der(certs, private, provider)
        .map_err(|e| format!("{} and {}: {e}", cert.name(), key.name()))?;
    Ok(Arc::new(pair))
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
