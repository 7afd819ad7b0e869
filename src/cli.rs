//! The command line: hand-written `--help` and argv to [`Config`], with v3's flag names.
//! No I/O happens here; every bad flag or value becomes one line naming it.

use std::ffi::OsString;
use std::time::Duration;

use crate::glob::Pattern;
use crate::kube::passwords::SecretRef;
use crate::kube::secrets::Settings;
pub use crate::kube::secrets::{LabelFilter, SecretType};

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
    /// Add `x509_cert_info`: key, signature, CA, chain position, SANs.
    pub expose_cert_info: bool,
    /// Export only the leaf certificates of a file or Secret key that has any.
    pub leaf_only: bool,
    /// Leading path components dropped from `filepath`.
    pub trim_path_components: usize,
    /// Ignore symlinks among watched files and directory entries.
    pub skip_symlinks: bool,
    /// How often file sources are re-checked.
    pub refresh_interval: Duration,
    /// `--keystore-password-file`: files whose content is a keystore password, tried in
    /// order.
    pub keystore_password_files: Vec<std::path::PathBuf>,
    /// `--workers`: threads that refresh the file sources; `None` leaves the choice to the
    /// engine (the available cores, capped).
    pub workers: Option<usize>,
    /// The Kubernetes source, when `--watch-kube-secrets` or `--watch-kube-ca-bundles` is
    /// given.
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
    /// `--kube-api-rate-limit-qps`.
    pub rate_limit_qps: f64,
    /// `--kube-api-rate-limit-burst`.
    pub rate_limit_burst: u32,
    /// `--kube-watch`: list once, then watch (the default); `false` lists at every refresh.
    pub watch: bool,
    /// What the source lists and keeps: `-s`, `-c`, the namespace and label filters,
    /// `--expose-secret-label`, `--max-cache-duration`, `--kube-page-size`.
    pub source: Settings,
}

impl PartialEq for KubeFlags {
    fn eq(&self, other: &Self) -> bool {
        format!("{self:?}") == format!("{other:?}")
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
    Healthcheck(HealthcheckFlags),
    /// Read every source once and report; a usage error of `check` is its own to report,
    /// with the monitoring-plugins status 3 rather than the exporter's 2.
    Check(Result<Box<CheckFlags>, String>),
}

/// What `check` was asked for: the exporter's sources and metric flags, its thresholds and
/// its outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFlags {
    /// The sources, keystore, Kubernetes and metric flags, as the exporter takes them; the
    /// server's fields keep their defaults (`check` refuses those flags).
    pub config: Config,
    /// `--warn`: a certificate with less time left is a warning.
    pub warn: Duration,
    /// `--crit`: a certificate with less time left, or expired, is critical.
    pub crit: Duration,
    /// `--output`: what goes to standard output; `None` only with `--textfile` and no
    /// `--output`, when nothing does.
    pub output: Option<Output>,
    /// `--textfile`: where the exposition is written, atomically.
    pub textfile: Option<std::path::PathBuf>,
}

/// The format of `check`'s standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A table for a person at a terminal.
    Table,
    /// One JSON document for scripts.
    Json,
}

/// The default of `--warn`: 28 days, as the shipped alert rules warn.
pub const DEFAULT_WARN: Duration = Duration::from_secs(28 * 86_400);
/// The default of `--crit`: 14 days, as the shipped alert rules page.
pub const DEFAULT_CRIT: Duration = Duration::from_secs(14 * 86_400);

/// The exporter's flags `check` refuses, each with why: it serves nothing, reads each source
/// once and never watches.
const NOT_FOR_CHECK: &[(&str, &str)] = &[
    ("--listen-address", "check serves nothing"),
    ("--web.config.file", "check serves nothing"),
    ("--web.systemd-socket", "check serves nothing"),
    ("--refresh-interval", "check reads each source once"),
    ("--max-cache-duration", "check lists each scope once"),
    (
        "--kube-watch",
        "check lists each scope once and never watches",
    ),
    ("--profile", "check has no profiling either"),
];

/// The flags given to `healthcheck`; what is not given comes from the exporter running as
/// PID 1 (see [`crate::healthcheck`]), else from the defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthcheckFlags {
    /// `-b`, `--listen-address`.
    pub listen_address: Option<String>,
    /// `--web.config.file`.
    pub web_config_file: Option<std::path::PathBuf>,
    /// `--web.systemd-socket`: the exporter serves on a socket passed by systemd.
    pub systemd_socket: bool,
}

/// One flag of the command line. [`FLAGS`] lists them all: the parser accepts nothing else,
/// and a test checks that `--help` shows every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag {
    /// The long name, dashes included: `--watch-file`.
    pub long: &'static str,
    /// The one-letter name, dash included: `-f`.
    pub short: Option<&'static str>,
    /// The placeholder of its value in `--help` (`PATH`, `DUR`); `None` for a switch.
    pub value: Option<&'static str>,
    /// Every value given counts; otherwise the last one given wins.
    pub repeatable: bool,
    /// `healthcheck` takes it too.
    pub healthcheck: bool,
    /// Only `check` takes it.
    pub check_only: bool,
    /// It configures the Kubernetes source, and is refused without `--watch-kube-secrets` or
    /// `--watch-kube-ca-bundles`.
    pub kube_only: bool,
    /// A switch that also takes `=true` or `=false` (never a separate value).
    pub boolean: bool,
}

