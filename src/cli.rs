//! The command line: hand-written `--help` and argv to [`Config`], with v3's flag names.
//! No I/O happens here; every bad flag or value becomes one line naming it.

use std::ffi::OsString;
use std::time::Duration;

use crate::glob::Pattern;

/// Everything the exporter was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `-b`: the address to bind, as given (`:9793`, `127.0.0.1:0`, `[::1]:9793`).
    pub listen_address: String,
    /// `-f`: certificate files or globs.
    pub watch_files: Vec<Pattern>,
    /// `-d`: directories or globs of directories.
    pub watch_dirs: Vec<Pattern>,
    /// `-k`: kubeconfig files or globs.
    pub watch_kubeconfs: Vec<Pattern>,
    /// `-l`: the label names kept on `x509_cert_*` series; `None` keeps all.
    pub expose_labels: Option<Vec<String>>,
    /// Add `x509_cert_expires_in_seconds` and `x509_cert_valid_since_seconds`.
    pub expose_relative_metrics: bool,
    /// Add `x509_cert_error`.
    pub expose_per_cert_error_metrics: bool,
    /// Leading path components dropped from `filepath`.
    pub trim_path_components: usize,
    /// Ignore symlinks among watched files and directory entries.
    pub skip_symlinks: bool,
    /// How often file sources are re-checked.
    pub refresh_interval: Duration,
    /// Kubernetes Secrets and ConfigMaps, when `--watch-kube-secrets` is given.
    pub kube: Option<KubeFlags>,
    /// `--web.config.file`: TLS and basic auth for the listener.
    pub web_config_file: Option<std::path::PathBuf>,
    /// `--web.systemd-socket`: serve on the socket systemd passes instead of binding.
    pub systemd_socket: bool,
    /// `--profile` was given (accepted for compatibility only).
    pub profile: bool,
    /// Debug logging.
    pub debug: bool,
}

/// The Kubernetes flags (SPEC §2, §6).
#[derive(Debug, Clone)]
pub struct KubeFlags {
    /// `--kubeconfig`: the file used to reach the API.
    pub kubeconfig: Option<String>,
    /// `-s TYPE:KEYREGEX`: Secret types and the data keys read in each (whole-key match).
    pub secret_types: Vec<SecretType>,
    /// `-c`: ConfigMap keys read (exact names); none means ConfigMaps are not listed.
    pub configmap_keys: Vec<String>,
    /// `--include-namespace`.
    pub include_namespaces: Vec<String>,
    /// `--exclude-namespace`.
    pub exclude_namespaces: Vec<String>,
    /// `--include-namespace-label`.
    pub include_namespace_labels: Vec<LabelFilter>,
    /// `--exclude-namespace-label`.
    pub exclude_namespace_labels: Vec<LabelFilter>,
    /// `--include-label` (on Secrets; all must match).
    pub include_labels: Vec<LabelFilter>,
    /// `--exclude-label` (on Secrets; any excludes).
    pub exclude_labels: Vec<LabelFilter>,
    /// `--expose-secret-label`: Secret labels copied onto series as `secret_label_<key>`.
    pub expose_secret_labels: Vec<String>,
    /// `--max-cache-duration`: re-list at a random time between half and all of it; zero
    /// re-lists every refresh.
    pub max_cache_duration: Duration,
    /// `--kube-api-rate-limit-qps`.
    pub rate_limit_qps: f64,
    /// `--kube-api-rate-limit-burst`.
    pub rate_limit_burst: u32,
    /// `--kube-page-size`.
    pub page_size: u32,
}

/// One `-s TYPE:KEYREGEX`.
#[derive(Debug, Clone)]
pub struct SecretType {
    /// The Secret `type`, matched exactly.
    pub kind: String,
    /// The key pattern as given.
    pub pattern: String,
    /// The pattern anchored to the whole key.
    pub regex: regex_lite::Regex,
}

impl PartialEq for SecretType {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.pattern == other.pattern
    }
}

