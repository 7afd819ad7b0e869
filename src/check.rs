//! The `check` subcommand: every source read once, no server. The certificates, sorted by
//! time left, become a table for a person or JSON for a script, and the exposition of
//! `/metrics` can be written atomically for node_exporter's textfile collector. The status
//! follows the monitoring-plugins convention.
//!
//! A status, when a pass finds several things: critical (2) before unknown (3) before
//! warning (1) before OK (0), as Icinga orders states. A critical certificate is known
//! critical whatever else failed, so it is never hidden behind "a source could not be
//! read"; an unreadable source, though, may hide a critical certificate, so it outranks a
//! warning.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::fsio;
use crate::labels::parse_pairs;
use crate::model::Report;
use crate::poll::{Pass, Source};
use crate::store::{Store, View};

/// The outcome of a pass, as a monitoring plugin reports it; the discriminant is the exit
/// status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every certificate has more than `--warn` left.
    Ok = 0,
    /// A certificate has less than `--warn` left.
    Warning = 1,
    /// A certificate has less than `--crit` left, or has expired.
    Critical = 2,
    /// A source or an item could not be read (or `check` could not run at all).
    Unknown = 3,
}

impl Status {
    /// The process's exit status.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Its name, as monitoring plugins print it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// Where a certificate stands against the thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// More than `--warn` left.
    Ok,
    /// Less than `--warn` left.
    Warning,
    /// Less than `--crit` left, not yet expired.
    Critical,
    /// Past its notAfter.
    Expired,
}

impl State {
    /// The state of a certificate with `left` seconds before its notAfter (negative once
    /// past it; expired as `x509_cert_expired` says, from the second after notAfter).
    pub fn of(left: i64, thresholds: Thresholds) -> Self {
        let below = |limit: Duration| i128::from(left) < i128::from(limit.as_secs());
        match () {
            _ if left < 0 => State::Expired,
            _ if below(thresholds.crit) => State::Critical,
            _ if below(thresholds.warn) => State::Warning,
            _ => State::Ok,
        }
    }

    /// Its name in JSON (the table shows it in capitals).
    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warning => "warning",
            State::Critical => "critical",
            State::Expired => "expired",
        }
    }
}

/// `--warn` and `--crit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Less time left than this is a warning.
    pub warn: Duration,
    /// Less time left than this is critical.
    pub crit: Duration,
}

/// One certificate of the pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The labels of its `x509_cert_not_after` series, unescaped, in exposition order.
    pub labels: Vec<(String, String)>,
    /// The fact labels of its `x509_cert_info` series, unescaped (`--expose-cert-info`);
    /// empty otherwise.
    pub facts: Vec<(String, String)>,
    /// NotBefore, Unix seconds.
    pub not_before: i64,
    /// NotAfter, Unix seconds.
    pub not_after: i64,
    /// Seconds from the pass to its notAfter; negative once expired.
    pub left: i64,
    /// Where it stands against the thresholds.
    pub state: State,
    /// Where it was found, for a person (see [`place`]).
    pub place: String,
}

impl Certificate {
    /// The value of the label `name`, empty when absent.
    pub fn label(&self, name: &str) -> &str {
        label(&self.labels, name)
    }
}

/// What one pass over every source found.
pub struct Outcome {
    /// The view the exposition is rendered from, de-duplicated as `/metrics` is.
    pub view: Arc<View>,
    /// Every certificate, by time left: expired first, the latest notAfter last.
    pub certificates: Vec<Certificate>,
    /// Every read failure, each once, in source order.
    pub errors: Vec<String>,
    /// The time of the pass, Unix seconds.
    pub now: i64,
    /// The thresholds the certificates were held to.
    pub thresholds: Thresholds,
}

impl Outcome {
    /// The status of the pass: see the module's documentation for the precedence.
    pub fn status(&self) -> Status {
        let worst = |state: State| self.certificates.iter().any(|c| c.state == state);
        match () {
            _ if worst(State::Expired) || worst(State::Critical) => Status::Critical,
            _ if !self.errors.is_empty() => Status::Unknown,
            _ if worst(State::Warning) => Status::Warning,
            _ => Status::Ok,
        }
    }

