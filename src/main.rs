//! x509-certificate-exporter: wiring only. Parse flags, start logging, start the engine that
//! refreshes the sources, serve its views, and map failures to exit statuses (1 runtime, 2
//! usage); or, for `check`, read the sources once and hand them to [`check`], whose statuses
//! are the monitoring plugins' (0 to 3).
#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;

use crossbeam_channel::bounded;

use x509_certificate_exporter::check::{self, Status, Thresholds};
use x509_certificate_exporter::cli::{self, CheckFlags, Command, Config};
use x509_certificate_exporter::files::{FileSource, Mode, SpareThreads};
use x509_certificate_exporter::fsio;
use x509_certificate_exporter::keystore::passwords::PasswordFiles;
use x509_certificate_exporter::kubeconfig::KubeconfigSource;
use x509_certificate_exporter::labels::LabelConfig;
use x509_certificate_exporter::poll::{self, Source};
use x509_certificate_exporter::{healthcheck, http, kube, render};

fn main() -> ExitCode {
    let config = match cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            let b = render::BUILD;
            println!(
                "x509-certificate-exporter {} (revision {}, built {}, {})",
                b.version, b.revision, b.built, b.rustversion
            );
            return ExitCode::SUCCESS;
        }
        Ok(Command::Check(flags)) => return ExitCode::from(run_check(flags).code()),
        Ok(Command::Healthcheck(flags)) => {
            let target = healthcheck::target(&flags, std::fs::read(healthcheck::PID1_CMDLINE));
            let result = target.and_then(|target| {
                if let Some(note) = &target.note {
                    eprintln!("{note}");
                }
                healthcheck::probe(&target.address, target.web_config.as_deref())
            });
            return match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("{message}");
                    ExitCode::from(1)
                }
            };
        }
        Err(message) => {
            eprintln!("x509-certificate-exporter: {message}");
            return ExitCode::from(2);
        }
    };
    let tuned = tune_malloc(config.workers.unwrap_or_else(poll::default_workers));
    init_logging(config.debug, log::LevelFilter::Info);
    if let Some(why) = tuned {
        log::debug!("malloc not tuned: {why}");
    }
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            log::error!("{message}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(message)) => {
            log::error!("{message}");
            ExitCode::from(1)
        }
    }
}

/// Set on the run that [`tune_malloc`] starts, so that it starts one at most.
const MALLOC_TUNED: &str = "X509_EXPORTER_MALLOC_TUNED";

/// Allocations from this size on are mapped on their own and returned to the system when
/// freed, whatever glibc has seen before.
const MALLOC_MMAP_THRESHOLD: &str = "131072";

/// Tunes glibc's malloc for a long-running process whose files change under it, by running
/// this binary again (same process, same arguments) with two variables set in its
/// environment, unless the operator set them: only the environment reaches glibc before it
/// starts, and only `unsafe` code could call `mallopt` instead.
///
/// - `MALLOC_ARENA_MAX`: twice the pool (`workers`), the most threads that parse at once
///   (glibc's default is eight per core). Each thread that allocates gets an arena, and memory
///   freed in one serves only that arena; one arena for all would make parsing threads queue
///   on its lock (a 100k-file first scan took 2.4 s instead of 1.0 s on two workers).
/// - `MALLOC_MMAP_THRESHOLD_`: 128 KiB, fixed. glibc otherwise raises the threshold to the
///   largest block freed, after which gzip bodies and rendered pieces of megabytes come from
///   the arenas and leave holes between long-lived certificates.
///
/// Under churn (10k files, 1 % replaced every second, a gzip scrape every second), RSS then
/// levels off at 1.24 times the quiet state instead of 1.4 and still climbing, and the quiet
/// state itself is a quarter lower. Returns why the variables could not be applied (no
/// `/proc`, as in a bare chroot); the exporter runs on regardless.
fn tune_malloc(workers: usize) -> Option<String> {
    use std::os::unix::process::CommandExt as _;
    let arenas = (2 * workers).to_string();
    let wanted = [
        ("MALLOC_ARENA_MAX", arenas.as_str()),
        ("MALLOC_MMAP_THRESHOLD_", MALLOC_MMAP_THRESHOLD),
    ];
    let missing: Vec<_> = wanted
        .into_iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect();
    if missing.is_empty() {
        return None;
    }
    // Once only: where the loader drops MALLOC_* from the environment (a binary with file
    // capabilities run in secure mode), the variables would be missing after every run again.
    if std::env::var_os(MALLOC_TUNED).is_some() {
        return Some("the environment dropped the malloc variables".to_string());
    }
    // The binary's own path rather than /proc/self/exe, whose name would become the
    // process's (`exe` in top and ps).
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return Some(format!("find this binary (/proc/self/exe): {error}")),
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    let error = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .envs(missing)
        .env(MALLOC_TUNED, "1")
        .exec();
    Some(format!("re-execute {}: {error}", exe.display()))
}

