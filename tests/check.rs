//! `check` as a user and a monitoring system meet it, through the real binary: its exit
//! statuses, the table sorted by time left, the JSON, the textfile (promtool, atomic under
//! readers racing the writes), and the textfile served by Debian's node_exporter and scraped
//! by a real Prometheus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::prometheus::{free_port, Prometheus};
use common::*;

const DAY: i64 = 86_400;
/// Added to each certificate's days left (see [`certs`]).
const MORE: i64 = DAY / 2 + 1800;

fn check(args: &[&str]) -> Output {
    Command::new(BIN).arg("check").args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// A directory holding one certificate per (file name, days left), valid since a day ago.
fn certs(name: &str, files: &[(&str, i64)]) -> TempDir {
    let dir = TempDir::new(name);
    let now = now();
    for (file, days) in files {
        let cn = file.trim_end_matches(".pem");
        // 12 h 30 min more, so that the table's "Nd 12h" holds for the whole test.
        dir.write(file, pem(cn, now - 30 * DAY, now + days * DAY + MORE));
    }
    dir
}

#[test]
fn exit_statuses_follow_the_monitoring_plugins() {
    let ok = certs("check-ok", &[("year.pem", 365), ("month.pem", 40)]);
    let warn = certs("check-warn", &[("year.pem", 365), ("soon.pem", 20)]);
    let crit = certs("check-crit", &[("soon.pem", 20), ("sooner.pem", 10)]);
    let expired = certs("check-expired", &[("gone.pem", -3)]);
    let status = |args: &[&str]| check(args).status.code();
    assert_eq!(status(&["-d", &ok.str("")]), Some(0));
    assert_eq!(status(&["-d", &warn.str("")]), Some(1));
    assert_eq!(status(&["-d", &crit.str("")]), Some(2));
    assert_eq!(status(&["-d", &expired.str("")]), Some(2));
    // The thresholds move the line: 20 days left is OK under --warn=15d, critical under
    // --crit=21d, and `d` combines with Go's units.
    assert_eq!(status(&["-d", &warn.str(""), "--warn=15d"]), Some(0));
    assert_eq!(
        status(&["-d", &warn.str(""), "--warn=30d", "--crit=21d"]),
        Some(2)
    );
    assert_eq!(
        status(&["-d", &warn.str(""), "--warn=500h", "--crit=1d"]),
        Some(1)
    );

    // Unknown: a usage error of check itself (where the exporter says 2), and a source
    // that cannot be read.
    for args in [
        &["-d", &ok.str(""), "--output=yaml"][..],
        &["-d", &ok.str(""), "--nope"],
        &["-d", &ok.str(""), "-b", ":9793"],
        &[],
    ] {
        let out = check(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("x509-certificate-exporter: check: "));
        assert!(out.stdout.is_empty());
    }
    assert_eq!(
        run(&["--warn=1d"]).status.code(),
        Some(2),
        "the exporter's usage"
    );
    ok.write("broken.pem", "not a certificate\n");
    let out = check(&["-d", &ok.str("")]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stdout(&out).contains("broken.pem: no certificate found"));
    let missing = ok.str("missing.pem");
    assert_eq!(status(&["-f", &missing]), Some(3));

    // Precedence: critical before unknown before warning.
    warn.write("broken.pem", "not a certificate\n");
    crit.write("broken.pem", "not a certificate\n");
    assert_eq!(status(&["-d", &warn.str("")]), Some(3));
    assert_eq!(status(&["-d", &crit.str("")]), Some(2));
    assert_eq!(
        status(&["-d", &expired.str(""), "-f", &missing]),
        Some(2),
        "a critical certificate is not hidden by an unreadable source"
    );
}

#[test]
fn the_table_is_sorted_by_time_left() {
    let dir = certs(
        "check-table",
        &[
            ("c-year.pem", 365),
            ("a-expired.pem", -2),
            ("b-soon.pem", 3),
            ("d-month.pem", 20),
        ],
    );
    dir.write("z-broken.pem", "garbage");
    let out = check(&["-d", &dir.str("")]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "CRITICAL - 4 certificates: 1 expired, 1 critical, 1 warning, 1 ok; 1 read failure \
         (warn below 28d, crit below 14d)"
    );
    assert_eq!(lines[1], "");
    let header: Vec<&str> = lines[2].split("  ").filter(|c| !c.is_empty()).collect();
    assert_eq!(
        header,
        ["STATUS", "NOT AFTER (UTC)", "LEFT", "SUBJECT CN", "WHERE"]
    );
    let rows: Vec<Vec<&str>> = lines[3..7]
        .iter()
        .map(|l| {
            l.split("  ")
                .filter(|c| !c.is_empty())
                .map(str::trim)
                .collect()
        })
        .collect();
    let column = |i: usize| rows.iter().map(|r| r[i]).collect::<Vec<_>>();
    assert_eq!(column(0), ["EXPIRED", "CRITICAL", "WARNING", "OK"]);
    assert_eq!(
        column(2),
        ["expired 1d 11h ago", "3d 12h", "20d 12h", "365d 12h"]
    );
    assert_eq!(column(3), ["a-expired", "b-soon", "d-month", "c-year"]);
    assert_eq!(
        column(4),
        ["a-expired.pem", "b-soon.pem", "d-month.pem", "c-year.pem"].map(|f| dir.str(f))
    );
    // Every column starts where its header does.
    let at = |line: &str, cell: &str| line.find(cell).unwrap();
    for (row, line) in rows.iter().zip(&lines[3..7]) {
        for (cell, head) in row.iter().zip(&header) {
            assert_eq!(at(line, cell), at(lines[2], head), "{line}");
        }
    }
    // The date is the certificate's notAfter in UTC.
    let not_after = Command::new("openssl")
        .args(["x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in"])
        .arg(dir.path("c-year.pem"))
        .output()
        .unwrap();
    let iso = String::from_utf8(not_after.stdout).unwrap();
    let iso = iso
        .trim()
        .trim_start_matches("notAfter=")
        .trim_end_matches('Z');
    assert_eq!(column(1)[3], iso);
    assert_eq!(
        &lines[7..],
        [
            "",
            "READ FAILURES",
            &format!("read {}: no certificate found", dir.str("z-broken.pem")),
        ]
    );
}

#[test]
fn json_for_scripts() {
    let dir = certs("check-json", &[("later.pem", 100), ("soon.pem", 20)]);
    dir.write("broken.pem", "garbage");
    let before = now();
    let out = check(&[
        "-d",
        &dir.str(""),
        "--output=json",
        "--warn=30d",
        "--expose-secret-label=x",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a Kubernetes flag without its source"
    );
    let out = check(&["-d", &dir.str(""), "--output=json", "--warn=30d"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "unknown");
    assert_eq!(json["exit_code"], 3);
    assert_eq!(json["warn_seconds"], 30 * DAY);
    assert_eq!(json["crit_seconds"], 14 * DAY);
    let checked_at = json["checked_at"].as_i64().unwrap();
    assert!((before..=now()).contains(&checked_at));
    let certs = json["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2);
    let soon = &certs[0];
    assert_eq!(soon["status"], "warning");
    assert_eq!(soon["where"], dir.str("soon.pem"));
    assert_eq!(soon["labels"]["subject_CN"], "soon");
    assert_eq!(soon["labels"]["issuer_CN"], "soon");
    assert_eq!(soon["labels"]["filename"], "soon.pem");
    assert_eq!(soon["labels"]["filepath"], dir.str("soon.pem"));
    let not_after = soon["not_after"].as_i64().unwrap();
    assert_eq!(
        soon["seconds_left"].as_i64().unwrap(),
        not_after - checked_at
    );
    assert_eq!(
        not_after - soon["not_before"].as_i64().unwrap(),
        50 * DAY + MORE
    );
    assert_eq!(certs[1]["status"], "ok");
    assert_eq!(certs[1]["labels"]["subject_CN"], "later");
    assert_eq!(
        soon["facts"],
        serde_json::json!({}),
        "no facts unless asked"
    );
    assert_eq!(
        json["errors"],
        serde_json::json!([format!(
            "read {}: no certificate found",
            dir.str("broken.pem")
        )])
    );

    // `-l` and a value that needs escaping: the labels are those of the series, unescaped.
    let odd = TempDir::new("check-json-odd");
    let now = now();
    odd.write(
        "odd.pem",
        pem("a \"quoted\\ name", now - DAY, now + 400 * DAY),
    );
    let out = check(&["-d", &odd.str(""), "--output", "json", "-l", "subject_CN"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(
        json["certificates"][0]["labels"],
        serde_json::json!({"subject_CN": "a \"quoted\\ name"})
    );
    assert_eq!(json["certificates"][0]["where"], "-");
}

#[test]
fn facts_and_leaf_only_in_json_and_the_textfile() {
    let dir = TempDir::new("check-facts");
    let now = now();
    let ca = Cert::self_signed(&Spec::new("facts-ca", now - DAY, now + 900 * DAY).ca());
    let leaf = Cert::signed(
        &Spec::new("facts-leaf", now - DAY, now + 20 * DAY).sans(&["web.example"]),
        &ca,
    );
    dir.write("certs/tls.crt", [leaf.pem(), ca.pem()].concat());
    let certs = dir.str("certs");
    let out = check(&[
        "-d",
        &certs,
        "--output=json",
        "--expose-cert-info",
        "--leaf-only",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = json["certificates"].as_array().unwrap();
    assert_eq!(found.len(), 1, "the CA behind the leaf is left out");
    assert_eq!(found[0]["labels"]["subject_CN"], "facts-leaf");
    let facts = &found[0]["facts"];
    assert_eq!(facts["chain_position"], "leaf");
    assert_eq!(facts["ca"], "false");
    assert_eq!(facts["subject_alt_names"], "DNS:web.example");

    let textfile = dir.path("out/x509.prom");
    std::fs::create_dir_all(dir.path("out")).unwrap();
    let out = check(&[
        "-d",
        &certs,
        "--expose-cert-info",
        &format!("--textfile={}", textfile.display()),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let body = std::fs::read_to_string(&textfile).unwrap();
    promtool_accepts(&body);
    let m = Metrics::parse(&body);
    assert_eq!(m.count("x509_cert_info"), 2, "both, without --leaf-only");
    let ca_info = m.one("x509_cert_info", &[("subject_CN", "facts-ca")]);
    assert_eq!(ca_info.labels["chain_position"], "root");
}

fn read_dir_names(dir: &TempDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn the_textfile_is_the_exposition_written_whole() {
    let dir = certs("check-textfile", &[("soon.pem", 20), ("later.pem", 100)]);
    dir.write("broken.pem", "garbage");
    let out_dir = TempDir::new("check-textfile-out");
    let path = out_dir.str("x509.prom");
    // An umask that would keep node_exporter (another user) from reading the file.
    let out = Command::new("sh")
        .args(["-c", "umask 077 && exec \"$0\" check \"$@\""])
        .arg(BIN)
        .args(["-d", &dir.str(""), "--textfile", &path])
        .args([
            "--expose-relative-metrics",
            "--expose-per-cert-error-metrics",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "a read failure: unknown");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout with --textfile alone"
    );
    assert!(
        stderr(&out).contains("broken.pem: no certificate found"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        read_dir_names(&out_dir),
        ["x509.prom"],
        "no temporary file left"
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    let text = std::fs::read_to_string(&path).unwrap();
    promtool_accepts(&text);
    let metrics = Metrics::parse(&text);
    assert_eq!(metrics.count("x509_cert_not_after"), 2);
    assert_eq!(metrics.count("x509_cert_expires_in_seconds"), 2);
    assert_eq!(metrics.value("x509_read_errors"), 1.0);
    let broken = metrics.one("x509_cert_error", &[("filename", "broken.pem")]);
    assert_eq!(broken.value, 1.0);
    let soon = metrics.one("x509_cert_not_after", &[("subject_CN", "soon")]);
    assert!(soon.value > now() as f64 + 20.0 * DAY as f64);

    // With --output too, both; a rewrite replaces the file whole.
    std::fs::remove_file(dir.path("broken.pem")).unwrap();
    let out = check(&["-d", &dir.str(""), "--textfile", &path, "--output=json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "warning");
    let metrics = Metrics::parse(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(metrics.value("x509_read_errors"), 0.0);
    assert_eq!(
        metrics.count("x509_cert_expires_in_seconds"),
        0,
        "flags of this run"
    );
    assert_eq!(read_dir_names(&out_dir), ["x509.prom"]);

    // A directory that does not exist: unknown, and nothing written.
    let out = check(&["-d", &dir.str(""), "--textfile", &out_dir.str("no/x.prom")]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("no such file or directory"),
        "{}",
        stderr(&out)
    );
}

/// Readers read the textfile without pause while `check` rewrites it, each time with other
/// content: every read is one of the two whole files, never a part of one.
#[test]
fn readers_never_see_a_half_written_textfile() {
    let now = now();
    let (a, b) = (TempDir::new("check-race-a"), TempDir::new("check-race-b"));
    // Files of some size (about 150 and 90 KB), so that a write takes more than one
    // system call and a reader could fall between two.
    for i in 0..400 {
        a.write(
            &format!("a{i}.pem"),
            pem(&format!("a-{i:03}"), now - DAY, now + 90 * DAY),
        );
    }
    for i in 0..250 {
        b.write(
            &format!("b{i}.pem"),
            pem(&format!("b-{i:03}"), now - DAY, now + 60 * DAY),
        );
    }
    let out_dir = TempDir::new("check-race-out");
    let path = out_dir.path("x509.prom");
    let path_text = path.display().to_string();
    let write = |source: &TempDir| {
        let out = check(&["-d", &source.str(""), "--textfile", &path_text]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        std::fs::read_to_string(&path).unwrap()
    };
    let (whole_a, whole_b) = (write(&a), write(&b));
    assert!(whole_a.len() > 100_000 && whole_b.len() > 50_000 && whole_a != whole_b);

    let done = AtomicBool::new(false);
    let reads = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let text = std::fs::read_to_string(&path).unwrap();
                    if text != whole_a && text != whole_b {
                        done.store(true, Ordering::Relaxed);
                        panic!(
                            "a read saw neither file whole: {} bytes, ending {:?}",
                            text.len(),
                            &text[text.len().saturating_sub(80)..]
                        );
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for round in 0..40 {
            if done.load(Ordering::Relaxed) {
                break;
            }
            let source = if round % 2 == 0 { &a } else { &b };
            let out = check(&["-d", &source.str(""), "--textfile", &path_text]);
            assert_eq!(out.status.code(), Some(0));
        }
        done.store(true, Ordering::Relaxed);
    });
    assert!(
        reads.load(Ordering::Relaxed) > 100,
        "the readers hardly ran"
    );
    assert_eq!(read_dir_names(&out_dir), ["x509.prom"]);
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The recipe of the README: `check --textfile` into node_exporter's textfile directory,
/// node_exporter serves it, Prometheus scrapes node_exporter and finds the certificate
/// that expires soon.
#[test]
fn node_exporter_serves_the_textfile_to_prometheus() {
    let dir = certs("check-node", &[("soon.pem", 5), ("later.pem", 200)]);
    let textfiles = TempDir::new("check-node-textfiles");
    let out = check(&[
        "-d",
        &dir.str(""),
        "--textfile",
        &textfiles.str("x509-certificate-exporter.prom"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // On a port of its own: a node_exporter the package started on :9100 is not this one.
    let node_addr = format!("127.0.0.1:{}", free_port());
    let node = Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address={node_addr}"))
        .args(["--collector.disable-defaults", "--collector.textfile"])
        .arg(format!(
            "--collector.textfile.directory={}",
            textfiles.str("")
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-node-exporter (Debian package; scripts/test-deps.sh) is needed");
    let _node = Killed(node);

    let prometheus = Prometheus::with_config(
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{node_addr}']\n"
        ),
        &[],
    );
    prometheus.query_until("up{job=\"node\"} == 1", |r| r.len() == 1);
    let expiring = prometheus.query_until(
        "x509_cert_not_after{job=\"node\"} - time() < 86400 * 14",
        |r| !r.is_empty(),
    );
    let found: Vec<(&str, &str)> = expiring
        .iter()
        .map(|r| {
            (
                r["metric"]["subject_CN"].as_str().unwrap(),
                r["metric"]["filepath"].as_str().unwrap(),
            )
        })
        .collect();
    let soon = dir.str("soon.pem");
    assert_eq!(found, [("soon", soon.as_str())]);
    // node_exporter read the file without complaint.
    let failed =
        prometheus.query_until("node_textfile_scrape_error{job=\"node\"}", |r| r.len() == 1);
    assert_eq!(failed[0]["value"][1], "0");
    let errors = prometheus.query_until("x509_read_errors{job=\"node\"}", |r| r.len() == 1);
    assert_eq!(errors[0]["value"][1], "0");
}

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests");

/// `check` with these arguments takes them: whatever it finds, it prints its table and
/// does not stop at a usage error (which prints nothing on stdout).
fn check_accepts(args: &[String]) -> Output {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        stdout(&out).contains("STATUS") && !stderr(&out).contains("check: "),
        "{args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// The oneshot unit and its timer pass systemd-analyze, run `check` as root with a
/// command line it takes, write only where node_exporter reads, and count warnings and
/// critical certificates as a successful run.
#[test]
fn the_systemd_timer_runs_a_check_that_systemd_accepts() {
    let dir = TempDir::new("check-unit");
    let unit = std::fs::read_to_string(format!(
        "{MANIFESTS}/systemd/x509-certificate-exporter-check.service"
    ))
    .unwrap();
    let timer = std::fs::read_to_string(format!(
        "{MANIFESTS}/systemd/x509-certificate-exporter-check.timer"
    ))
    .unwrap();
    let textfiles = "/var/lib/prometheus/node-exporter";
    for needed in [
        "Type=oneshot",
        "User=root",
        "SuccessExitStatus=1 2",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateNetwork=yes",
        &format!("ReadWritePaths={textfiles}\n"),
    ] {
        assert!(unit.contains(needed), "{needed}");
    }
    for needed in ["OnCalendar=", "Persistent=yes", "RandomizedDelaySec="] {
        assert!(timer.contains(needed), "{needed}");
    }
    // verify wants ExecStart to exist: point it at the binary under test.
    let path = dir.write(
        "x509-certificate-exporter-check.service",
        unit.replace("/usr/local/bin/x509-certificate-exporter", BIN),
    );
    let timer = dir.write("x509-certificate-exporter-check.timer", timer);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .arg(&timer)
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed by the tests");
    assert!(out.status.success(), "{}", stderr(&out));

    // The command line, with the textfile moved into a directory of the test's.
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut args: Vec<String> = exec.split_whitespace().skip(1).map(String::from).collect();
    assert_eq!(args[0], "check");
    let textfile = args
        .iter_mut()
        .find(|a| a.starts_with("--textfile="))
        .unwrap();
    assert!(textfile.starts_with(&format!("--textfile={textfiles}/")));
    assert!(textfile.ends_with(".prom"));
    *textfile = format!("--textfile={}", dir.str("x509.prom"));
    args.push("--output=table".into());
    check_accepts(&args);
    assert!(dir.path("x509.prom").exists());
}

/// The CronJob runs `check` on the Secrets and caBundles with a command line it takes,
/// in a pod locked down as the Deployment's, and fails its Job at once on exit 2.
#[test]
fn the_cronjob_runs_a_check_it_takes() {
    let rel = "kubernetes/check/cronjob-check.yaml";
    let text = std::fs::read_to_string(format!("{MANIFESTS}/{rel}")).unwrap();
    let doc = yaml_rust2::YamlLoader::load_from_str(&text)
        .unwrap()
        .remove(0);
    assert_eq!(doc["kind"].as_str(), Some("CronJob"));
    let job = &doc["spec"]["jobTemplate"]["spec"];
    let rule = &job["podFailurePolicy"]["rules"][0];
    assert_eq!(rule["action"].as_str(), Some("FailJob"));
    assert_eq!(rule["onExitCodes"]["values"][0].as_i64(), Some(2));
    let pod = &job["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    assert_eq!(
        pod["serviceAccountName"].as_str(),
        Some("x509-certificate-exporter")
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    let c = &pod["containers"][0];
    assert_eq!(
        rule["onExitCodes"]["containerName"].as_str(),
        c["name"].as_str()
    );
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"][0].as_str(),
        Some("ALL")
    );
    let args: Vec<String> = c["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(args[0], "check");
    // Against an API server that does not answer: the table, with the read failures.
    let cluster = TempDir::new("check-cronjob");
    let kubeconfig = cluster.write(
        "config",
        "apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts:\n- name: x\n  context: {cluster: x, user: x}\nclusters:\n- name: x\n  cluster: {server: 'http://127.0.0.1:9'}\nusers:\n- name: x\n  user: {token: t}\n",
    );
    let out = Command::new(BIN)
        .args(&args)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("UNKNOWN - 0 certificates"), "{text}");
    assert!(text.contains("(warn below 14d, crit below 14d)"), "{text}");
    assert!(text.contains("READ FAILURES\nlist "), "{text}");
}