impl PartialEq for KubeFlags {
    fn eq(&self, other: &Self) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

/// `key` (the label exists) or `key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    /// Label key.
    pub key: String,
    /// Required value; `None` only asks that the key exists.
    pub value: Option<String>,
}

impl LabelFilter {
    /// True when `labels` satisfies the filter.
    pub fn matches<'a>(&self, mut labels: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        labels.any(|(k, v)| k == self.key && self.value.as_deref().is_none_or(|want| want == v))
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Run the exporter.
    Run(Box<Config>),
    /// Print [`HELP`] and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
    /// Probe a running exporter's `/healthz`; exit 0 or 1.
    Healthcheck {
        /// The exporter's listen address.
        address: String,
        /// The exporter's web config (TLS, basic auth), when it has one.
        web_config: Option<std::path::PathBuf>,
    },
}

/// The `--help` text: every flag with its default.
pub const HELP: &str = "\
x509-certificate-exporter: a Prometheus exporter for X.509 certificate expiry

Usage: x509-certificate-exporter [FLAGS]
       x509-certificate-exporter healthcheck [--listen-address=ADDR] [--web.config.file=FILE]

Sources (repeatable; globs take *, ?, [..] and **):
  -f, --watch-file=PATH          certificate file or glob of files
  -d, --watch-dir=PATH           directory or glob of directories, not recursive
  -k, --watch-kubeconf=PATH      kubeconfig whose embedded or referenced certificates are watched
      --skip-symlinks            ignore symlinks among watched files and directory entries
      --refresh-interval=DUR     how often sources are re-checked (default 30s)

Metrics:
  -l, --expose-labels=LIST       comma-separated label names kept on x509_cert_* series
                                 (default: all; -l \"\" keeps none)
      --expose-relative-metrics  add x509_cert_expires_in_seconds and x509_cert_valid_since_seconds
      --expose-per-cert-error-metrics
                                 add x509_cert_error per file or Secret key
      --trim-path-components=N   drop N leading components from the filepath label (default 0)

Server and logging:
  -b, --listen-address=ADDR      address to listen on (default :9793)
      --web.config.file=FILE     TLS and basic auth for the listener, in the Prometheus
                                 exporter-toolkit format (tls_server_config, basic_auth_users)
      --web.systemd-socket       serve on the socket systemd passes (socket activation)
                                 instead of binding --listen-address
      --debug                    debug logging (RUST_LOG overrides the level)
      --profile                  accepted for compatibility; profiling is not available
  -v, --version                  print the version and exit
  -h, --help                     print this help and exit

Durations use Go syntax: 30s, 5m, 1h30m, 250ms.
Endpoints: /metrics, /healthz, /readyz. `healthcheck` probes /healthz of a running
exporter (for container health checks) and exits 0 when it answers 200, else 1; given the
exporter's --web.config.file it speaks TLS, and takes 401 as alive under basic auth.
";

/// Parses the arguments after the program name.
pub fn parse(mut args: Vec<OsString>) -> Result<Command, String> {
    if args.first().is_some_and(|a| a == "healthcheck") {
        args.remove(0);
        let mut args = pico_args::Arguments::from_vec(args);
        let address =
            value(&mut args, &["-b", "--listen-address"])?.unwrap_or_else(|| ":9793".to_string());
        check_listen_address(&address)?;
        let web_config = value(&mut args, &["--web.config.file"])?.map(Into::into);
        if let Some(extra) = args.finish().first() {
            return Err(format!(
                "healthcheck: unexpected argument: {}",
                extra.to_string_lossy()
            ));
        }
        return Ok(Command::Healthcheck {
            address,
            web_config,
        });
    }
    let mut args = pico_args::Arguments::from_vec(args);
    if args.contains(["-h", "--help"]) {
        return Ok(Command::Help);
    }
    if args.contains(["-v", "--version"]) {
        return Ok(Command::Version);
    }
    let config = Config {
        listen_address: value(&mut args, &["-b", "--listen-address"])?
            .unwrap_or_else(|| ":9793".to_string()),
        watch_files: patterns(&mut args, &["-f", "--watch-file"])?,
        watch_dirs: patterns(&mut args, &["-d", "--watch-dir"])?,
        watch_kubeconfs: patterns(&mut args, &["-k", "--watch-kubeconf"])?,
        expose_labels: expose_labels(&mut args)?,
        expose_relative_metrics: args.contains("--expose-relative-metrics"),
        expose_per_cert_error_metrics: args.contains("--expose-per-cert-error-metrics"),
        trim_path_components: match value(&mut args, &["--trim-path-components"])? {
            None => 0,
            Some(n) => n.parse().map_err(|_| {
                format!("--trim-path-components: not a non-negative integer: {n:?}")
            })?,
        },
        skip_symlinks: args.contains("--skip-symlinks"),
        refresh_interval: match value(&mut args, &["--refresh-interval"])? {
            None => Duration::from_secs(30),
            Some(text) => match parse_duration(&text) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => return Err("--refresh-interval: must be greater than 0".to_string()),
                Err(why) => return Err(format!("--refresh-interval: {why}")),
            },
        },
        kube: kube_flags(&mut args)?,
        web_config_file: value(&mut args, &["--web.config.file"])?.map(Into::into),
        systemd_socket: args.contains("--web.systemd-socket"),
        profile: args.contains("--profile"),
        debug: args.contains("--debug"),
    };
    check_listen_address(&config.listen_address)?;
    let rest = args.finish();
    if let Some(first) = rest.first() {
        let first = first.to_string_lossy();
        return Err(if first.starts_with('-') {
            format!("unknown flag: {first}")
        } else {
            format!("unexpected argument: {first}")
        });
    }
    Ok(Command::Run(Box::new(config)))
}

