//! The runtime image without a container engine: `make rootfs` is exactly the last stage of
//! the Containerfile, run here chrooted as UID 65532 with a certificate directory mounted
//! read-only, as `docker run -v /path/to/certs:/certs:ro IMAGE --watch-dir=/certs` would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;

#[test]
fn the_rootfs_holds_one_static_binary_under_ten_megabytes() {
    let root = rootfs();
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    assert_eq!(files, ["usr/local/bin/x509-certificate-exporter"]);
    let binary = std::fs::read(root.join("usr/local/bin/x509-certificate-exporter")).unwrap();
    assert!(binary.len() <= 10_000_000, "{} bytes", binary.len());
    assert_eq!(&binary[..4], b"\x7fELF");
    // No program interpreter: nothing to load from an empty image.
    let u16_at = |at: usize| u16::from_le_bytes([binary[at], binary[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(binary[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let p_type = u32::from_le_bytes(binary[phoff + i * phentsize..][..4].try_into().unwrap());
        assert_ne!(p_type, 3, "PT_INTERP: the binary is dynamically linked");
    }
    let (mut cmd, _root) = in_image(&["--version"], &[]);
    let out = cmd.stderr(Stdio::piped()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("x509-certificate-exporter "));
}

#[test]
fn the_image_serves_a_read_only_certificate_directory_as_uid_65532() {
    let certs = TempDir::new("image-certs");
    let now = now();
    certs.write("site.pem", pem("site.example", now - 60, now + 30 * 86_400));
    certs.write("old.crt", pem("old.example", now - 7200, now - 3600));
    let secret = certs.write("root-only.pem", pem("root-only", now, now + 100));
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (cmd, _root) = in_image(
        &["--watch-dir=/certs", "--listen-address=127.0.0.1:0"],
        &[(&certs.0, "/certs")],
    );
    let exporter = Exporter::spawn(cmd);

    let status = std::fs::read_to_string(format!("/proc/{}/status", exporter.child.id())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "65532"),
        "{uid}"
    );

    assert_eq!(
        exporter.get("/healthz").text().trim(),
        "{\"status\":\"UP\"}"
    );
    let m = exporter.metrics();
    assert_eq!(exporter.get("/readyz").status, 200);
    let site = m.one("x509_cert_not_after", &[("subject_CN", "site.example")]);
    assert_eq!(site.labels["filepath"], "/certs/site.pem");
    assert_eq!(site.value, (now + 30 * 86_400) as f64);
    assert_eq!(
        m.one("x509_cert_expired", &[("subject_CN", "old.example")])
            .value,
        1.0
    );
    // As a non-root user, a root-only file is a read error, not a crash.
    assert_eq!(m.value("x509_read_errors"), 1.0);
    exporter.wait_log("read /certs/root-only.pem: permission denied", LOG_WAIT);
    promtool_accepts(&m.body);

    // The image's health check: no shell, no curl, the binary probes itself.
    let listen = format!("--listen-address={}", exporter.addr);
    let (mut probe, _r) = in_image(&["healthcheck", &listen], &[]);
    assert!(probe.status().unwrap().success());
    drop(exporter);
    let (mut probe, _r) = in_image(&["healthcheck", &listen], &[]);
    let out = probe.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("healthcheck"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespace PIDs of a process, host first (`NSpid:` of /proc/PID/status).
fn ns_pids(pid: u32) -> Vec<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    line.split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// Stops the exporter and checks that nothing of its container is left: no process, and no
/// mount under its root in this mount namespace.
fn stop_and_check_cleanup(exporter: Exporter, root: TempDir) {
    let pid1 = exporter.container_pid1();
    drop(exporter);
    // Killed, it may stay a zombie for a moment until whoever inherited it reaps it.
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid1}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
                Some(state != "Z" && state != "X")
            })
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while running() {
        assert!(
            std::time::Instant::now() < deadline,
            "PID {pid1} is still running"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(root.0.to_str().unwrap()), "{mounts}");
    let dir = root.0.clone();
    drop(root);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "status {:?}, stdout {:?}, stderr {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_health_check_probes_the_port_the_exporter_listens_on() {
    // The image's HEALTHCHECK is `healthcheck` with no flags, run in the container where the
    // exporter is PID 1, started here with another port than the default.
    let containerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Containerfile"))
            .unwrap();
    assert!(
        containerfile
            .contains("CMD [\"/usr/local/bin/x509-certificate-exporter\", \"healthcheck\"]\n"),
        "{containerfile}"
    );
    let (cmd, root) = in_container(&["--listen-address=:8080"], &[]);
    let exporter = Exporter::spawn(cmd);
    assert_eq!(exporter.addr.port(), 8080);
    let pid1 = exporter.container_pid1();
    assert_eq!(ns_pids(pid1).last().unwrap(), "1", "the exporter is PID 1");

    let out = exporter.exec_in_container(&["healthcheck"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(out.stderr.is_empty(), "{}", output_text(&out));
    // A flag given to healthcheck wins over the exporter's: nothing listens on 9793 here.
    let out = exporter.exec_in_container(&["healthcheck", "--listen-address=:9793"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("healthcheck 127.0.0.1:9793: "),
        "{}",
        output_text(&out)
    );
    stop_and_check_cleanup(exporter, root);
}

#[test]
fn the_health_check_speaks_tls_when_the_exporter_does() {
    let web = TempDir::new("image-web");
    write_tls_files(&web, "exporter");
    web.write(
        "web.yml",
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n",
    );
    let (cmd, root) = in_container(
        &[
            "--listen-address=127.0.0.1:9443",
            "--web.config.file=/etc/x509/web.yml",
        ],
        &[(&web.0, "/etc/x509")],
    );
    let exporter = Exporter::spawn(cmd);
    assert_eq!(exporter.addr.to_string(), "127.0.0.1:9443");
    exporter.wait_log("listening on https://127.0.0.1:9443", LOG_WAIT);

    let out = exporter.exec_in_container(&["healthcheck"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(out.stderr.is_empty(), "{}", output_text(&out));
    // The address given, the web config still the exporter's.
    let out = exporter.exec_in_container(&["healthcheck", "-b", "127.0.0.1:9443"]);
    assert!(out.status.success(), "{}", output_text(&out));
    stop_and_check_cleanup(exporter, root);
}
