//! The command line as a user meets it: `--help` of the real binary against the parser's own
//! table of flags, so that no flag the parser takes can be missing from the help.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use x509_certificate_exporter::cli::FLAGS;

/// The flags `--help` documents, from the lines that start with a dash: each name (short and
/// long) with the placeholder its line shows (`=PATH`), or none for a switch.
fn documented(help: &str) -> BTreeMap<String, Option<String>> {
    let mut names = BTreeMap::new();
    for line in help.lines() {
        let line = line.trim_start();
        if !line.starts_with('-') {
            continue;
        }
        let (column, description) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("no description on the flag's own line: {line:?}"));
        assert!(!description.trim().is_empty(), "{line:?}");
        let mut placeholder = None;
        // Long last: `-f, --watch-file=PATH`; the short form shares the long one's value.
        for name in column.split(", ").collect::<Vec<_>>().into_iter().rev() {
            let name = match name.split_once('=') {
                Some((name, value)) => {
                    placeholder = Some(value.to_string());
                    name
                }
                None => name,
            };
            assert!(
                names
                    .insert(name.to_string(), placeholder.clone())
                    .is_none(),
                "{name} documented twice"
            );
        }
    }
    names
}

#[test]
fn help_lists_every_flag() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    let documented = documented(&help);
    for flag in FLAGS {
        // A switch that takes `=true|false` shows how to turn it off.
        let want = match flag.boolean {
            true => Some("false".to_string()),
            false => flag.value.map(str::to_string),
        };
        for name in [Some(flag.long), flag.short].into_iter().flatten() {
            assert_eq!(
                documented.get(name),
                Some(&want),
                "{name} (value {want:?}) is not documented as such in --help:\n{help}"
            );
        }
    }
    // Nor does the help document a flag the parser does not take.
    for name in documented.keys() {
        assert!(
            FLAGS
                .iter()
                .any(|f| f.long == name || f.short == Some(name.as_str())),
            "--help documents {name}, which the parser refuses"
        );
    }
    // The healthcheck usage line names every flag healthcheck takes.
    let usage = help
        .lines()
        .find(|l| l.contains("x509-certificate-exporter healthcheck"))
        .unwrap();
    for flag in FLAGS.iter().filter(|f| f.healthcheck) {
        let name = flag.short.unwrap_or(flag.long);
        assert!(usage.contains(&format!("[{name}")), "{name} in {usage:?}");
    }
}

#[test]
fn every_flag_of_the_table_is_taken_by_the_binary() {
    // Each switch alone, and each flag given a value it refuses: the binary never answers
    // "unknown flag" for a flag of the table.
    for flag in FLAGS {
        for name in [Some(flag.long), flag.short].into_iter().flatten() {
            let args: Vec<&str> = match flag.value {
                None => vec![name, "--listen-address=nowhere"],
                Some(_) => vec!["--listen-address=nowhere", name],
            };
            let out = run(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("unknown flag"), "{args:?}: {err}");
        }
    }
}

/// A valid value for each placeholder the Kubernetes flags take (valid, so that only the
/// missing `--watch-kube-secrets` can be refused).
fn sample(placeholder: &str) -> &'static str {
    match placeholder {
        "FILE" => "/nonexistent/kubeconfig",
        "TYPE:KEYREGEX" => "kubernetes.io/tls:tls\\.crt",
        "KEYS" => "ca.crt",
        "NAME" => "team-a",
        "KEY[=VALUE]" => "app=web",
        "KEY" => "app",
        "[NAMESPACE/]NAME:KEY" => "keystore-password:password",
        "DUR" => "1m",
        "QPS" => "5",
        "N" => "3",
        other => panic!("no sample value for {other}: add one here"),
    }
}