/// The flag's names, short first: `["-f", "--watch-file"]` or `["--trim-path-components"]`.
type Names = &'static [&'static str];

fn keys(names: Names) -> pico_args::Keys {
    match names {
        [short, long] => [*short, *long].into(),
        _ => names[0].into(),
    }
}

fn all_values(args: &mut pico_args::Arguments, names: Names) -> Result<Vec<String>, String> {
    let name = names[names.len() - 1];
    args.values_from_str(keys(names)).map_err(|err| match err {
        pico_args::Error::OptionWithoutAValue(_) => format!("{name}: a value is required"),
        pico_args::Error::NonUtf8Argument => format!("{name}: the value is not valid UTF-8"),
        other => format!("{name}: {other}"),
    })
}

/// The last value of a single-valued flag.
fn value(args: &mut pico_args::Arguments, names: Names) -> Result<Option<String>, String> {
    Ok(all_values(args, names)?.pop())
}

fn patterns(args: &mut pico_args::Arguments, names: Names) -> Result<Vec<Pattern>, String> {
    let name = names[names.len() - 1];
    all_values(args, names)?
        .iter()
        .map(|v| Pattern::new(v).map_err(|why| format!("{name}: {v:?}: {why}")))
        .collect()
}

fn expose_labels(args: &mut pico_args::Arguments) -> Result<Option<Vec<String>>, String> {
    let values = all_values(args, &["-l", "--expose-labels"])?;
    if values.is_empty() {
        return Ok(None);
    }
    let mut names = Vec::new();
    for name in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
        if name.is_empty() {
            continue;
        }
        let valid = name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if !valid {
            return Err(format!("--expose-labels: not a label name: {name:?}"));
        }
        names.push(name.to_string());
    }
    Ok(Some(names))
}