const fn switch(long: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        value: None,
        repeatable: false,
        healthcheck: false,
        check_only: false,
        kube_only: false,
        boolean: false,
    }
}

const fn valued(long: &'static str, value: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        value: Some(value),
        repeatable: false,
        healthcheck: false,
        check_only: false,
        kube_only: false,
        boolean: false,
    }
}

impl Flag {
    const fn short(self, short: &'static str) -> Flag {
        Flag {
            short: Some(short),
            ..self
        }
    }

    const fn repeatable(self) -> Flag {
        Flag {
            repeatable: true,
            ..self
        }
    }

    const fn healthcheck(self) -> Flag {
        Flag {
            healthcheck: true,
            ..self
        }
    }

    const fn check_only(self) -> Flag {
        Flag {
            check_only: true,
            ..self
        }
    }

    const fn kube_only(self) -> Flag {
        Flag {
            kube_only: true,
            ..self
        }
    }

    const fn boolean(self) -> Flag {
        Flag {
            boolean: true,
            ..self
        }
    }
}

/// The most `--workers` takes: beyond it, threads cost memory and buy nothing.
pub const MAX_WORKERS: usize = 64;

/// Every flag, in the order of `--help`.
pub const FLAGS: &[Flag] = &[
    valued("--watch-file", "PATH").short("-f").repeatable(),
    valued("--watch-dir", "PATH").short("-d").repeatable(),
    valued("--watch-kubeconf", "PATH").short("-k").repeatable(),
    switch("--skip-symlinks"),
    valued("--refresh-interval", "DUR"),
    valued("--workers", "N"),
    switch("--watch-kube-secrets"),
    switch("--watch-kube-ca-bundles"),
    valued("--kubeconfig", "FILE").kube_only(),
    valued("--secret-type", "TYPE:KEYREGEX")
        .short("-s")
        .repeatable()
        .kube_only(),
    valued("--configmap-keys", "KEYS")
        .short("-c")
        .repeatable()
        .kube_only(),
    valued("--include-namespace", "NAME")
        .repeatable()
        .kube_only(),
    valued("--exclude-namespace", "NAME")
        .repeatable()
        .kube_only(),
    valued("--include-namespace-label", "KEY[=VALUE]")
        .repeatable()
        .kube_only(),
    valued("--exclude-namespace-label", "KEY[=VALUE]")
        .repeatable()
        .kube_only(),
    valued("--include-label", "KEY[=VALUE]")
        .repeatable()
        .kube_only(),
    valued("--exclude-label", "KEY[=VALUE]")
        .repeatable()
        .kube_only(),
    valued("--expose-secret-label", "KEY")
        .repeatable()
        .kube_only(),
    valued("--max-cache-duration", "DUR").kube_only(),
    valued("--kube-api-rate-limit-qps", "QPS").kube_only(),
    valued("--kube-api-rate-limit-burst", "N").kube_only(),
    valued("--kube-page-size", "N").kube_only(),
    switch("--kube-watch").boolean().kube_only(),
    valued("--keystore-password-file", "FILE").repeatable(),
    valued("--keystore-password-key", "KEY")
        .repeatable()
        .kube_only(),
    valued("--keystore-password-secret", "[NAMESPACE/]NAME:KEY")
        .repeatable()
        .kube_only(),
    valued("--expose-labels", "LIST").short("-l").repeatable(),
    switch("--expose-relative-metrics"),
    switch("--expose-per-cert-error-metrics"),
    switch("--expose-cert-info"),
    switch("--leaf-only"),
    valued("--trim-path-components", "N"),
    valued("--listen-address", "ADDR").short("-b").healthcheck(),
    valued("--web.config.file", "FILE").healthcheck(),
    switch("--web.systemd-socket").healthcheck(),
    switch("--debug"),
    switch("--profile"),
    valued("--warn", "DUR").check_only(),
    valued("--crit", "DUR").check_only(),
    valued("--output", "FORMAT").check_only(),
    valued("--textfile", "PATH").check_only(),
    switch("--version").short("-v"),
    switch("--help").short("-h"),
];

/// The `--help` text: every flag of [`FLAGS`], one line each, with its default.
pub const HELP: &str = "\
x509-certificate-exporter: a Prometheus exporter for X.509 certificate expiry

Usage: x509-certificate-exporter [FLAGS]
       x509-certificate-exporter healthcheck [-b ADDR] [--web.config.file=FILE] [--web.systemd-socket]
       x509-certificate-exporter check [FLAGS] [--warn=DUR] [--crit=DUR] [--output=table|json] [--textfile=PATH]

Files (repeatable; globs take *, ?, [..] and **):
  -f, --watch-file=PATH            certificate file or glob of files
  -d, --watch-dir=PATH             directory or glob of directories, not recursive
  -k, --watch-kubeconf=PATH        kubeconfig whose embedded or referenced certificates are read
      --skip-symlinks              ignore symlinks among watched files and directory entries
      --refresh-interval=DUR       how often sources are re-checked (default 30s)
      --workers=N                  refresh threads for file sources (default: cores, at most 8)

