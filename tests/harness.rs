//! The test harness itself: waiting for a line of the exporter's log, and cleaning up the
//! whole process tree of an exporter. A stand-in shell process plays the exporter, so that
//! when each line is written is known.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A stand-in that announces an address as the exporter does, then runs `then`.
fn stand_in(then: &str) -> Exporter {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!("echo 'INFO listening on http://127.0.0.1:9' >&2; {then}"),
    ]);
    Exporter::spawn(cmd)
}

#[test]
fn wait_log_sees_a_line_written_after_the_start() {
    // The line comes a second after the exporter is up, as an error found by the first
    // refresh may: reading the log at once misses it, waiting for it does not.
    let exporter = stand_in("sleep 1; echo 'WARN cluster \"c\": bad' >&2; sleep 30");
    assert!(!exporter.log_lines().iter().any(|l| l.contains("WARN")));
    let started = Instant::now();
    let line = exporter.wait_log(["WARN", "cluster \"c\""], LOG_WAIT);
    assert_eq!(line, "WARN cluster \"c\": bad");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn wait_log_returns_the_first_matching_line_and_wait_log_all_every_one() {
    let exporter =
        stand_in("echo 'WARN a 1' >&2; echo 'INFO a 2' >&2; echo 'WARN b' >&2; sleep 30");
    exporter.wait_log("WARN b", LOG_WAIT);
    assert_eq!(
        exporter.wait_log_all("WARN", LOG_WAIT),
        ["WARN a 1", "WARN b"]
    );
    assert_eq!(exporter.wait_log("WARN", LOG_WAIT), "WARN a 1");
    assert_eq!(exporter.wait_log_all(["a", "2"], LOG_WAIT), ["INFO a 2"]);
}

#[test]
fn wait_log_panics_with_the_whole_log() {
    let exporter = stand_in("echo 'INFO something else' >&2; sleep 30");
    exporter.wait_log("something else", LOG_WAIT);
    let started = Instant::now();
    let panic = catch_unwind(AssertUnwindSafe(|| {
        exporter.wait_log("never written", Duration::from_millis(300))
    }))
    .unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(message.contains("\"never written\""), "{message}");
    assert!(message.contains("INFO something else"), "{message}");
    assert!(
        message.contains("listening on http://127.0.0.1:9"),
        "{message}"
    );
}

#[test]
fn wait_log_gives_up_as_soon_as_the_log_ends() {
    let exporter = stand_in("echo 'ERROR exiting' >&2");
    let started = Instant::now();
    let panic = catch_unwind(AssertUnwindSafe(|| {
        exporter.wait_log("never written", LOG_WAIT)
    }));
    assert!(panic.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn dropping_an_exporter_kills_the_processes_under_it() {
    // `unshare --fork`, whose child outlives it when it is killed, as the exporter under
    // in_container() does; here the child has a child of its own.
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--fork",
        "sh",
        "-c",
        "echo 'INFO listening on http://127.0.0.1:9' >&2; sleep 60 & echo \"INFO child $!\" >&2; wait",
    ]);
    let exporter = Exporter::spawn(cmd);
    let line = exporter.wait_log("INFO child ", LOG_WAIT);
    let pid: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let shell = children(exporter.child.id());
    assert_eq!(shell.len(), 1);
    assert_eq!(children(shell[0]), [pid]);
    drop(exporter);
    // Killed and reaped by its new parent: gone, or at most a zombie for an instant.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| stat.rsplit_once(") ").unwrap().1.chars().next().unwrap())
            .unwrap_or('-');
        if state == '-' || state == 'Z' {
            break;
        }
        assert!(Instant::now() < deadline, "{pid} still running ({state})");
        std::thread::sleep(Duration::from_millis(10));
    }
}