fn kube_flags(args: &mut pico_args::Arguments) -> Result<Option<KubeFlags>, String> {
    let watch = args.contains("--watch-kube-secrets");
    let mut secret_types = Vec::new();
    for text in all_values(args, &["-s", "--secret-type"])? {
        let (kind, pattern) = text
            .split_once(':')
            .ok_or_else(|| format!("--secret-type: expected TYPE:KEYREGEX, got {text:?}"))?;
        let regex = regex_lite::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| format!("--secret-type: bad key pattern {pattern:?}: {e}"))?;
        secret_types.push(SecretType {
            kind: kind.to_string(),
            pattern: pattern.to_string(),
            regex,
        });
    }
    if secret_types.is_empty() {
        secret_types.push(SecretType {
            kind: "kubernetes.io/tls".to_string(),
            pattern: "tls.crt".to_string(),
            regex: regex_lite::Regex::new(r"^(?:tls\.crt)$").map_err(|e| e.to_string())?,
        });
    }
    let filters =
        |args: &mut pico_args::Arguments, names: Names| -> Result<Vec<LabelFilter>, String> {
            let name = names[names.len() - 1];
            all_values(args, names)?
                .into_iter()
                .map(|text| {
                    let (key, value) = match text.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (text.clone(), None),
                    };
                    if key.is_empty() {
                        return Err(format!("{name}: expected KEY or KEY=VALUE, got {text:?}"));
                    }
                    Ok(LabelFilter { key, value })
                })
                .collect()
        };
    let flags = KubeFlags {
        kubeconfig: value(args, &["--kubeconfig"])?,
        secret_types,
        configmap_keys: all_values(args, &["-c", "--configmap-keys"])?
            .iter()
            .flat_map(|v| v.split(','))
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect(),
        include_namespaces: all_values(args, &["--include-namespace"])?,
        exclude_namespaces: all_values(args, &["--exclude-namespace"])?,
        include_namespace_labels: filters(args, &["--include-namespace-label"])?,
        exclude_namespace_labels: filters(args, &["--exclude-namespace-label"])?,
        include_labels: filters(args, &["--include-label"])?,
        exclude_labels: filters(args, &["--exclude-label"])?,
        expose_secret_labels: all_values(args, &["--expose-secret-label"])?,
        max_cache_duration: match value(args, &["--max-cache-duration"])? {
            None => Duration::ZERO,
            Some(text) => {
                parse_duration(&text).map_err(|why| format!("--max-cache-duration: {why}"))?
            }
        },
        rate_limit_qps: match value(args, &["--kube-api-rate-limit-qps"])? {
            None => 0.0,
            Some(n) => n
                .parse::<f64>()
                .ok()
                .filter(|q| q.is_finite() && *q >= 0.0)
                .ok_or_else(|| {
                    format!("--kube-api-rate-limit-qps: not a non-negative number: {n:?}")
                })?,
        },
        rate_limit_burst: match value(args, &["--kube-api-rate-limit-burst"])? {
            None => 0,
            Some(n) => n.parse().map_err(|_| {
                format!("--kube-api-rate-limit-burst: not a non-negative integer: {n:?}")
            })?,
        },
        page_size: match value(args, &["--kube-page-size"])? {
            None => 100,
            Some(n) => n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("--kube-page-size: not a positive integer: {n:?}"))?,
        },
    };
    let given = flags.kubeconfig.is_some()
        || !flags.configmap_keys.is_empty()
        || !flags.include_namespaces.is_empty()
        || !flags.exclude_namespaces.is_empty()
        || !flags.include_namespace_labels.is_empty()
        || !flags.exclude_namespace_labels.is_empty()
        || !flags.include_labels.is_empty()
        || !flags.exclude_labels.is_empty()
        || !flags.expose_secret_labels.is_empty();
    if !watch && given {
        return Err("Kubernetes flags given without --watch-kube-secrets".to_string());
    }
    Ok(watch.then_some(flags))
}

fn check_listen_address(addr: &str) -> Result<(), String> {
    let port = addr
        .rsplit_once(':')
        .map(|(_, port)| port)
        .ok_or_else(|| format!("--listen-address: expected HOST:PORT or :PORT, got {addr:?}"))?;
    port.parse::<u16>()
        .map(|_| ())
        .map_err(|_| format!("--listen-address: bad port in {addr:?}"))
}

