//! List, then watch, end to end: the real binary against the in-process fake API server,
//! whose watches are streams the test feeds event by event. Events reaching `/metrics`
//! long before the refresh interval, resuming from the last version and bookmark, `410
//! Gone` (as a status and as an ERROR event) leading to one new list, failed and silent
//! watches counted and resumed with the last good data served, namespaces followed, a
//! rotated token, the rate limit on renewals, and `--kube-watch=false` never watching.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake_api::*;
use common::*;
use crossbeam_channel::{unbounded, Sender};

/// Each list: its path, its items and its resourceVersion.
type Lists = Arc<Mutex<Vec<(String, Vec<String>, String)>>>;
/// Each watch request, with the sender that feeds its stream.
type Watches = Arc<Mutex<Vec<(Req, Sender<String>)>>>;

/// A fake API whose lists answer from `lists` (by path) and whose watches are streams the
/// test feeds: each watch request's sender is pushed to `watches` in order.
struct Scripted {
    api: FakeApi,
    /// The items of each path's list and the list's resourceVersion.
    lists: Lists,
    watches: Watches,
    /// When set, a watch request is answered with this status instead of a stream.
    refuse: Arc<Mutex<Option<(u16, String)>>>,
    /// When set, requests to this path are refused with 403.
    forbid: Arc<Mutex<Option<String>>>,
}

impl Scripted {
    fn start(name: &str) -> Self {
        let lists: Lists = Arc::default();
        let watches: Watches = Arc::default();
        let refuse: Arc<Mutex<Option<(u16, String)>>> = Arc::default();
        let forbid: Arc<Mutex<Option<String>>> = Arc::default();
        let api = FakeApi::start(name, {
            let (lists, watches, refuse) = (
                Arc::clone(&lists),
                Arc::clone(&watches),
                Arc::clone(&refuse),
            );
            let forbid = Arc::clone(&forbid);
            move |req, _| {
                if forbid.lock().unwrap().as_deref() == Some(req.path.as_str()) {
                    return Reply::status(
                        403,
                        "Forbidden",
                        "secrets is forbidden at the cluster scope",
                    );
                }
                if req.param("watch") == Some("true") {
                    if let Some((code, reason)) = refuse.lock().unwrap().clone() {
                        return Reply::status(code, &reason, "refused by the test");
                    }
                    let (tx, rx) = unbounded();
                    watches.lock().unwrap().push((req.clone(), tx));
                    return Reply::Stream(rx);
                }
                let lists = lists.lock().unwrap();
                match lists.iter().find(|(path, _, _)| *path == req.path) {
                    Some((_, items, rv)) => Reply::ok(list_at("List", items, rv)),
                    None => Reply::status(404, "NotFound", "no such list"),
                }
            }
        });
        Self {
            api,
            lists,
            watches,
            refuse,
            forbid,
        }
    }

    /// A fake whose cluster-wide list holds Secret `ns/a` (version 5, CN `cn`) at version 10.
    fn with_a(name: &str, cn: &str) -> Self {
        let fake = Self::start(name);
        let now = now();
        let a = tls_secret("ns", "a", "5", &pem(cn, now - 10, now + 1000));
        fake.set_list(SECRETS, vec![a], "10");
        fake
    }

    fn set_list(&self, path: &str, items: Vec<String>, rv: &str) {
        let mut lists = self.lists.lock().unwrap();
        lists.retain(|(p, _, _)| p != path);
        lists.push((path.to_string(), items, rv.to_string()));
    }