/// Logs at `level`, or at debug level with `--debug`.
fn init_logging(debug: bool, level: log::LevelFilter) {
    let level = if debug {
        log::LevelFilter::Debug
    } else {
        level
    };
    env_logger::Builder::new()
        .filter_level(level)
        .filter_module("rustls", log::LevelFilter::Warn)
        .parse_env("RUST_LOG")
        .format_target(false)
        .init();
}

/// A failure that is the user's to fix (exit 2) or the machine's (exit 1).
enum Failure {
    Usage(String),
    Runtime(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Runtime(message)
    }
}

/// The Kubernetes source, watching or listing as `--kube-watch` says (listing, for one
/// pass); a missing or malformed configuration is a usage error.
fn kube_source(
    flags: &cli::KubeFlags,
    labels: Arc<LabelConfig>,
    passwords: Arc<PasswordFiles>,
    interval: std::time::Duration,
    one_pass: bool,
) -> Result<Box<dyn Source>, Failure> {
    let cluster = kube::config::load(flags.kubeconfig.as_deref()).map_err(Failure::Usage)?;
    log::info!(
        "Kubernetes API {} (configuration: {})",
        cluster.server,
        cluster.origin
    );
    let client = kube::client::Client::new(&cluster, flags.rate_limit_qps, flags.rate_limit_burst)
        .map_err(Failure::Usage)?;
    let settings = kube::secrets::Settings {
        password_files: passwords,
        ..flags.source.clone()
    };
    let rules = Arc::new(kube::secrets::Rules::new(settings).with_password_client(&client));
    Ok(match flags.watch && !one_pass {
        true => Box::new(kube::watch::WatchSource::new(client, rules, labels)),
        false => Box::new(kube::lists::ListSource::new(
            client, rules, labels, interval,
        )),
    })
}

/// Every source the flags ask for, in command-line order, labelled as `-l` and
/// `--trim-path-components` say: the exporter's and `check`'s. For `one_pass`, the
/// Kubernetes source lists rather than watches.
fn sources(config: &Config, one_pass: bool) -> Result<Vec<Box<dyn Source>>, Failure> {
    let labels = Arc::new(LabelConfig {
        allow: config.expose_labels.clone(),
        trim: config.trim_path_components,
        facts: config.expose_cert_info,
        leaf_only: config.leaf_only,
        ..LabelConfig::default()
    });
    // A large scan borrows idle cores: as many parsing threads again as the pool has, less
    // the refreshing one, across every file source.
    let spare = SpareThreads::new(config.workers.unwrap_or_else(poll::default_workers));
    let passwords = PasswordFiles::load(config.keystore_password_files.clone())
        .map_err(|why| Failure::Usage(format!("--keystore-password-file: {why}")))?;
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    for (patterns, mode) in [
        (&config.watch_files, Mode::Files),
        (&config.watch_dirs, Mode::Dirs),
    ] {
        for pattern in patterns {
            let source = FileSource::new(
                pattern.clone(),
                mode,
                config.skip_symlinks,
                Arc::clone(&labels),
            )
            .with_spare_threads(Arc::clone(&spare))
            .with_passwords(Arc::clone(&passwords));
            sources.push(Box::new(source));
        }
    }
    for pattern in &config.watch_kubeconfs {
        sources.push(Box::new(KubeconfigSource::new(
            pattern.clone(),
            Arc::clone(&labels),
        )));
    }
    if let Some(flags) = &config.kube {
        sources.push(kube_source(
            flags,
            Arc::clone(&labels),
            passwords,
            config.refresh_interval,
            one_pass,
        )?);
    }
    Ok(sources)
}

/// The optional families the metric flags ask for, on /metrics and in `check`'s textfile.
fn render_options(config: &Config) -> render::Options {
    render::Options {
        relative: config.expose_relative_metrics,
        per_cert_error: config.expose_per_cert_error_metrics,
        cert_info: config.expose_cert_info,
    }
}