Kubernetes (the rest need one of the first two; -s, -c, the filters and labels repeat):
      --watch-kube-secrets         read certificates from Secrets (and ConfigMaps, with -c)
      --watch-kube-ca-bundles      read the caBundles of webhook configurations, APIServices
                                   and CRD conversion webhooks
      --kubeconfig=FILE            API access (default $KUBECONFIG, in-cluster, ~/.kube/config)
  -s, --secret-type=TYPE:KEYREGEX  Secret type, whole-key regex (default kubernetes.io/tls:tls.crt)
  -c, --configmap-keys=KEYS        ConfigMap data keys, comma-separated (default none)
      --include-namespace=NAME     only these namespaces (default all)
      --exclude-namespace=NAME     not these namespaces (default none)
      --include-namespace-label=KEY[=VALUE]  only namespaces with this label (all must match)
      --exclude-namespace-label=KEY[=VALUE]  not namespaces with this label (any excludes)
      --include-label=KEY[=VALUE]  only Secrets with this label (all must match)
      --exclude-label=KEY[=VALUE]  not Secrets with this label (any excludes)
      --expose-secret-label=KEY    copy this Secret label onto series as secret_label_KEY
      --max-cache-duration=DUR     re-list after half to all of it (default 0: every refresh)
      --kube-api-rate-limit-qps=QPS   client-side requests a second (default 0: no limit)
      --kube-api-rate-limit-burst=N   requests at once under that limit (default 0: no limit)
      --kube-page-size=N           objects per list request (default 100)
      --kube-watch=false           list at every refresh instead of listing once and watching,
                                   for API proxies that cut long requests (default true)

Keystores (PKCS#12, JKS, JCEKS; repeatable; passwords are tried in order, then the empty one):
      --keystore-password-file=FILE  a file holding a keystore password (trailing newline dropped)
      --keystore-password-key=KEY  a Secret data key holding the password of the keystores in
                                   the same Secret (Kubernetes; tried first)
      --keystore-password-secret=[NAMESPACE/]NAME:KEY  a key of another Secret holding a
                                   keystore password, in the keystore's namespace unless
                                   given (Kubernetes, as cert-manager keeps them; tried next)

Metrics:
  -l, --expose-labels=LIST         label names kept on x509_cert_* series (default all; \"\": none)
      --expose-relative-metrics    add x509_cert_expires_in_seconds, x509_cert_valid_since_seconds
      --expose-per-cert-error-metrics  add x509_cert_error per file or Secret key
      --expose-cert-info           add x509_cert_info: key algorithm and size, signature
                                   algorithm, CA, chain position and SANs of each certificate
      --leaf-only                  export only the leaf certificates of each file or Secret key
                                   (one holding none, like a CA bundle, keeps all of them)
      --trim-path-components=N     drop N leading components from the filepath label (default 0)

Server and logging:
  -b, --listen-address=ADDR        address to listen on (default :9793)
      --web.config.file=FILE       TLS and basic auth, exporter-toolkit format (default none)
      --web.systemd-socket         serve on the socket systemd passes, not --listen-address
      --debug                      debug logging (RUST_LOG overrides the level)
      --profile                    accepted for compatibility; profiling is not available
  -v, --version                    print the version and exit
  -h, --help                       print this help and exit

Check (`check` reads every source once, prints, and exits; it takes the flags of the
sources, keystores, Kubernetes and metrics above, not those of the server):
      --warn=DUR                   warn below this much time left (default 28d)
      --crit=DUR                   critical below this much time left, or expired (default 14d)
      --output=FORMAT              table or json on standard output (default table, or
                                   nothing when --textfile is given)
      --textfile=PATH              write the exposition to PATH atomically, for
                                   node_exporter's textfile collector (PATH ends in .prom)

Durations use Go syntax: 30s, 5m, 1h30m, 250ms. The rate limit applies when QPS and burst
are both above 0.
Endpoints: /metrics, /healthz, /readyz. `healthcheck` probes /healthz of a running exporter
(for container health checks) and exits 0 when it answers 200, else 1. The flags it is not
given come from the exporter's own command line when that exporter is PID 1 (in its
container), else from the defaults. With a web config it speaks TLS (without checking the
certificate) and takes 401 as alive under basic auth; with --web.systemd-socket it needs -b.
`check` exits 0 when every certificate is OK, 1 on a warning, 2 on a critical or expired
certificate (even if a source failed), 3 when a source could not be read or on a usage
error. Its durations also take days: 28d, 1d12h.
";

/// Parses the arguments after the program name.
pub fn parse(mut args: Vec<OsString>) -> Result<Command, String> {
    if args.first().is_some_and(|a| a == "healthcheck") {
        args.remove(0);
        let given =
            Given::split(args, Scope::Healthcheck).map_err(|why| format!("healthcheck: {why}"))?;
        let flags = HealthcheckFlags {
            listen_address: given.last("--listen-address"),
            web_config_file: given.last("--web.config.file").map(Into::into),
            systemd_socket: given.has("--web.systemd-socket"),
        };
        if let Some(address) = &flags.listen_address {
            check_listen_address(address).map_err(|why| format!("healthcheck: {why}"))?;
        }
        given
            .all_read()
            .map_err(|why| format!("healthcheck: {why}"))?;
        return Ok(Command::Healthcheck(flags));
    }
    // Anywhere on the line, even among bad flags, as v3.
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Command::Help);
    }
    if args.iter().any(|a| a == "-v" || a == "--version") {
        return Ok(Command::Version);
    }
    if args.first().is_some_and(|a| a == "check") {
        args.remove(0);
        let flags = check_flags(args).map_err(|why| format!("check: {why}"));
        return Ok(Command::Check(flags.map(Box::new)));
    }
    let given = Given::split(args, Scope::Exporter)?;
    let config = config(&given)?;
    check_listen_address(&config.listen_address)?;
    given.all_read()?;
    Ok(Command::Run(Box::new(config)))
}