    /// Waits until `n` watch requests have come; returns the last one and its stream's
    /// sender (taken: call once per watch).
    fn watch(&self, n: usize) -> (Req, Sender<String>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((req, tx)) = self.watches.lock().unwrap().get_mut(n - 1) {
                return (req.clone(), take(tx));
            }
            assert!(
                Instant::now() < deadline,
                "watch {n} never came: {:#?}",
                self.api.requests()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn watch_count(&self) -> usize {
        self.watches.lock().unwrap().len()
    }

    fn watch_count_of(&self, path: &str) -> usize {
        let watches = self.watches.lock().unwrap();
        watches.iter().filter(|(r, _)| r.path == path).count()
    }

    /// Waits until `n` watch requests to `path` have come; returns the last one.
    fn watch_of(&self, path: &str, n: usize) -> (Req, Sender<String>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            {
                let mut watches = self.watches.lock().unwrap();
                let mut of_path = watches.iter_mut().filter(|(r, _)| r.path == path);
                if let Some((req, tx)) = of_path.nth(n - 1) {
                    return (req.clone(), take(tx));
                }
            }
            assert!(
                Instant::now() < deadline,
                "watch {n} of {path} never came: {:#?}",
                self.api.requests()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// List requests (no `watch`) to `path` so far.
    fn lists_of(&self, path: &str) -> usize {
        let requests = self.api.requests();
        requests
            .iter()
            .filter(|r| r.path == path && r.param("watch").is_none())
            .count()
    }

    fn start_exporter(&self, extra: &[&str]) -> Exporter {
        let kubeconfig = self.api.kubeconfig();
        let mut args = vec!["--watch-kube-secrets", "--kubeconfig", &kubeconfig];
        args.extend_from_slice(extra);
        Exporter::start(&args)
    }
}

/// The only sender of a watch's stream, handed to the test (dropping it ends the stream);
/// a closed one stays in its place.
fn take(tx: &mut Sender<String>) -> Sender<String> {
    std::mem::replace(tx, unbounded().0)
}

/// A list with its resourceVersion.
fn list_at(kind: &str, items: &[String], rv: &str) -> String {
    format!(
        "{{\"kind\":{},\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":{}}},\"items\":[{}]}}",
        json_str(kind),
        json_str(rv),
        items.join(",")
    )
}

fn event(kind: &str, object: &str) -> String {
    format!("{{\"type\":{},\"object\":{object}}}", json_str(kind))
}

fn bookmark(rv: &str) -> String {
    event(
        "BOOKMARK",
        &format!(
            "{{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":{}}}}}",
            json_str(rv)
        ),
    )
}

fn error_event(code: u16, reason: &str) -> String {
    event(
        "ERROR",
        &format!(
            "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":\"from the test\",\"reason\":{},\"code\":{code}}}",
            json_str(reason)
        ),
    )
}

const SECRETS: &str = "/api/v1/secrets";

/// Scrapes until the CNs are `want`, within `limit`; returns how long it took.
fn cns_within(exporter: &Exporter, limit: Duration, want: &[&str]) -> Duration {
    let start = Instant::now();
    exporter.scrape_within(limit, &format!("CNs {want:?}"), |m| {
        m.label_values("subject_CN") == want
    });
    start.elapsed()
}

#[test]
fn events_reach_metrics_within_two_seconds_whatever_the_refresh_interval() {
    let now = now();
    let fake = Scripted::start("kw-events");
    fake.set_list(
        SECRETS,
        vec![tls_secret(
            "ns",
            "a",
            "5",
            &pem("a-1", now - 10, now + 1000),
        )],
        "10",
    );
    let exporter = fake.start_exporter(&["--refresh-interval=5m"]);
    assert_eq!(exporter.metrics().label_values("subject_CN"), ["a-1"]);

    // The watch starts where the list left off, with bookmarks and a server-side timeout
    // of five to ten minutes, and the same selector the list had.
    let (req, tx) = fake.watch(1);
    assert_eq!(req.path, SECRETS);
    assert_eq!(req.param("resourceVersion"), Some("10"));
    assert_eq!(req.param("allowWatchBookmarks"), Some("true"));
    assert_eq!(req.param("fieldSelector"), Some("type=kubernetes.io/tls"));
    let timeout: u64 = req.param("timeoutSeconds").unwrap().parse().unwrap();
    assert!((300..=600).contains(&timeout), "{timeout}");

    let two = Duration::from_secs(2);
    let added = tls_secret("ns", "b", "11", &pem("b-1", now - 10, now + 1000));
    tx.send(event("ADDED", &added)).unwrap();
    cns_within(&exporter, two, &["a-1", "b-1"]);
    let renewed = tls_secret("ns", "a", "12", &pem("a-2", now - 10, now + 2000));
    tx.send(event("MODIFIED", &renewed)).unwrap();
    cns_within(&exporter, two, &["a-2", "b-1"]);
    tx.send(event("DELETED", &renewed)).unwrap();
    cns_within(&exporter, two, &["b-1"]);
    // A Secret changed into a type not watched leaves, as the server's selector would
    // have it.
    let opaque = secret("ns", "b", "14", "Opaque", &[("tls.crt", b"x")]);
    tx.send(event("MODIFIED", &opaque)).unwrap();
    cns_within(&exporter, two, &[]);

    // All of it over one list and one watch, with no error.
    assert_eq!(fake.lists_of(SECRETS), 1);
    assert_eq!(fake.watch_count(), 1);
    let m = exporter.metrics();
    assert_eq!(m.value("x509_read_errors_total"), 0.0);
}