    /// How many certificates are in `state`.
    fn count(&self, state: State) -> usize {
        self.certificates
            .iter()
            .filter(|c| c.state == state)
            .count()
    }

    /// One line: the status and the counts (`CRITICAL - 4 certificates: 1 expired, ...`),
    /// the first line monitoring plugins print.
    pub fn summary(&self) -> String {
        let plural = |n: usize, what: &str| match n {
            1 => format!("1 {what}"),
            n => format!("{n} {what}s"),
        };
        let mut line = format!(
            "{} - {}: {} expired, {} critical, {} warning, {} ok",
            self.status().name(),
            plural(self.certificates.len(), "certificate"),
            self.count(State::Expired),
            self.count(State::Critical),
            self.count(State::Warning),
            self.count(State::Ok),
        );
        if !self.errors.is_empty() {
            line.push_str(&format!("; {}", plural(self.errors.len(), "read failure")));
        }
        line.push_str(&format!(
            " (warn below {}, crit below {})",
            human(secs(self.thresholds.warn)),
            human(secs(self.thresholds.crit))
        ));
        line
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// Refreshes every source once, `workers` at a time (the calling thread among them), and
/// gives each one's pass in source order. A Kubernetes source answers its whole truth in
/// one refresh: the listing source lists every scope; a watching one waits for every
/// reflector's first list.
pub fn refresh_all(sources: Vec<Box<dyn Source>>, workers: usize) -> Vec<Pass> {
    let count = sources.len();
    let queue = Mutex::new(sources.into_iter().enumerate());
    let passes: Mutex<Vec<Option<Pass>>> = Mutex::new(vec![None; count]);
    let work = || loop {
        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
        let Some((index, mut source)) = next else {
            break;
        };
        let pass = source.refresh();
        log::debug!("{}: read", source.describe());
        passes.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(pass);
    };
    std::thread::scope(|scope| {
        for n in 1..workers.clamp(1, count.max(1)) {
            let spawned = std::thread::Builder::new()
                .name(format!("check-{n}"))
                .spawn_scoped(scope, work);
            if let Err(e) = spawned {
                // The threads started, this one included, read the rest.
                log::debug!("start check thread: {e}");
                break;
            }
        }
        work();
    });
    passes
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|pass| {
            // Every source was taken off the queue and refreshed by a thread that the
            // scope joined; a refresh that panicked would have ended the process.
            pass.unwrap_or_else(|| Pass::complete(Vec::new(), Vec::new()))
        })
        .collect()
}

/// The outcome of `passes` (one per source, in source order) at Unix time `now`.
pub fn outcome(passes: Vec<Pass>, thresholds: Thresholds, now: i64) -> Outcome {
    let mut store = Store::new(passes.len());
    let mut errors: Vec<String> = Vec::new();
    for (source, pass) in passes.into_iter().enumerate() {
        let own = pass
            .items
            .iter()
            .flat_map(|item| item.errors.iter().cloned());
        for error in pass.errors.iter().cloned().chain(own) {
            if !errors.contains(&error) {
                errors.push(error);
            }
        }
        store.apply(Report {
            source,
            items: pass.items,
            errors: pass.errors,
            changed: true,
            ready: pass.ready,
        });
    }
    store.publish();
    let view = store.view();
    let mut certificates: Vec<Certificate> = view
        .certs()
        .map(|(item, series, discriminated)| {
            // Both are written by `LabelConfig`, which `parse_pairs` reads back whole.
            let mut labels = parse_pairs(item).unwrap_or_default();
            labels.extend(parse_pairs(&series.labels).unwrap_or_default());
            labels.extend(parse_pairs(&series.issuer).unwrap_or_default());
            if discriminated {
                labels.push((
                    "discriminator".to_string(),
                    format!("{:08x}", series.fingerprint),
                ));
            }
            let left = series.not_after.saturating_sub(now);
            Certificate {
                place: place(&labels),
                state: State::of(left, thresholds),
                labels,
                facts: parse_pairs(&series.facts).unwrap_or_default(),
                not_before: series.not_before,
                not_after: series.not_after,
                left,
            }
        })
        .collect();
    certificates.sort_by(|a, b| {
        (a.not_after, &a.place, a.label("subject_CN")).cmp(&(
            b.not_after,
            &b.place,
            b.label("subject_CN"),
        ))
    });
    Outcome {
        view,
        certificates,
        errors,
        now,
        thresholds,
    }
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Where a certificate was found, from its labels: the file path (and, in a kubeconfig,
/// the entry; in a keystore, the alias), `namespace/name:key` of a Secret, `configmap
/// namespace/name:key`, or the kind and name of a caBundle's holder. What `-l` left out
/// is left out here too; with no origin label at all, `-`.
pub fn place(labels: &[(String, String)]) -> String {
    let get = |name: &str| label(labels, name);
    let mut place = match () {
        _ if !get("filepath").is_empty() => get("filepath").to_string(),
        _ if !get("filename").is_empty() => get("filename").to_string(),
        _ if !get("secret_name").is_empty() => format!(
            "{}/{}:{}",
            get("secret_namespace"),
            get("secret_name"),
            get("secret_key")
        ),
        _ if !get("configmap_name").is_empty() => format!(
            "configmap {}/{}:{}",
            get("configmap_namespace"),
            get("configmap_name"),
            get("configmap_key")
        ),
        _ if !get("cabundle_resource_name").is_empty() => format!(
            "{} {}",
            get("cabundle_resource_kind"),
            get("cabundle_resource_name")
        ),
        _ => String::new(),
    };
    for (name, prefix) in [
        ("cabundle_entry", "webhook"),
        ("embedded_kind", ""),
        ("embedded_key", ""),
        ("keystore_alias", "alias"),
    ] {
        let value = get(name);
        if value.is_empty() {
            continue;
        }
        for part in [prefix, value] {
            if !part.is_empty() {
                if !place.is_empty() {
                    place.push(' ');
                }
                place.push_str(part);
            }
        }
    }
    match place.is_empty() {
        true => "-".to_string(),
        false => place,
    }
}

/// `13d 4h`, `28d`, `5h 2m`, `7m`, `42s` (minutes and seconds dropped beside days, seconds
/// beside hours); `expired 2d 1h ago` when negative.
pub fn human(seconds: i64) -> String {
    let n = seconds.unsigned_abs();
    let (days, hours, minutes) = (n / 86_400, n % 86_400 / 3600, n % 3600 / 60);
    let text = match () {
        _ if days > 0 && hours > 0 => format!("{days}d {hours}h"),
        _ if days > 0 => format!("{days}d"),
        _ if hours > 0 && minutes > 0 => format!("{hours}h {minutes}m"),
        _ if hours > 0 => format!("{hours}h"),
        _ if minutes > 0 => format!("{minutes}m"),
        _ => format!("{n}s"),
    };
    match seconds < 0 {
        true => format!("expired {text} ago"),
        false => text,
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` in UTC (proleptic Gregorian).
pub fn utc(unix: i64) -> String {
    let (days, rest) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (year, month, day) = civil(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The date `days` after 1970-01-01: whole 400-year eras of 146,097 days, then the year of
/// the era counted from March (so that the leap day ends it), then the month.
fn civil(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The table: the summary line, then one row per certificate by time left, then the read
/// failures.
pub fn table(outcome: &Outcome) -> String {
    let header = ["STATUS", "NOT AFTER (UTC)", "LEFT", "SUBJECT CN", "WHERE"];
    let rows: Vec<[String; 5]> = outcome
        .certificates
        .iter()
        .map(|c| {
            [
                c.state.name().to_uppercase(),
                utc(c.not_after),
                human(c.left),
                match c.label("subject_CN") {
                    "" => "-".to_string(),
                    cn => printable(cn),
                },
                printable(&c.place),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = outcome.summary();
    out.push_str("\n\n");
    let mut line = |cells: [&str; 5]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            text.push_str(cell);
            if i + 1 < cells.len() {
                let pad = width - cell.chars().count() + 2;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(&text);
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    if !outcome.errors.is_empty() {
        out.push_str("\nREAD FAILURES\n");
        for error in &outcome.errors {
            out.push_str(&printable(error));
            out.push('\n');
        }
    }
    out
}

/// A value on one terminal line: control characters (a newline in a subject) escaped.
fn printable(text: &str) -> String {
    match text.contains(char::is_control) {
        false => text.to_string(),
        true => text.escape_debug().to_string(),
    }
}

/// The JSON document: the status, the thresholds, every certificate by time left with its
/// labels and its facts (empty without `--expose-cert-info`) as objects, and the read
/// failures.
pub fn json(outcome: &Outcome) -> String {
    let status = outcome.status();
    let certificates: Vec<serde_json::Value> = outcome
        .certificates
        .iter()
        .map(|c| {
            let object = |pairs: &[(String, String)]| {
                pairs
                    .iter()
                    .map(|(n, v)| (n.clone(), serde_json::Value::from(v.as_str())))
                    .collect::<serde_json::Map<String, serde_json::Value>>()
            };
            serde_json::json!({
                "status": c.state.name(),
                "not_before": c.not_before,
                "not_after": c.not_after,
                "seconds_left": c.left,
                "where": c.place,
                "labels": object(&c.labels),
                "facts": object(&c.facts),
            })
        })
        .collect();
    let document = serde_json::json!({
        "status": status.name().to_lowercase(),
        "exit_code": status.code(),
        "checked_at": outcome.now,
        "warn_seconds": secs(outcome.thresholds.warn),
        "crit_seconds": secs(outcome.thresholds.crit),
        "certificates": certificates,
        "errors": outcome.errors,
    });
    let mut text = document.to_string();
    text.push('\n');
    text
}

/// Writes `body` to `path` so that a reader sees the old file or the new one, whole:
/// a temporary file in the same directory (hidden, and not ending in `.prom`, which
/// node_exporter's textfile collector would read), mode 0644, synced, then renamed over
/// `path`, and the directory synced so that the rename survives a crash.
pub fn write_textfile(path: &Path, body: impl Read) -> Result<(), String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("write {}: not a file name", path.display()))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    // A leftover of a killed run, or a link someone planted at this name, is unlinked,
    // never followed: `check` runs as root in a directory node_exporter's user may write.
    let _ = std::fs::remove_file(&temporary);
    let written = write_synced(&temporary, body).and_then(|()| {
        std::fs::rename(&temporary, path).map_err(|e| {
            format!(
                "rename {} to {}: {}",
                temporary.display(),
                path.display(),
                fsio::why(&e)
            )
        })
    });
    if let Err(why) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(why);
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("sync directory {}: {}", dir.display(), fsio::why(&e)))
}

fn write_synced(path: &PathBuf, mut body: impl Read) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let fail = |e: io::Error| format!("write {}: {}", path.display(), fsio::why(&e));
    // A new file or nothing: a name taken again since (a link, a file) fails the write.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(fail)?;
    // The umask may have taken bits away: node_exporter, another user, must read it.
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(fail)?;
    let mut out = io::BufWriter::with_capacity(256 * 1024, file);
    io::copy(&mut body, &mut out).map_err(fail)?;
    let file = out.into_inner().map_err(|e| fail(e.into_error()))?;
    file.sync_all().map_err(fail)?;
    Ok(())
}

/// Writes `text` to standard output; a closed pipe (`check | head`) is not a failure.
pub fn print(text: &str) -> Result<(), String> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(format!("write standard output: {}", fsio::why(&e)))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_planted_at_the_temporary_name_is_replaced_not_followed() {
        let dir = std::env::temp_dir().join(format!("check-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        let path = dir.join("x509.prom");
        let planted = dir.join(format!(".x509.prom.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_textfile(&path, &b"x509_read_errors 0\n"[..]).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "x509_read_errors 0\n"
        );
        assert!(
            std::fs::symlink_metadata(&planted).is_err(),
            "nothing left behind"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dates_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_709_251_199), "2024-02-29 23:59:59");
        assert_eq!(utc(-1), "1969-12-31 23:59:59");
        assert_eq!(utc(4_102_444_800), "2100-01-01 00:00:00");
        assert_eq!(utc(253_402_300_799), "9999-12-31 23:59:59");
        // Every day of 1968..2104 follows the one before.
        let mut last = civil(-1);
        for days in 0..50_000 {
            let next = civil(days);
            let follows = match next {
                (y, 1, 1) => last.0 == y - 1 && last.1 == 12 && last.2 == 31,
                (y, m, 1) => last.0 == y && last.1 == m - 1 && last.2 >= 28,
                (y, m, d) => last == (y, m, d - 1),
            };
            assert!(follows, "{last:?} then {next:?}");
            last = next;
        }
    }

    #[test]
    fn time_left_for_a_person() {
        assert_eq!(human(13 * 86_400 + 4 * 3600 + 59), "13d 4h");
        assert_eq!(human(5 * 3600 + 2 * 60 + 7), "5h 2m");
        assert_eq!(human(7 * 60 + 1), "7m");
        assert_eq!(human(28 * 86_400 + 59 * 60), "28d");
        assert_eq!(human(36 * 3600), "1d 12h");
        assert_eq!(human(3600 + 30), "1h");
        assert_eq!(human(42), "42s");
        assert_eq!(human(0), "0s");
        assert_eq!(human(-2 * 86_400 - 3600), "expired 2d 1h ago");
        assert_eq!(human(-1), "expired 1s ago");
    }

    #[test]
    fn states_against_the_thresholds() {
        let t = Thresholds {
            warn: Duration::from_secs(100),
            crit: Duration::from_secs(10),
        };
        assert_eq!(State::of(-1, t), State::Expired);
        assert_eq!(State::of(0, t), State::Critical, "expires this second");
        assert_eq!(State::of(9, t), State::Critical);
        assert_eq!(State::of(10, t), State::Warning);
        assert_eq!(State::of(99, t), State::Warning);
        assert_eq!(State::of(100, t), State::Ok);
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn where_a_certificate_was_found() {
        assert_eq!(
            place(&pairs(&[("filename", "a.pem"), ("filepath", "/x/a.pem")])),
            "/x/a.pem"
        );
        assert_eq!(
            place(&pairs(&[
                ("filepath", "/root/.kube/config"),
                ("embedded_kind", "user"),
                ("embedded_key", "admin"),
            ])),
            "/root/.kube/config user admin"
        );
        assert_eq!(
            place(&pairs(&[("filepath", "/k.p12"), ("keystore_alias", "web")])),
            "/k.p12 alias web"
        );
        assert_eq!(
            place(&pairs(&[
                ("secret_namespace", "ns"),
                ("secret_name", "web-tls"),
                ("secret_key", "tls.crt"),
            ])),
            "ns/web-tls:tls.crt"
        );
        assert_eq!(
            place(&pairs(&[
                ("configmap_namespace", "kube-system"),
                ("configmap_name", "kube-root-ca.crt"),
                ("configmap_key", "ca.crt"),
            ])),
            "configmap kube-system/kube-root-ca.crt:ca.crt"
        );
        assert_eq!(
            place(&pairs(&[
                ("cabundle_resource_kind", "MutatingWebhookConfiguration"),
                ("cabundle_resource_name", "hooks"),
                ("cabundle_entry", "a.example.com"),
            ])),
            "MutatingWebhookConfiguration hooks webhook a.example.com"
        );
        assert_eq!(place(&pairs(&[("subject_CN", "x")])), "-");
    }
}