/// The flags of `check`: the exporter's, less [`NOT_FOR_CHECK`], and its own.
fn check_flags(args: Vec<OsString>) -> Result<CheckFlags, String> {
    let given = Given::split(args, Scope::Check)?;
    for (long, why) in NOT_FOR_CHECK {
        if given.has(long) {
            return Err(format!("{long}: not supported: {why}"));
        }
    }
    let config = config(&given)?;
    let days = |long: &str, default: Duration| match given.last(long) {
        None => Ok(default),
        Some(text) => parse_days(&text).map_err(|why| format!("{long}: {why}")),
    };
    let warn = days("--warn", DEFAULT_WARN)?;
    let crit = days("--crit", DEFAULT_CRIT)?;
    if crit > warn {
        return Err(format!(
            "--crit ({}s) is longer than --warn ({}s): no certificate could be a warning",
            crit.as_secs(),
            warn.as_secs()
        ));
    }
    let textfile: Option<std::path::PathBuf> = given.last("--textfile").map(Into::into);
    let output = match given.last("--output").as_deref() {
        None if textfile.is_some() => None,
        None | Some("table") => Some(Output::Table),
        Some("json") => Some(Output::Json),
        Some(other) => return Err(format!("--output: expected table or json, got {other:?}")),
    };
    if config.watch_files.is_empty()
        && config.watch_dirs.is_empty()
        && config.watch_kubeconfs.is_empty()
        && config.kube.is_none()
    {
        return Err("no source given (-f, -d, -k, --watch-kube-secrets or \
                    --watch-kube-ca-bundles): nothing to check"
            .to_string());
    }
    given.all_read()?;
    Ok(CheckFlags {
        config,
        warn,
        crit,
        output,
        textfile,
    })
}

/// Parses a duration as [`parse_duration`] does, with days ahead of the rest: `28d`,
/// `1d12h`, `36h`.
pub fn parse_days(text: &str) -> Result<Duration, String> {
    let Some((days, rest)) = text.split_once('d') else {
        return parse_duration(text);
    };
    let bad = || format!("invalid duration {text:?}");
    if days.is_empty() || !days.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let days: f64 = days.parse().map_err(|_| bad())?;
    let rest = match rest {
        "" => Duration::ZERO,
        rest => parse_duration(rest).map_err(|_| bad())?,
    };
    Duration::try_from_secs_f64(days * 86_400.0)
        .ok()
        .and_then(|days| days.checked_add(rest))
        .ok_or_else(|| format!("invalid duration {text:?}: out of range"))
}

/// The flags every command that reads sources shares, as a [`Config`].
fn config(given: &Given) -> Result<Config, String> {
    Ok(Config {
        listen_address: given
            .last("--listen-address")
            .unwrap_or_else(|| ":9793".to_string()),
        watch_files: patterns(given, "--watch-file")?,
        watch_dirs: patterns(given, "--watch-dir")?,
        watch_kubeconfs: patterns(given, "--watch-kubeconf")?,
        expose_labels: expose_labels(given)?,
        expose_relative_metrics: given.has("--expose-relative-metrics"),
        expose_per_cert_error_metrics: given.has("--expose-per-cert-error-metrics"),
        expose_cert_info: given.has("--expose-cert-info"),
        leaf_only: given.has("--leaf-only"),
        trim_path_components: match given.last("--trim-path-components") {
            None => 0,
            Some(n) => n.parse().map_err(|_| {
                format!("--trim-path-components: not a non-negative integer: {n:?}")
            })?,
        },
        skip_symlinks: given.has("--skip-symlinks"),
        refresh_interval: match given.last("--refresh-interval") {
            None => Duration::from_secs(30),
            Some(text) => match parse_duration(&text) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => return Err("--refresh-interval: must be greater than 0".to_string()),
                Err(why) => return Err(format!("--refresh-interval: {why}")),
            },
        },
        keystore_password_files: given
            .all("--keystore-password-file")
            .into_iter()
            .map(Into::into)
            .collect(),
        workers: match given.last("--workers") {
            None => None,
            Some(n) => Some(
                n.parse()
                    .ok()
                    .filter(|n| (1..=MAX_WORKERS).contains(n))
                    .ok_or_else(|| {
                        format!("--workers: not an integer from 1 to {MAX_WORKERS}: {n:?}")
                    })?,
            ),
        },
        kube: kube_flags(given)?,
        web_config_file: given.last("--web.config.file").map(Into::into),
        systemd_socket: given.has("--web.systemd-socket"),
        profile: given.has("--profile"),
        debug: given.has("--debug"),
    })
}

/// Which command's flags [`Given::split`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Exporter,
    Healthcheck,
    Check,
}