#[test]
fn a_watch_the_server_ends_resumes_from_the_last_event_or_bookmark_without_a_list() {
    let now = now();
    let fake = Scripted::with_a("kw-resume", "a");
    let exporter = fake.start_exporter(&["--refresh-interval=5m"]);
    exporter.wait_ready();
    let (_, tx) = fake.watch(1);
    let b = tls_secret("ns", "b", "17", &pem("b", now - 10, now + 1000));
    tx.send(event("ADDED", &b)).unwrap();
    cns_within(&exporter, Duration::from_secs(2), &["a", "b"]);
    drop(tx);
    let (req, tx) = fake.watch(2);
    assert_eq!(req.param("resourceVersion"), Some("17"), "the last event's");
    tx.send(bookmark("42")).unwrap();
    drop(tx);
    let (req, _tx) = fake.watch(3);
    assert_eq!(req.param("resourceVersion"), Some("42"), "the bookmark's");
    assert_eq!(fake.lists_of(SECRETS), 1, "no list again");
    let m = exporter.metrics();
    assert_eq!(m.label_values("subject_CN"), ["a", "b"]);
    assert_eq!(m.value("x509_read_errors_total"), 0.0);
}

#[test]
fn gone_as_a_status_or_an_error_event_lists_again_and_is_no_read_error() {
    let now = now();
    let fake = Scripted::with_a("kw-gone", "a");
    let exporter = fake.start_exporter(&["--refresh-interval=5m"]);
    exporter.wait_ready();
    let (_, tx) = fake.watch(1);

    // Compacted while the exporter was away: the list now has b in a's place.
    fake.set_list(
        SECRETS,
        vec![tls_secret("ns", "b", "20", &pem("b", now - 10, now + 1000))],
        "30",
    );
    tx.send(error_event(410, "Expired")).unwrap();
    cns_within(&exporter, Duration::from_secs(2), &["b"]);
    assert_eq!(fake.lists_of(SECRETS), 2);
    let (req, _tx) = fake.watch(2);
    assert_eq!(
        req.param("resourceVersion"),
        Some("30"),
        "from the new list"
    );

    // The same when the watch is refused with 410 before it starts.
    *fake.refuse.lock().unwrap() = Some((410, "Expired".to_string()));
    fake.set_list(
        SECRETS,
        vec![tls_secret("ns", "c", "40", &pem("c", now - 10, now + 1000))],
        "50",
    );
    drop(_tx);
    cns_within(&exporter, Duration::from_secs(3), &["c"]);
    *fake.refuse.lock().unwrap() = None;
    let m = exporter.metrics();
    assert_eq!(m.value("x509_read_errors_total"), 0.0, "{}", m.body);
    assert!(exporter
        .log_lines()
        .iter()
        .any(|l| l.contains("compacted away, listing again")));
}

#[test]
fn a_failed_watch_counts_an_error_keeps_the_data_and_resumes_with_backoff() {
    let now = now();
    let fake = Scripted::with_a("kw-fail", "a");
    let exporter = fake.start_exporter(&["--refresh-interval=5m"]);
    exporter.wait_ready();
    let (_, tx) = fake.watch(1);
    *fake.refuse.lock().unwrap() = Some((500, "InternalError".to_string()));
    // An event cut in the middle, then the end of the stream: a broken watch.
    tx.send("{\"type\":\"ADDED\",\"obj".to_string()).unwrap();
    drop(tx);
    let m = exporter.scrape_within(Duration::from_secs(5), "errors counted", |m| {
        m.value("x509_read_errors_total") >= 2.0
    });
    assert_eq!(m.label_values("subject_CN"), ["a"], "the last good data");
    assert!(m.value("x509_read_errors") >= 1.0);
    // Retried with backoff (1 s, 2 s, …), never in a tight loop.
    let refused_at = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let tries = fake
        .api
        .requests()
        .iter()
        .filter(|r| r.param("watch").is_some())
        .count();
    assert!(tries <= 5, "{tries} watch requests in about 4 s");
    *fake.refuse.lock().unwrap() = None;
    let (req, tx) = fake.watch(2);
    assert_eq!(req.param("resourceVersion"), Some("10"));
    assert!(refused_at.elapsed() < Duration::from_secs(10));
    let b = tls_secret("ns", "b", "11", &pem("b", now - 10, now + 1000));
    tx.send(event("ADDED", &b)).unwrap();
    let m = exporter.scrape_within(Duration::from_secs(2), "recovered", |m| {
        m.label_values("subject_CN") == ["a", "b"]
    });
    assert_eq!(fake.lists_of(SECRETS), 1, "resumed, not listed again");
    assert!(exporter
        .log_lines()
        .iter()
        .any(|l| l.contains("watch secrets in all namespaces") && l.contains("500")));
    drop(m);
}