/// Parses a Go duration: `0`, or a sequence of decimal numbers each with a unit among
/// `ns`, `us`, `µs`, `ms`, `s`, `m`, `h` (`1h30m`, `1.5s`). Negative values are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("invalid duration {text:?}: missing unit"))?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("invalid duration {text:?}: missing unit")),
            unit => return Err(format!("invalid duration {text:?}: unknown unit {unit:?}")),
        };
        rest = &rest[unit_len..];
        total_ns += number * scale;
    }
    if !total_ns.is_finite() || total_ns > u64::MAX as f64 {
        return Err(format!("invalid duration {text:?}: out of range"));
    }
    Ok(Duration::from_nanos(total_ns.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().map(OsString::from).collect())? {
            Command::Run(config) => Ok(*config),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "5", "-5s", "5x", "s", "1h30", "abc", "1..5s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn defaults() {
        let c = run(&[]).unwrap();
        assert_eq!(c.listen_address, ":9793");
        assert_eq!(c.refresh_interval, Duration::from_secs(30));
        assert_eq!(c.expose_labels, None);
        assert_eq!(c.trim_path_components, 0);
        assert!(c.watch_files.is_empty() && !c.debug && !c.skip_symlinks);
    }

    #[test]
    fn both_value_forms_and_repetition() {
        let c = run(&[
            "-f",
            "/a.pem",
            "--watch-file=/b.pem",
            "--watch-file",
            "/c.pem",
            "-d",
            "/x",
        ])
        .unwrap();
        let mut files: Vec<_> = c
            .watch_files
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        files.sort();
        assert_eq!(files, ["/a.pem", "/b.pem", "/c.pem"]);
        assert_eq!(c.watch_dirs.len(), 1);
    }

    #[test]
    fn expose_labels_list_and_empty() {
        let c = run(&["-l", "serial_number,filename"]).unwrap();
        assert_eq!(
            c.expose_labels,
            Some(vec!["serial_number".to_string(), "filename".to_string()])
        );
        assert_eq!(run(&["-l", ""]).unwrap().expose_labels, Some(vec![]));
        assert!(run(&["-l", "bad-name"])
            .unwrap_err()
            .contains("--expose-labels"));
    }

    #[test]
    fn errors_name_the_flag() {
        assert!(run(&["--nope"]).unwrap_err().contains("--nope"));
        assert!(run(&["stray"]).unwrap_err().contains("stray"));
        assert!(run(&["--refresh-interval=abc"])
            .unwrap_err()
            .starts_with("--refresh-interval"));
        assert!(run(&["--refresh-interval=0"])
            .unwrap_err()
            .starts_with("--refresh-interval"));
        assert!(run(&["--trim-path-components=-1"])
            .unwrap_err()
            .starts_with("--trim-path-components"));
        assert!(run(&["-b", "9793"])
            .unwrap_err()
            .starts_with("--listen-address"));
        assert!(run(&["-f"]).unwrap_err().starts_with("--watch-file"));
        assert!(run(&["-f", "/a/[b"])
            .unwrap_err()
            .starts_with("--watch-file"));
    }

    #[test]
    fn help_lists_every_flag() {
        for flag in [
            "--watch-file",
            "--watch-dir",
            "--watch-kubeconf",
            "--skip-symlinks",
            "--refresh-interval",
            "--expose-labels",
            "--expose-relative-metrics",
            "--expose-per-cert-error-metrics",
            "--trim-path-components",
            "--listen-address",
            "--debug",
            "--profile",
            "--version",
            "--help",
        ] {
            assert!(HELP.contains(flag), "{flag} missing from --help");
        }
        assert_eq!(parse(vec!["-h".into()]), Ok(Command::Help));
        assert_eq!(
            parse(vec!["healthcheck".into(), "--listen-address=:8080".into()]),
            Ok(Command::Healthcheck {
                address: ":8080".into(),
                web_config: None
            })
        );
        assert_eq!(
            parse(vec!["healthcheck".into()]),
            Ok(Command::Healthcheck {
                address: ":9793".into(),
                web_config: None
            })
        );
        assert!(parse(vec!["healthcheck".into(), "x".into()]).is_err());
        assert_eq!(parse(vec!["--version".into()]), Ok(Command::Version));
    }
}
