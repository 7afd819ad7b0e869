//! List, then watch: a [`Reflector`] keeps one scope (a kind of object in a namespace, or
//! across the cluster) current on a thread of its own. It lists the scope page by page,
//! then watches it from the list's `resourceVersion`, applying each event as it arrives, and
//! resumes a watch that ended from the last version seen (bookmarks included). Only a `410
//! Gone` (the version was compacted away), `--max-cache-duration` or a first list make it
//! list again. After each burst of events it sends the scope's whole item list to its source
//! and wakes it; a failed call sends the failure, keeps the last good data, and is retried
//! with backoff.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::{ApiError, Client};
use super::{list_all, ObjectMap};
use crate::model::Item;
use crate::poll::Wake;

/// First wait after a failed call; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A watch lasts between this and twice this (the server ends it), so that many
/// exporters do not renew their watches together.
const WATCH_FOR: Duration = Duration::from_secs(300);
/// A watch that ends sooner than this without an error did not really run (a proxy that
/// cuts long requests), and a version gone this soon after its list cannot be watched
/// from: the next try waits as after a failure.
const SHORT_WATCH: Duration = Duration::from_secs(1);

/// The longest a change applied waits to be sent while events keep coming without a pause.
const SEND_WITHIN: Duration = Duration::from_secs(1);

/// How long past its own `timeoutSeconds` a watch may stay silent before it is taken for
/// broken (a server or a proxy that dropped it without closing): a tenth of it, between
/// 2 and 30 seconds.
fn margin(lasts: Duration) -> Duration {
    (lasts / 10).clamp(Duration::from_secs(2), Duration::from_secs(30))
}

/// How a kind of object becomes items.
pub trait Decode: Send + Sync + 'static {
    /// The object as the API sends it, with only the fields used.
    type Object<'a>: Deserialize<'a>;
    /// The object's key in its scope (`namespace/name`) and its `resourceVersion`.
    fn key<'o>(&self, object: &'o Self::Object<'_>) -> (String, &'o str);
    /// Its items, or `None` when the filters do not keep it.
    fn items(&self, object: &Self::Object<'_>) -> Option<Vec<Arc<Item>>>;
}

/// What a reflector tells its source, with its id.
pub struct Message {
    /// The reflector's id, as its source gave it.
    pub id: u64,
    /// What happened.
    pub update: Update,
}

/// What happened to a scope.
pub enum Update {
    /// A list or events changed it: every object kept now, by key (for namespaces, their
    /// names), with its items. A snapshot: the reflector copies it before changing it again
    /// only while the source still holds it.
    Objects(Arc<ObjectMap>),
    /// A call failed (with the HTTP status, if one came); the last objects stand.
    Failed(String, Option<u16>),
    /// The watch is running again after a failure, nothing changed meanwhile.
    Healthy,
}

/// What a reflector needs besides its scope.
pub struct Setup {
    /// A clone of the source's client.
    pub client: Client,
    /// Objects per list request.
    pub page_size: u32,
    /// A re-list at a random time between half and all of it; zero for none.
    pub relist_within: Duration,
    /// Held while listing: a source lists one scope at a time, whatever its watches do.
    pub lists: Arc<Mutex<()>>,
    /// Where its messages go.
    pub out: Sender<Message>,
    /// Its source's wake, once the engine gave it one.
    pub wake: Option<Wake>,
}

/// The handle on a running reflector: dropping it stops the thread (after the request
/// under way returns).
pub struct Reflector {
    stop: Arc<AtomicBool>,
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Reflector {
    /// Starts keeping the objects at `path` current (the query adds `selectors`), decoded by
    /// `decode`; `what` names the scope in messages (`secrets in namespace a`).
    pub fn start<D: Decode>(
        id: u64,
        what: String,
        path: String,
        selectors: Vec<(&'static str, String)>,
        decode: Arc<D>,
        setup: Setup,
    ) -> std::io::Result<Reflector> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut run = Run {
            id,
            what,
            path,
            selectors,
            decode,
            setup,
            stop: Arc::clone(&stop),
            objects: Arc::default(),
            version: None,
            failing: false,
            listed_at: Instant::now(),
        };
        std::thread::Builder::new()
            .name(format!("watch-{id}"))
            .spawn(move || run.run())?;
        Ok(Reflector { stop })
    }
}

/// A watch event, its object left undecoded until its type is known.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow)]
    object: &'a RawValue,
}