#[test]
fn a_silent_watch_is_taken_for_broken_after_its_timeout_and_a_margin() {
    // --max-cache-duration bounds the watch's timeoutSeconds (so that a re-list is never
    // late), which makes the silent watch's end come within the test's patience.
    let fake = Scripted::with_a("kw-silent", "a");
    let exporter = fake.start_exporter(&["--refresh-interval=5m", "--max-cache-duration=4s"]);
    exporter.wait_ready();
    // The first watch is fed nothing and never closed: it hangs.
    let (req, _hang) = fake.watch(1);
    let timeout: u64 = req.param("timeoutSeconds").unwrap().parse().unwrap();
    assert!(timeout <= 4, "{timeout}");
    let m = exporter.scrape_within(Duration::from_secs(15), "the hang counted", |m| {
        m.value("x509_read_errors_total") >= 1.0
    });
    assert_eq!(m.label_values("subject_CN"), ["a"]);
    let log = exporter.log_lines();
    assert!(
        log.iter()
            .any(|l| l.contains("watch secrets in all namespaces") && l.contains("timed out")),
        "{log:#?}"
    );
    // And the exporter went on: listed again (the safety net was due) and watches again.
    fake.watch(2);
    assert!(fake.lists_of(SECRETS) >= 2);
}

/// A namespace, with the label `team=x` when `team`.
fn ns(name: &str, rv: &str, team: bool) -> String {
    let labels = match team {
        true => "{\"team\":\"x\"}",
        false => "{}",
    };
    format!(
        "{{\"metadata\":{{\"name\":{},\"resourceVersion\":{},\"labels\":{labels}}}}}",
        json_str(name),
        json_str(rv)
    )
}

/// Namespaces `a` (in the filters) and `b` (not yet), one Secret each, listable across the
/// cluster unless `forbidden`, and in each namespace; the exporter includes those labelled
/// `team`.
/// Then b comes into the filters and a leaves them: the certificates follow.
fn namespaces_followed(name: &str, forbidden: bool) -> Scripted {
    let now = now();
    let fake = Scripted::start(name);
    fake.set_list(
        "/api/v1/namespaces",
        vec![ns("a", "1", true), ns("b", "2", false)],
        "100",
    );
    let secret_of = |name: &str| tls_secret(name, "s", "5", &pem(name, now - 10, now + 1000));
    for name in ["a", "b"] {
        let path = format!("/api/v1/namespaces/{name}/secrets");
        fake.set_list(&path, vec![secret_of(name)], "100");
    }
    match forbidden {
        true => *fake.forbid.lock().unwrap() = Some(SECRETS.to_string()),
        false => fake.set_list(SECRETS, vec![secret_of("a"), secret_of("b")], "100"),
    }
    let exporter =
        fake.start_exporter(&["--refresh-interval=5m", "--include-namespace-label=team"]);
    assert_eq!(exporter.metrics().label_values("subject_CN"), ["a"]);
    let (req, tx) = fake.watch_of("/api/v1/namespaces", 1);
    assert_eq!(req.param("labelSelector"), Some("team"));

    // b comes into the filters: its certificate shows.
    tx.send(event("MODIFIED", &ns("b", "101", true))).unwrap();
    cns_within(&exporter, Duration::from_secs(2), &["a", "b"]);
    // a leaves them (its label removed): its certificate goes.
    tx.send(event("MODIFIED", &ns("a", "102", false))).unwrap();
    cns_within(&exporter, Duration::from_secs(2), &["b"]);
    assert_eq!(exporter.metrics().value("x509_read_errors_total"), 0.0);
    fake
}

/// Requests for the Secrets of one namespace.
fn per_namespace_requests(fake: &Scripted) -> usize {
    fake.api
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/namespaces/") && r.path.ends_with("/secrets"))
        .count()
}