/// The command line split by [`FLAGS`]: each flag given with its value (empty for a
/// switch), in command-line order, and whether the parser has looked at it.
struct Given {
    found: Vec<(&'static Flag, String, std::cell::Cell<bool>)>,
}

impl Given {
    /// Splits `args` into flags and values: `--flag=value`, `--flag value`, `-f value` and
    /// `-f=value`. Anything else is an error naming it; `healthcheck` takes only its flags,
    /// and only `check` takes its own.
    fn split(args: Vec<OsString>, scope: Scope) -> Result<Self, String> {
        let mut found = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let text = arg.to_string_lossy();
            if !text.starts_with('-') {
                return Err(format!("unexpected argument: {text}"));
            }
            let (name, inline) = match text.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (text.as_ref(), None),
            };
            let flag = FLAGS
                .iter()
                .filter(|f| f.healthcheck || scope != Scope::Healthcheck)
                .find(|f| f.long == name || f.short == Some(name))
                .ok_or_else(|| format!("unknown flag: {text}"))?;
            let long = flag.long;
            if flag.check_only && scope == Scope::Exporter {
                return Err(format!(
                    "{long}: only the check subcommand takes it (x509-certificate-exporter check ...)"
                ));
            }
            let value = match (flag.value, inline) {
                (None, None) => String::new(),
                (None, Some(inline)) if flag.boolean => inline.to_string(),
                (None, Some(_)) => return Err(format!("{long}: takes no value: {text}")),
                (Some(_), Some(inline)) => {
                    if arg.to_str().is_none() {
                        return Err(format!("{long}: the value is not valid UTF-8"));
                    }
                    unquote(inline).ok_or_else(|| format!("{long}: a value is required"))?
                }
                (Some(_), None) => args
                    .next()
                    .ok_or_else(|| format!("{long}: a value is required"))?
                    .into_string()
                    .map_err(|_| format!("{long}: the value is not valid UTF-8"))?,
            };
            found.push((flag, value, std::cell::Cell::new(false)));
        }
        Ok(Self { found })
    }

    /// Every value given to the flag named `long`, in order.
    fn all(&self, long: &str) -> Vec<String> {
        // A name missing from FLAGS would be a flag nobody can give: the unit test
        // `every_flag_is_read` catches it, and debug builds stop here.
        debug_assert!(
            FLAGS.iter().any(|f| f.long == long),
            "{long} is not in FLAGS"
        );
        self.found
            .iter()
            .filter(|(flag, _, _)| flag.long == long)
            .map(|(_, value, read)| {
                read.set(true);
                value.clone()
            })
            .collect()
    }

    /// The last value given to a single-valued flag.
    fn last(&self, long: &str) -> Option<String> {
        self.all(long).pop()
    }

    /// Whether the switch was given (once or more).
    fn has(&self, long: &str) -> bool {
        !self.all(long).is_empty()
    }

    /// The first flag given that only the Kubernetes source takes.
    fn first_kube_only(&self) -> Option<&'static Flag> {
        self.found
            .iter()
            .map(|(flag, _, _)| *flag)
            .find(|flag| flag.kube_only)
    }

    /// Fails on a flag the parser accepted but never looked at: a flag in [`FLAGS`] with no
    /// meaning must not be taken silently.
    fn all_read(&self) -> Result<(), String> {
        match self.found.iter().find(|(_, _, read)| !read.get()) {
            Some((flag, _, _)) => Err(format!("{}: not supported here", flag.long)),
            None => Ok(()),
        }
    }
}

/// A `--flag=value` value: one pair of matching quotes around it is dropped (a quoted value
/// in an exec-form command line, where no shell removes them); `None` when it is empty or a
/// quote is not closed.
fn unquote(value: &str) -> Option<String> {
    let value = match value.as_bytes().first() {
        Some(&q) if q == b'"' || q == b'\'' => value
            .strip_prefix(q as char)
            .and_then(|v| v.strip_suffix(q as char))?,
        _ => value,
    };
    (!value.is_empty()).then(|| value.to_string())
}

fn patterns(given: &Given, long: &str) -> Result<Vec<Pattern>, String> {
    given
        .all(long)
        .iter()
        .map(|v| Pattern::new(v).map_err(|why| format!("{long}: {v:?}: {why}")))
        .collect()
}