/// A BOOKMARK's object: only its version matters.
#[derive(Deserialize)]
struct Bookmark<'a> {
    #[serde(borrow)]
    metadata: Version<'a>,
}

#[derive(Deserialize)]
struct Version<'a> {
    #[serde(rename = "resourceVersion", borrow)]
    resource_version: std::borrow::Cow<'a, str>,
}

/// An ERROR's object: a Status.
#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Why a watch ended.
enum Ended {
    /// The server ended it, or a re-list is due: go on from the version seen.
    Done,
    /// The version is too old (compacted): list again.
    Gone,
    /// A call or the stream failed.
    Failed(ApiError),
}

/// A reflector's thread and its state.
struct Run<D> {
    id: u64,
    what: String,
    path: String,
    selectors: Vec<(&'static str, String)>,
    decode: Arc<D>,
    setup: Setup,
    stop: Arc<AtomicBool>,
    /// The scope's objects by key: their resourceVersion and items. Shared with the source
    /// after each burst, copied on the next change only if the source still holds it.
    objects: Arc<ObjectMap>,
    /// The version to watch from; `None` until listed, and when a list is needed again.
    version: Option<String>,
    /// The last call failed.
    failing: bool,
    /// When the last list ended.
    listed_at: Instant,
}

impl<D: Decode> Run<D> {
    fn run(&mut self) {
        let mut backoff = FIRST_BACKOFF;
        let mut relist_at = self.relist_at();
        while !self.stopped() {
            let relist_due = relist_at.is_some_and(|at| Instant::now() >= at);
            if self.version.is_none() || relist_due {
                match self.list() {
                    Ok(()) => {
                        backoff = FIRST_BACKOFF;
                        relist_at = self.relist_at();
                        self.failing = false;
                        self.publish();
                    }
                    Err(e) => {
                        self.fail(format!("list {}: {e}", self.what), e.status);
                        self.pause(&mut backoff, e.retry_after);
                        continue;
                    }
                }
            }
            let started = Instant::now();
            let listed_at = self.listed_at;
            match self.watch(relist_at) {
                Ended::Done if started.elapsed() < SHORT_WATCH => {
                    log::debug!(
                        "watch {}: ended after {:?} with no error",
                        self.what,
                        started.elapsed()
                    );
                    self.pause(&mut backoff, None);
                }
                Ended::Done => backoff = FIRST_BACKOFF,
                Ended::Gone => {
                    log::info!(
                        "watch {}: the version watched from was compacted away, listing again",
                        self.what
                    );
                    self.version = None;
                    if listed_at.elapsed() < SHORT_WATCH {
                        self.pause(&mut backoff, None);
                    }
                }
                Ended::Failed(e) => {
                    self.fail(format!("watch {}: {e}", self.what), e.status);
                    self.pause(&mut backoff, e.retry_after);
                }
            }
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Waits `backoff` (or the server's Retry-After, if longer), unless stopped meanwhile,
    /// and doubles it.
    fn pause(&self, backoff: &mut Duration, retry_after: Option<Duration>) {
        let until = Instant::now() + (*backoff).max(retry_after.unwrap_or_default());
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        while !self.stopped() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(200)));
        }
    }

    /// When the next safety-net re-list is due, if any.
    fn relist_at(&self) -> Option<Instant> {
        super::relist_at(self.setup.relist_within)
    }

    fn send(&self, update: Update) {
        let _ = self.setup.out.send(Message {
            id: self.id,
            update,
        });
        if let Some(wake) = &self.setup.wake {
            wake.wake();
        }
    }

    fn fail(&mut self, message: String, status: Option<u16>) {
        self.failing = true;
        self.send(Update::Failed(message, status));
    }

    /// Sends the scope's objects.
    fn publish(&self) {
        self.send(Update::Objects(Arc::clone(&self.objects)));
    }

    /// Lists the scope whole; objects whose version is unchanged keep their items.
    fn list(&mut self) -> Result<(), ApiError> {
        let lists = Arc::clone(&self.setup.lists);
        let _one_at_a_time = lists.lock().unwrap_or_else(|p| p.into_inner());
        let mut query = vec![("limit", self.setup.page_size.to_string())];
        query.extend(self.selectors.iter().cloned());
        let client = &self.setup.client;
        let (objects, version) =
            list_all(client, &self.path, &query, &*self.decode, &self.objects)?;
        self.objects = Arc::new(objects);
        self.version = Some(version);
        self.listed_at = Instant::now();
        Ok(())
    }