/// `check`: reads every source once, prints the table or JSON, writes the textfile, and
/// answers the status to exit with.
fn run_check(flags: Result<Box<CheckFlags>, String>) -> Status {
    let flags = match flags {
        Ok(flags) => flags,
        Err(message) => {
            eprintln!("x509-certificate-exporter: {message}");
            return Status::Unknown;
        }
    };
    let config = &flags.config;
    init_logging(config.debug, log::LevelFilter::Warn);
    let sources = match sources(config, true) {
        Ok(sources) => sources,
        Err(Failure::Usage(message) | Failure::Runtime(message)) => {
            log::error!("check: {message}");
            return Status::Unknown;
        }
    };
    let workers = config.workers.unwrap_or_else(poll::default_workers);
    let passes = check::refresh_all(sources, workers);
    let thresholds = Thresholds {
        warn: flags.warn,
        crit: flags.crit,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let outcome = check::outcome(passes, thresholds, now);
    let mut status = outcome.status();
    if let Some(path) = &flags.textfile {
        let options = render_options(config);
        let body = render::Body::new(Arc::clone(&outcome.view), now, options, render::BUILD);
        match check::write_textfile(path, body) {
            Ok(()) => log::info!("check: {}; wrote {}", outcome.summary(), path.display()),
            Err(message) => {
                log::error!("check: {message}");
                status = Status::Unknown;
            }
        }
    }
    let text = match flags.output {
        Some(cli::Output::Table) => check::table(&outcome),
        Some(cli::Output::Json) => check::json(&outcome),
        None => {
            for error in &outcome.errors {
                log::warn!("check: {error}");
            }
            String::new()
        }
    };
    if let Err(message) = check::print(&text) {
        log::error!("check: {message}");
        status = Status::Unknown;
    }
    status
}

fn run(config: &Config) -> Result<(), Failure> {
    if config.profile {
        log::warn!("--profile: profiling is not available in this build; ignored");
    }
    let settings = poll::Settings {
        interval: config.refresh_interval,
        workers: config.workers.unwrap_or_else(poll::default_workers),
    };
    let sources = sources(config, false)?;
    if sources.is_empty() {
        log::warn!("no source given (-f, -d or -k): serving only the exporter's own metrics");
    }

    let web = match &config.web_config_file {
        Some(path) => http::web_config::load(path).map_err(Failure::Usage)?,
        None => http::web_config::WebConfig::default(),
    };
    let listener = if config.systemd_socket {
        systemd_listener().map_err(Failure::Usage)?
    } else {
        bind(&config.listen_address).map_err(Failure::Runtime)?
    };
    let local = listener
        .local_addr()
        .map_err(|e| format!("listen {}: {e}", config.listen_address))?;
    let scheme = if web.tls.is_some() { "https" } else { "http" };
    let auth = if web.users.is_empty() {
        ""
    } else {
        " (basic auth)"
    };
    log::info!("listening on {scheme}://{local}{auth}");

    let engine =
        poll::Engine::start(sources, settings).map_err(|e| format!("start the engine: {e}"))?;

    let (shutdown_tx, shutdown) = bounded::<()>(1);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| format!("install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                log::info!("signal {signal} received: shutting down");
                let _ = shutdown_tx.send(());
            }
        })
        .map_err(|e| format!("start signal thread: {e}"))?;

    let served = http::serve(
        listener,
        engine.views(),
        shutdown,
        render_options(config),
        web,
    );
    engine.stop();
    served.map_err(|e| Failure::Runtime(format!("serve: {e}")))?;
    log::info!("stopped");
    Ok(())
}

/// The first socket systemd passes (`LISTEN_FDS`, `LISTEN_PID`), which must be a listening
/// TCP socket.
fn systemd_listener() -> Result<TcpListener, String> {
    let mut fds = listenfd::ListenFd::from_env();
    match fds.take_tcp_listener(0) {
        Ok(Some(listener)) => Ok(listener),
        Ok(None) => Err("--web.systemd-socket: no socket passed by systemd (LISTEN_FDS is not set for this process)".to_string()),
        Err(e) => Err(format!("--web.systemd-socket: the socket passed is not a listening TCP socket: {e}")),
    }
}

/// Binds the listen address; `:PORT` means every interface, IPv6 and IPv4 where possible.
fn bind(address: &str) -> Result<TcpListener, String> {
    let fail = |e: std::io::Error| format!("listen {address}: {}", fsio::why(&e));
    match address.strip_prefix(':') {
        Some(port) => TcpListener::bind(format!("[::]:{port}"))
            .or_else(|_| TcpListener::bind(format!("0.0.0.0:{port}")))
            .map_err(fail),
        None => TcpListener::bind(address).map_err(fail),
    }
}
