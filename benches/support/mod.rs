//! Helpers shared by the benches: the release binary started on 127.0.0.1 and watched
//! (readiness, VmHWM, RSS, threads and whole-process CPU from /proc, refresh times from its
//! debug log), medians, and BENCHMARKS.md sections.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_x509-certificate-exporter");

/// A running exporter with its log.
pub struct Run {
    pub child: Child,
    pub port: u16,
    pub listening: Duration,
    started: Instant,
    log: Arc<Mutex<Vec<String>>>,
    /// Refreshes logged so far (every source's), counted as the lines arrive.
    refreshed: Arc<AtomicUsize>,
}

impl Run {
    pub fn start(args: &[&str]) -> Run {
        Self::start_env(args, &[])
    }

    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Run {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = Instant::now();
        let mut cmd = Command::new(BIN);
        cmd.arg(format!("--listen-address=127.0.0.1:{port}"))
            .args(args)
            .env("RUST_LOG", "x509_certificate_exporter=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let refreshed = Arc::new(AtomicUsize::new(0));
        let (sink, count) = (Arc::clone(&log), Arc::clone(&refreshed));
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains(": refreshed ") {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                if line.contains("refreshed") || line.contains("WARN") || line.contains("ERROR") {
                    sink.lock().unwrap().push(line);
                }
            }
        });
        let deadline = started + Duration::from_secs(10);
        while status(port, "/healthz") != Some(200) {
            assert!(Instant::now() < deadline, "exporter did not listen");
            std::thread::sleep(Duration::from_micros(500));
        }
        let listening = started.elapsed();
        Run {
            child,
            port,
            listening,
            started,
            log,
            refreshed,
        }
    }

    /// Time from start to /readyz 200.
    pub fn wait_ready(&self) -> Duration {
        self.wait_ready_threads().0
    }

    /// Time from start to /readyz 200, and the most threads the process had meanwhile
    /// (sampled at every poll, and once more when ready). Polled every millisecond, or every
    /// hundredth of the time since the start once that is longer: each poll is a connection
    /// the exporter answers while it scans, and the floors are not polled, so the polls stay
    /// few while the answer is at most 1 % late.
    pub fn wait_ready_threads(&self) -> (Duration, u64) {
        let deadline = Instant::now() + Duration::from_secs(900);
        let mut most = 0;
        while status(self.port, "/readyz") != Some(200) {
            most = most.max(self.threads());
            assert!(
                Instant::now() < deadline,
                "never ready: {:?}",
                self.log.lock().unwrap()
            );
            let pause = self.started.elapsed() / 100;
            std::thread::sleep(pause.max(Duration::from_millis(1)));
        }
        let ready = self.started.elapsed();
        (ready, most.max(self.threads()))
    }

    pub fn hwm(&self) -> u64 {
        hwm_of(self.child.id())
    }

    /// Resident memory now (VmRSS).
    pub fn rss(&self) -> u64 {
        status_field(self.child.id(), "VmRSS:") * 1024
    }

    /// Threads of the process now.
    pub fn threads(&self) -> u64 {
        status_field(self.child.id(), "Threads:")
    }

    /// CPU the whole process has used so far (every thread, user and system).
    pub fn cpu(&self) -> Duration {
        cpu_of(self.child.id())
    }

    /// When the process was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The warnings and errors logged so far.
    pub fn warnings(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        let bad = log
            .iter()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"));
        bad.cloned().collect()
    }

    /// Refreshes logged so far, over every source (one debug line each).
    pub fn refresh_count(&self) -> usize {
        self.refreshed.load(Ordering::Relaxed)
    }

    /// Resets VmHWM to the current RSS.
    pub fn clear_hwm(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").unwrap();
    }

    /// GET /metrics at the start of a new second; returns the time it took and the body.
    pub fn scrape(&self, gzip: bool) -> (Duration, Vec<u8>) {
        sleep_to_next_second();
        self.scrape_now(gzip)
    }

    /// GET /metrics now; returns the time it took and the body (still compressed with gzip).
    pub fn scrape_now(&self, gzip: bool) -> (Duration, Vec<u8>) {
        let start = Instant::now();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let enc = if gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        };
        // One write, as Prometheus sends its request: `write!` on a bare socket would send
        // each formatted piece as a packet of its own, and the exporter, unlike the floors,
        // waits for the whole head.
        let request = format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{enc}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let elapsed = start.elapsed();
        let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..at]).to_ascii_lowercase();
        let body = &raw[at + 4..];
        match head.contains("transfer-encoding: chunked") {
            true => (elapsed, dechunk(body)),
            false => (elapsed, body.to_vec()),
        }
    }

    /// (wall, CPU) of every refresh logged so far.
    pub fn refreshes(&self) -> Vec<(Duration, Duration)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| {
                let rest = l.split(" items in ").nth(1)?;
                let wall: f64 = rest.split(" ms").next()?.parse().ok()?;
                let cpu: f64 = rest.split('(').nth(1)?.split(" ms").next()?.parse().ok()?;
                Some((
                    Duration::from_secs_f64(wall / 1e3),
                    Duration::from_secs_f64(cpu / 1e3),
                ))
            })
            .collect()
    }

    pub fn wait_refreshes(&self, n: usize) -> Vec<(Duration, Duration)> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let all = self.refreshes();
            if all.len() >= n {
                return all;
            }
            assert!(Instant::now() < deadline, "only {} refreshes", all.len());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sleeps until 5 ms into the next second. Every timed request, the exporter's and the
/// floors' alike, starts so: this machine answers the first request after an idle moment
/// several milliseconds slower than one that follows another at once (measured on a floor
/// serving fixed bytes: 0.6 ms back to back, 5–10 ms after 1.3 s idle).
pub fn sleep_to_next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(
        Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos()))
            + Duration::from_millis(5),
    );
}

fn status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut buf = [0u8; 32];
    let n = s.read(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn hwm_of(pid: u32) -> u64 {
    status_field(pid, "VmHWM:") * 1024
}

/// A number from /proc/PID/status: kB for the Vm* fields, a count for `Threads:`.
pub fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("/proc/{pid}/status has no {field}"))
}

/// utime + stime of a whole process (every thread) from /proc/PID/stat.
pub fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces and parentheses: fields are counted after its last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    // proc(5): utime and stime are fields 14 and 15; the state (field 3) is fields[0] here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

/// Clock ticks a second (`getconf CLK_TCK`; 100 on Linux when getconf is missing).
pub fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100)
    })
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

pub fn median<T: Ord + Copy>(v: impl IntoIterator<Item = T>) -> T {
    let mut v: Vec<T> = v.into_iter().collect();
    v.sort();
    v[v.len() / 2]
}

/// Replaces the section between `<!-- bench:NAME -->` markers in BENCHMARKS.md.
pub fn write_section(name: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let (start, end) = (
        format!("<!-- bench:{name} -->"),
        format!("<!-- /bench:{name} -->"),
    );
    let block = format!("{start}\n{text}{end}");
    let new = match (old.find(&start), old.find(&end)) {
        (Some(a), Some(b)) => format!("{}{block}{}", &old[..a], &old[b + end.len()..]),
        _ => format!("{}\n\n{block}\n", old.trim_end()),
    };
    std::fs::write(path, new).unwrap();
}

/// Decodes a chunked transfer-encoded body.
pub fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 4 + size..];
    }
    out
}