    /// Watches from the version listed or last seen until the server ends the watch, a
    /// re-list falls due, the reflector is stopped, or something fails.
    fn watch(&mut self, relist_at: Option<Instant>) -> Ended {
        let Some(version) = self.version.clone() else {
            return Ended::Gone;
        };
        let mut lasts = WATCH_FOR.mul_f64(1.0 + random());
        if let Some(at) = relist_at {
            lasts = lasts.min(at.saturating_duration_since(Instant::now()));
        }
        let lasts = Duration::from_secs(lasts.as_secs().max(1));
        let seconds = lasts.as_secs().to_string();
        let mut query: Vec<(&str, &str)> = self
            .selectors
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        query.extend([
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", version.as_str()),
            ("timeoutSeconds", seconds.as_str()),
        ]);
        let mut stream = match self
            .setup
            .client
            .watch(&self.path, &query, lasts + margin(lasts))
        {
            Ok(stream) => stream,
            Err(e) if e.status == Some(410) => return Ended::Gone,
            Err(e) => return Ended::Failed(e),
        };
        if std::mem::take(&mut self.failing) {
            self.send(Update::Healthy);
        }
        // When the first change not yet sent was applied.
        let mut unsent: Option<Instant> = None;
        let ended = loop {
            let line = match stream.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break Ended::Done,
                Err(e) => break Ended::Failed(e),
            };
            match self.apply(line) {
                Ok(true) => unsent = unsent.or(Some(Instant::now())),
                Ok(false) => {}
                Err(ended) => break ended,
            }
            // After a burst; or, under a stream that never pauses, once a second.
            let due = unsent.is_some_and(|at| stream.drained() || at.elapsed() >= SEND_WITHIN);
            if due {
                self.publish();
                unsent = None;
            }
            if self.stopped() {
                break Ended::Done;
            }
        };
        if unsent.is_some() {
            self.publish();
        }
        ended
    }

    /// Applies one event to the scope; returns whether its items changed, or why the
    /// watch must end.
    fn apply(&mut self, line: &[u8]) -> Result<bool, Ended> {
        let event: Event<'_> = serde_json::from_slice(line).map_err(|e| invalid(&e))?;
        let object = event.object.get().as_bytes();
        match event.kind {
            "ADDED" | "MODIFIED" | "DELETED" => {
                let object: D::Object<'_> =
                    serde_json::from_slice(object).map_err(|e| invalid(&e))?;
                let (key, version) = self.decode.key(&object);
                self.version = Some(version.to_string());
                let items = match event.kind {
                    "DELETED" => None,
                    _ => {
                        let same = self
                            .objects
                            .get(&key)
                            .is_some_and(|(v, _)| !version.is_empty() && v == version);
                        if same {
                            return Ok(false);
                        }
                        self.decode.items(&object)
                    }
                };
                Ok(match items {
                    Some(items) => {
                        let objects = Arc::make_mut(&mut self.objects);
                        objects.insert(key, (version.to_string(), items));
                        true
                    }
                    None if self.objects.contains_key(&key) => {
                        Arc::make_mut(&mut self.objects).remove(&key);
                        true
                    }
                    None => false,
                })
            }
            "BOOKMARK" => {
                let bookmark: Bookmark<'_> =
                    serde_json::from_slice(object).map_err(|e| invalid(&e))?;
                self.version = Some(bookmark.metadata.resource_version.into_owned());
                Ok(false)
            }
            "ERROR" => {
                let status: Status = serde_json::from_slice(object).map_err(|e| invalid(&e))?;
                if status.code == Some(410) {
                    return Err(Ended::Gone);
                }
                Err(Ended::Failed(ApiError {
                    status: status.code,
                    reason: super::client::cut(&status.reason.unwrap_or_default()),
                    message: super::client::cut(&status.message.unwrap_or_default()),
                    retry_after: None,
                }))
            }
            other => {
                log::debug!(
                    "watch {}: event of unknown type {} skipped",
                    self.what,
                    super::client::cut(other)
                );
                Ok(false)
            }
        }
    }
}

fn invalid(e: &serde_json::Error) -> Ended {
    Ended::Failed(super::invalid_json(e))
}

/// A number in [0, 1), different at each call and in each process.
fn random() -> f64 {
    RandomState::new().hash_one(Instant::now()) as f64 / u64::MAX as f64
}