#[test]
fn with_an_include_filter_each_kept_namespace_is_watched_not_the_cluster() {
    // A shard selecting namespaces by label lists and holds their Secrets alone: it never
    // asks for the cluster's, though RBAC would allow it.
    let fake = namespaces_followed("kw-ns-include", false);
    fake.watch_of("/api/v1/namespaces/b/secrets", 1);
    let across: Vec<_> = fake
        .api
        .requests()
        .into_iter()
        .filter(|r| r.path == SECRETS)
        .collect();
    assert!(
        across.is_empty(),
        "the cluster's Secrets were asked for: {across:#?}"
    );
}

#[test]
fn with_exclude_filters_alone_secrets_are_watched_across_the_cluster_and_filtered() {
    let now = now();
    let fake = Scripted::start("kw-ns-exclude");
    fake.set_list(
        "/api/v1/namespaces",
        vec![ns("a", "1", true), ns("b", "2", false)],
        "100",
    );
    let secret_of = |name: &str| tls_secret(name, "s", "5", &pem(name, now - 10, now + 1000));
    fake.set_list(SECRETS, vec![secret_of("a"), secret_of("b")], "100");
    let exporter =
        fake.start_exporter(&["--refresh-interval=5m", "--exclude-namespace-label=team"]);
    assert_eq!(exporter.metrics().label_values("subject_CN"), ["b"]);
    fake.watch_of(SECRETS, 1);
    assert_eq!(
        per_namespace_requests(&fake),
        0,
        "one list and one watch across the cluster"
    );
}

#[test]
fn where_rbac_refuses_the_cluster_each_kept_namespace_is_watched_and_followed() {
    let fake = namespaces_followed("kw-ns-each", true);
    fake.watch_of("/api/v1/namespaces/a/secrets", 1);
    fake.watch_of("/api/v1/namespaces/b/secrets", 1);
    assert!(fake.watch_count_of(SECRETS) == 0);
}

#[test]
fn kube_watch_false_lists_at_every_refresh_and_never_watches() {
    let fake = Scripted::with_a("kw-off", "a");
    let exporter = fake.start_exporter(&["--refresh-interval=200ms", "--kube-watch=false"]);
    exporter.wait_ready();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.lists_of(SECRETS) < 4 {
        assert!(Instant::now() < deadline, "{:#?}", fake.api.requests());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fake.watch_count(), 0);
    let bad = run(&["--watch-kube-secrets", "--kube-watch=maybe"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--kube-watch: expected true or false"));
}

#[test]
fn a_rotated_token_goes_with_the_next_watch_and_the_open_one_keeps_running() {
    let now = now();
    let fake = Scripted::with_a("kw-token", "a");
    let exporter = fake.start_exporter(&["--refresh-interval=5m"]);
    exporter.wait_ready();
    let (req, tx) = fake.watch(1);
    assert_eq!(req.auth.as_deref(), Some("Bearer token-1"));
    fake.api.set_token("token-2\n");
    // The open watch goes on: its events still come.
    let b = tls_secret("ns", "b", "11", &pem("b", now - 10, now + 1000));
    tx.send(event("ADDED", &b)).unwrap();
    cns_within(&exporter, Duration::from_secs(2), &["a", "b"]);
    drop(tx);
    let (req, _tx) = fake.watch(2);
    assert_eq!(req.auth.as_deref(), Some("Bearer token-2"));
    assert_eq!(req.param("resourceVersion"), Some("11"));
}

#[test]
fn the_rate_limit_spaces_watch_renewals_too() {
    // One request every 2 s: the list takes the one token at start, so the first watch
    // waits for the next; a watch the server ends after 1.2 s is renewed at once (it ran
    // long enough to be no flap), but the renewal waits for its token too.
    let fake = Scripted::with_a("kw-rate", "a");
    let exporter = fake.start_exporter(&[
        "--refresh-interval=5m",
        "--kube-api-rate-limit-qps=0.5",
        "--kube-api-rate-limit-burst=1",
    ]);
    exporter.wait_ready();
    let (first, tx) = fake.watch(1);
    std::thread::sleep(Duration::from_millis(1200));
    drop(tx);
    let (second, _tx) = fake.watch(2);
    let gap = second.at - first.at;
    assert!(
        gap >= Duration::from_millis(1800),
        "renewed {gap:?} after the first watch: not spaced by the limit"
    );
    let list = fake.api.requests()[0].at;
    assert!(
        first.at - list >= Duration::from_millis(1800),
        "the watch waited too"
    );
}