#[test]
fn kubernetes_flags_without_watch_kube_secrets_exit_two_naming_the_flag() {
    let kube_only: Vec<_> = FLAGS.iter().filter(|f| f.kube_only).collect();
    assert!(kube_only.len() >= 14, "{kube_only:?}");
    for flag in kube_only {
        let value = match flag.boolean {
            true => "--debug",
            false => sample(
                flag.value
                    .expect("a Kubernetes flag takes a value or is boolean"),
            ),
        };
        for name in [Some(flag.long), flag.short].into_iter().flatten() {
            let args = ["--listen-address=127.0.0.1:0", name, value];
            let out = run_briefly(&args)
                .unwrap_or_else(|| panic!("{args:?}: taken without --watch-kube-secrets"));
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
            assert!(
                err.contains(flag.long) && err.contains("--watch-kube-secrets"),
                "{args:?}: {err}"
            );
        }
    }
}

#[test]
fn listen_address_port_only_serves_ipv4_and_ipv6_loopback() {
    // A port free a moment ago on both families (or IPv4 alone where there is no IPv6).
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("listen-port");
    let now = now();
    dir.write("a.pem", pem("anywhere", now - 60, now + 86_400));
    let exporter = Exporter::start(&[&format!("--listen-address=:{port}"), "-d", &dir.str("")]);
    let listening = exporter.wait_log("listening on http://", LOG_WAIT);
    let wildcard = if v6 { "[::]" } else { "0.0.0.0" };
    assert!(
        listening.contains(&format!("http://{wildcard}:{port}")),
        "{listening}"
    );
    let mut addrs = vec![format!("127.0.0.1:{port}")];
    if v6 {
        addrs.push(format!("[::1]:{port}"));
    }
    for addr in addrs {
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let response = request(addr, "GET", "/metrics", &[]);
            assert_eq!(response.status, 200, "{addr}");
            if response.text().contains("subject_CN=\"anywhere\"") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{addr}: not served");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Starts the binary through `env` with `env_args` (which set or unset RUST_LOG over what the
/// harness sets) and `args`, watching one certificate directory.
fn with_log_env(env_args: &[&str], args: &[&str]) -> (Exporter, TempDir) {
    let dir = TempDir::new("log-level");
    let now = now();
    dir.write("a.pem", pem("logged", now - 60, now + 86_400));
    let mut cmd = std::process::Command::new("env");
    cmd.args(env_args)
        .arg(BIN)
        .args(["--listen-address=127.0.0.1:0", "-d", &dir.str("")])
        .args(args);
    (Exporter::spawn(cmd), dir)
}

#[test]
fn debug_gives_debug_lines_and_rust_log_overrides_it() {
    // Each source's refresh is logged at debug level, before its first pass is (at info).
    let refreshed = "refreshed 1 items in";
    let first_pass = "1 certificates from 1 items";
    let (exporter, _dir) = with_log_env(&["-u", "RUST_LOG"], &["--debug"]);
    let line = exporter.wait_log(refreshed, LOG_WAIT);
    assert!(line.contains("DEBUG"), "{line}");
    drop(exporter);
    for (env_args, args, why) in [
        (&["-u", "RUST_LOG"][..], &[][..], "without --debug"),
        (
            &["RUST_LOG=info"],
            &["--debug"],
            "RUST_LOG=info over --debug",
        ),
    ] {
        let (exporter, _dir) = with_log_env(env_args, args);
        exporter.wait_log(first_pass, LOG_WAIT);
        let log = exporter.log_lines();
        assert!(
            !log.iter().any(|l| l.contains("DEBUG")),
            "{why}: debug lines logged:\n{}",
            log.join("\n")
        );
    }
    // And RUST_LOG=debug without the flag gives them too.
    let (exporter, _dir) = with_log_env(&["RUST_LOG=debug"], &[]);
    exporter.wait_log(refreshed, LOG_WAIT);
}

#[test]
fn a_bad_pool_size_exits_two_naming_the_flag() {
    for bad in ["0", "65", "many", ""] {
        let arg = format!("--workers={bad}");
        let out = run_briefly(&["--listen-address=127.0.0.1:0", &arg])
            .unwrap_or_else(|| panic!("{arg}: taken"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{arg}: {err}");
        assert_eq!(err.lines().count(), 1, "{arg}: one line: {err}");
        assert!(err.contains("--workers: "), "{arg}: {err}");
    }
}