fn expose_labels(given: &Given) -> Result<Option<Vec<String>>, String> {
    let values = given.all("--expose-labels");
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

fn kube_flags(given: &Given) -> Result<Option<KubeFlags>, String> {
    let secrets = given.has("--watch-kube-secrets");
    let ca_bundles = given.has("--watch-kube-ca-bundles");
    let watch = secrets || ca_bundles;
    if !watch {
        if let Some(flag) = given.first_kube_only() {
            return Err(format!(
                "{}: only meaningful with --watch-kube-secrets or --watch-kube-ca-bundles, \
                 neither of which is given",
                flag.long
            ));
        }
    }
    let mut secret_types = Vec::new();
    for text in given.all("--secret-type") {
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
    let filters = |long: &str| -> Result<Vec<LabelFilter>, String> {
        given
            .all(long)
            .into_iter()
            .map(|text| {
                let (key, value) = match text.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (text.clone(), None),
                };
                if key.is_empty() {
                    return Err(format!("{long}: expected KEY or KEY=VALUE, got {text:?}"));
                }
                Ok(LabelFilter { key, value })
            })
            .collect()
    };
    let source = Settings {
        secret_types,
        configmap_keys: given
            .all("--configmap-keys")
            .iter()
            .flat_map(|v| v.split(','))
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect(),
        include_namespaces: given.all("--include-namespace"),
        exclude_namespaces: given.all("--exclude-namespace"),
        include_namespace_labels: filters("--include-namespace-label")?,
        exclude_namespace_labels: filters("--exclude-namespace-label")?,
        include_labels: filters("--include-label")?,
        exclude_labels: filters("--exclude-label")?,
        expose_secret_labels: given.all("--expose-secret-label"),
        max_cache_duration: match given.last("--max-cache-duration") {
            None => Duration::ZERO,
            Some(text) => {
                parse_duration(&text).map_err(|why| format!("--max-cache-duration: {why}"))?
            }
        },
        page_size: match given.last("--kube-page-size") {
            None => 100,
            Some(n) => n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("--kube-page-size: not a positive integer: {n:?}"))?,
        },
        secrets,
        ca_bundles,
        password_keys: given.all("--keystore-password-key"),
        password_secrets: given
            .all("--keystore-password-secret")
            .iter()
            .map(|text| SecretRef::parse(text))
            .collect::<Result<_, _>>()
            .map_err(|why| format!("--keystore-password-secret: {why}"))?,
        // Read by `main` (cli does no I/O), from `Config::keystore_password_files`.
        password_files: Default::default(),
    };
    let flags = KubeFlags {
        kubeconfig: given.last("--kubeconfig"),
        watch: match given.last("--kube-watch").as_deref() {
            None | Some("" | "true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(format!(
                    "--kube-watch: expected true or false, got {other:?}"
                ))
            }
        },
        rate_limit_qps: match given.last("--kube-api-rate-limit-qps") {
            None => 0.0,
            Some(n) => n
                .parse::<f64>()
                .ok()
                .filter(|q| q.is_finite() && *q >= 0.0)
                .ok_or_else(|| {
                    format!("--kube-api-rate-limit-qps: not a non-negative number: {n:?}")
                })?,
        },
        rate_limit_burst: match given.last("--kube-api-rate-limit-burst") {
            None => 0,
            Some(n) => n.parse().map_err(|_| {
                format!("--kube-api-rate-limit-burst: not a non-negative integer: {n:?}")
            })?,
        },
        source,
    };
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
        assert_eq!(c.workers, None, "the engine chooses");
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
        for bad in ["0", "65", "-1", "two", "1.5"] {
            assert_eq!(
                run(&["--workers", bad]).unwrap_err(),
                format!("--workers: not an integer from 1 to 64: {bad:?}")
            );
        }
        assert_eq!(run(&["--workers=1"]).unwrap().workers, Some(1));
        assert_eq!(run(&["--workers=64"]).unwrap().workers, Some(64));
    }

    /// A valid value for each placeholder of [`FLAGS`].
    fn sample(placeholder: &str) -> &'static str {
        match placeholder {
            "PATH" => "/certs/a.pem",
            "DUR" => "1m",
            "FILE" => "/etc/x509/web.yml",
            "TYPE:KEYREGEX" => "kubernetes.io/tls:tls\\.crt",
            "KEYS" => "ca.crt",
            "NAME" => "team-a",
            "KEY[=VALUE]" => "app=web",
            "KEY" => "app",
            "[NAMESPACE/]NAME:KEY" => "ops/keystore-password:password",
            "QPS" => "5",
            "N" => "3",
            "LIST" => "subject_CN",
            "ADDR" => "127.0.0.1:9793",
            "FORMAT" => "json",
            other => panic!("no sample value for {other}: add one here"),
        }
    }

    #[test]
    fn every_flag_is_read() {
        // Every flag of the table given at once, each with a valid value: nothing is
        // refused, so no flag of the table is left without a meaning.
        let mut args = Vec::new();
        for flag in FLAGS
            .iter()
            .filter(|f| !["--help", "--version"].contains(&f.long) && !f.check_only)
        {
            match flag.value {
                None => args.push(flag.long.to_string()),
                Some(placeholder) => args.push(format!("{}={}", flag.long, sample(placeholder))),
            }
        }
        let config = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        let kube = config.kube.unwrap();
        assert_eq!(kube.source.page_size, 3);
        assert_eq!(kube.source.expose_secret_labels, ["app"]);
        assert!(config.systemd_socket && config.debug && config.profile);
        assert_eq!(config.workers, Some(3));
        // And each short name stands for its long one.
        for flag in FLAGS
            .iter()
            .filter(|f| f.short.is_some() && f.value.is_some())
        {
            let short = flag.short.unwrap();
            let value = sample(flag.value.unwrap());
            let mut base = vec!["--watch-kube-secrets"];
            let by_short = [base.clone(), vec![short, value]].concat();
            base.extend([flag.long, value]);
            assert_eq!(run(&by_short), run(&base), "{short}");
        }
    }

    #[test]
    fn kubernetes_flags_need_watch_kube_secrets() {
        for flag in FLAGS.iter().filter(|f| f.kube_only) {
            let value = flag.value.map(sample).unwrap_or_default();
            let arg = format!("{}={value}", flag.long);
            let err = run(&[&arg]).unwrap_err();
            assert!(
                err.starts_with(&format!("{}: ", flag.long))
                    && err.contains("--watch-kube-secrets"),
                "{arg}: {err}"
            );
            assert!(run(&["--watch-kube-secrets", &arg]).is_ok(), "{arg}");
            assert!(run(&["--watch-kube-ca-bundles", &arg]).is_ok(), "{arg}");
        }
        // The Kubernetes section of the table, and nothing else.
        let kube: Vec<_> = FLAGS
            .iter()
            .filter(|f| f.kube_only)
            .map(|f| f.long)
            .collect();
        assert_eq!(kube.first(), Some(&"--kubeconfig"));
        assert_eq!(kube.last(), Some(&"--keystore-password-secret"));
        assert_eq!(kube.len(), 17);
    }

    #[test]
    fn kube_watch_takes_true_or_false_and_other_switches_no_value() {
        let watch = |args: &[&str]| {
            let config = run(args).unwrap();
            let kube = config.kube.as_ref().unwrap();
            (kube.watch, kube.source.secrets, kube.source.ca_bundles)
        };
        assert_eq!(watch(&["--watch-kube-secrets"]), (true, true, false));
        assert_eq!(
            watch(&["--watch-kube-ca-bundles", "--kube-watch"]),
            (true, false, true)
        );
        let off = [
            "--watch-kube-secrets",
            "--watch-kube-ca-bundles",
            "--kube-watch=false",
        ];
        assert_eq!(watch(&off), (false, true, true));
        assert_eq!(
            watch(&["--watch-kube-secrets", "--kube-watch=true"]),
            (true, true, false)
        );
        let err = run(&["--watch-kube-secrets", "--kube-watch=no"]).unwrap_err();
        assert_eq!(err, "--kube-watch: expected true or false, got \"no\"");
        // `--kube-watch false` is not a value: the word is a stray argument.
        let err = run(&["--watch-kube-secrets", "--kube-watch", "false"]).unwrap_err();
        assert_eq!(err, "unexpected argument: false");
        let err = run(&["--debug=true"]).unwrap_err();
        assert_eq!(err, "--debug: takes no value: --debug=true");
    }

    #[test]
    fn the_flag_table_is_consistent() {
        let mut names = std::collections::HashSet::new();
        for flag in FLAGS {
            assert!(
                flag.long.starts_with("--") && flag.long.len() > 3,
                "{flag:?}"
            );
            assert!(names.insert(flag.long), "{} twice", flag.long);
            if let Some(short) = flag.short {
                assert!(short.len() == 2 && short.starts_with('-'), "{flag:?}");
                assert!(names.insert(short), "{short} twice");
            }
            assert!(!flag.repeatable || flag.value.is_some(), "{flag:?}");
        }
    }

    #[test]
    fn last_value_wins_and_switches_may_repeat() {
        let c = run(&[
            "--listen-address=:1",
            "-b",
            ":2",
            "--refresh-interval",
            "1s",
        ])
        .unwrap();
        assert_eq!(c.listen_address, ":2");
        let c = run(&["-b", ":2", "--listen-address=:1", "--debug", "--debug"]).unwrap();
        assert_eq!(c.listen_address, ":1");
        assert!(c.debug);
    }

    #[test]
    fn values_and_their_errors() {
        // A value may start with a dash when it is the next argument.
        let c = run(&["-l", "", "--trim-path-components", "2"]).unwrap();
        assert_eq!((c.expose_labels, c.trim_path_components), (Some(vec![]), 2));
        let c = run(&["--watch-file=\"/a b.pem\"", "-f='/c.pem'"]).unwrap();
        let files: Vec<_> = c.watch_files.iter().map(|p| p.as_str()).collect();
        assert_eq!(files, ["/a b.pem", "/c.pem"]);
        for (args, error) in [
            (&["--debug=yes"][..], "--debug: takes no value: --debug=yes"),
            (&["--watch-file="], "--watch-file: a value is required"),
            (&["--watch-file=\"/a"], "--watch-file: a value is required"),
            (&["-b"], "--listen-address: a value is required"),
            (&["--nope=1"], "unknown flag: --nope=1"),
            (&["-x"], "unknown flag: -x"),
            (&["-"], "unknown flag: -"),
            (&["--"], "unknown flag: --"),
            (&["-fvalue"], "unknown flag: -fvalue"),
            (&["/a.pem"], "unexpected argument: /a.pem"),
        ] {
            assert_eq!(run(args).unwrap_err(), error, "{args:?}");
        }
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(b"/a\xff.pem".to_vec());
        for args in [
            vec!["-f".into(), bad.clone()],
            vec![OsString::from_vec(b"--watch-file=/a\xff".to_vec())],
        ] {
            assert_eq!(
                parse(args).unwrap_err(),
                "--watch-file: the value is not valid UTF-8"
            );
        }
    }

    #[test]
    fn help_and_version_anywhere() {
        assert_eq!(parse(vec!["-h".into()]), Ok(Command::Help));
        assert_eq!(
            parse(vec!["--nope".into(), "--help".into()]),
            Ok(Command::Help)
        );
        assert_eq!(parse(vec!["--version".into()]), Ok(Command::Version));
        assert_eq!(parse(vec!["-f".into(), "-v".into()]), Ok(Command::Version));
    }

    fn healthcheck(args: &[&str]) -> Result<Command, String> {
        let mut all = vec![OsString::from("healthcheck")];
        all.extend(args.iter().map(OsString::from));
        parse(all)
    }

    #[test]
    fn healthcheck_takes_three_flags_and_no_default() {
        assert_eq!(
            healthcheck(&[]),
            Ok(Command::Healthcheck(HealthcheckFlags::default()))
        );
        assert_eq!(
            healthcheck(&["--listen-address=:8080", "--web.config.file", "w.yml"]),
            Ok(Command::Healthcheck(HealthcheckFlags {
                listen_address: Some(":8080".into()),
                web_config_file: Some("w.yml".into()),
                systemd_socket: false,
            }))
        );
        assert_eq!(
            healthcheck(&["-b", "127.0.0.1:1", "--web.systemd-socket"]),
            Ok(Command::Healthcheck(HealthcheckFlags {
                listen_address: Some("127.0.0.1:1".into()),
                web_config_file: None,
                systemd_socket: true,
            }))
        );
        for (args, error) in [
            (&["x"][..], "healthcheck: unexpected argument: x"),
            (&["--debug"], "healthcheck: unknown flag: --debug"),
            (&["-f", "/a"], "healthcheck: unknown flag: -f"),
            (
                &["-b", "8080"],
                "healthcheck: --listen-address: expected HOST:PORT or :PORT, got \"8080\"",
            ),
            (
                &["--web.config.file"],
                "healthcheck: --web.config.file: a value is required",
            ),
        ] {
            assert_eq!(healthcheck(args).unwrap_err(), error, "{args:?}");
        }
    }

    fn check(args: &[&str]) -> Result<CheckFlags, String> {
        let mut all = vec![OsString::from("check")];
        all.extend(args.iter().map(OsString::from));
        match parse(all)? {
            Command::Check(flags) => flags.map(|f| *f),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn check_takes_the_source_flags_and_its_own() {
        let c = check(&["-d", "/etc/ssl", "-l", "subject_CN", "--workers=2"]).unwrap();
        assert_eq!(
            c.config,
            run(&["-d", "/etc/ssl", "-l", "subject_CN", "--workers=2"]).unwrap()
        );
        assert_eq!((c.warn, c.crit), (DEFAULT_WARN, DEFAULT_CRIT));
        assert_eq!((c.output, c.textfile), (Some(Output::Table), None));
        let c = check(&[
            "-f",
            "/a.pem",
            "--warn=30d",
            "--crit",
            "36h",
            "--textfile=/t/x.prom",
        ])
        .unwrap();
        assert_eq!(c.warn, Duration::from_secs(30 * 86_400));
        assert_eq!(c.crit, Duration::from_secs(36 * 3600));
        assert_eq!(c.output, None, "nothing on stdout with --textfile alone");
        assert_eq!(c.textfile, Some("/t/x.prom".into()));
        let c = check(&["-f", "/a.pem", "--textfile=/t/x.prom", "--output=table"]).unwrap();
        assert_eq!(c.output, Some(Output::Table));
        let c = check(&["--watch-kube-secrets", "--output", "json"]).unwrap();
        assert_eq!(c.output, Some(Output::Json));
        // Every flag of the table that check does not refuse is read, with a valid value.
        let mut args = Vec::new();
        for flag in FLAGS.iter().filter(|f| {
            !["--help", "--version"].contains(&f.long)
                && !NOT_FOR_CHECK.iter().any(|(long, _)| *long == f.long)
        }) {
            match flag.value {
                None => args.push(flag.long.to_string()),
                Some(placeholder) => args.push(format!("{}={}", flag.long, sample(placeholder))),
            }
        }
        let c = check(&args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        assert_eq!(
            (c.warn, c.crit),
            (Duration::from_secs(60), Duration::from_secs(60))
        );
        assert_eq!(c.output, Some(Output::Json));
    }

    #[test]
    fn check_refuses_the_server_flags_and_bad_values() {
        for (args, error) in [
            (&["-f", "/a", "-b", ":1"][..], "check: --listen-address: not supported: check serves nothing"),
            (&["-f", "/a", "--web.config.file=w.yml"], "check: --web.config.file: not supported: check serves nothing"),
            (&["-f", "/a", "--web.systemd-socket"], "check: --web.systemd-socket: not supported: check serves nothing"),
            (&["-f", "/a", "--refresh-interval=1m"], "check: --refresh-interval: not supported: check reads each source once"),
            (&["--watch-kube-secrets", "--kube-watch=false"], "check: --kube-watch: not supported: check lists each scope once and never watches"),
            (&["-f", "/a", "--warn=soon"], "check: --warn: invalid duration \"soon\""),
            (&["-f", "/a", "--crit=-1d"], "check: --crit: invalid duration \"-1d\""),
            (&["-f", "/a", "--crit=29d"], "check: --crit (2505600s) is longer than --warn (2419200s): no certificate could be a warning"),
            (&["-f", "/a", "--output=yaml"], "check: --output: expected table or json, got \"yaml\""),
            (&["-f", "/a", "--nope"], "check: unknown flag: --nope"),
            (&["-f", "/a", "stray"], "check: unexpected argument: stray"),
            (&[], "check: no source given (-f, -d, -k, --watch-kube-secrets or --watch-kube-ca-bundles): nothing to check"),
        ] {
            assert_eq!(check(args).unwrap_err(), error, "{args:?}");
        }
        assert_eq!(
            run(&["-f", "/a", "--warn=1d"]).unwrap_err(),
            "--warn: only the check subcommand takes it (x509-certificate-exporter check ...)"
        );
        assert_eq!(
            parse(vec!["check".into(), "--help".into()]),
            Ok(Command::Help)
        );
    }

    #[test]
    fn days_ahead_of_a_go_duration() {
        let day = 86_400;
        assert_eq!(parse_days("28d"), Ok(Duration::from_secs(28 * day)));
        assert_eq!(parse_days("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_days("0.5d"), Ok(Duration::from_secs(day / 2)));
        assert_eq!(parse_days("36h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_days("0"), Ok(Duration::ZERO));
        for bad in [
            "d", "1dd", "d1h", "1h1d", "-1d", "1d5", "1.2.3d", "x1d", "1e400d",
        ] {
            assert!(parse_days(bad).is_err(), "{bad} should be refused");
        }
    }
}
