//! The Kubernetes source: Secrets (and ConfigMaps with `-c`) listed page by page through
//! [`client::Client`], decoded by [`secrets::Rules`], cached by `resourceVersion`. A failed
//! list keeps the last good data of its scope, counts one error and is retried with backoff.

pub mod client;
pub mod config;
pub mod proxy;
pub mod secrets;

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::labels::LabelConfig;
use crate::model::Item;
use crate::poll::{Lane, Pass, Source};
use client::{ApiError, Client};
use secrets::{Kind, Namespaces, Page, Rules};

/// First retry delay after a failed pass; doubles up to the refresh interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// How many times an expired continue token restarts one list.
const MAX_RESTARTS: usize = 3;

/// One list: a kind in a namespace, or across the cluster (`None`).
type Scope = (Kind, Option<String>);

/// The last good result of one scope.
#[derive(Default)]
struct ScopeState {
    /// Objects by `namespace/name`: their resourceVersion and items, in list order.
    objects: Vec<(String, String, Vec<Arc<Item>>)>,
}

/// `--watch-kube-secrets`.
pub struct KubeSource {
    client: Client,
    rules: Rules,
    labels: Arc<LabelConfig>,
    interval: Duration,
    scopes: BTreeMap<Scope, ScopeState>,
    last: Option<Pass>,
    next_list: Option<Instant>,
    backoff: Duration,
}

impl KubeSource {
    /// A source listing through `client` by `rules`, refreshed every `interval`.
    pub fn new(client: Client, rules: Rules, labels: Arc<LabelConfig>, interval: Duration) -> Self {
        Self {
            client,
            rules,
            labels,
            interval,
            scopes: BTreeMap::new(),
            last: None,
            next_list: None,
            backoff: FIRST_BACKOFF,
        }
    }

    /// Lists the namespaces and keeps those the filters accept.
    fn namespaces(&mut self, selector: &str) -> Result<Vec<String>, ApiError> {
        let mut query = vec![("limit", self.rules.settings().page_size.to_string())];
        if !selector.is_empty() {
            query.push(("labelSelector", selector.to_string()));
        }
        let mut names = Vec::new();
        let rules = &self.rules;
        paginate(
            &mut self.client,
            "/api/v1/namespaces",
            &query,
            |page, first| {
                if first {
                    names.clear();
                }
                names.extend(
                    page.items
                        .iter()
                        .filter(|ns| rules.keep_namespace(ns))
                        .map(|ns| ns.metadata.name.to_string()),
                );
            },
        )?;
        Ok(names)
    }

    /// Lists one scope; objects whose resourceVersion is unchanged are not decoded again.
    fn list(&mut self, scope: &Scope) -> Result<ScopeState, ApiError> {
        let (kind, namespace) = scope;
        let path = match namespace {
            Some(ns) => format!("/api/v1/namespaces/{ns}/{}", kind.resource()),
            None => format!("/api/v1/{}", kind.resource()),
        };
        let mut query = vec![("limit", self.rules.settings().page_size.to_string())];
        query.extend(self.rules.selectors(*kind));
        let old: HashMap<&str, (&str, &Vec<Arc<Item>>)> = self
            .scopes
            .get(scope)
            .map(|s| {
                s.objects
                    .iter()
                    .map(|(k, rv, items)| (k.as_str(), (rv.as_str(), items)))
                    .collect()
            })
            .unwrap_or_default();
        let (rules, labels) = (&self.rules, &self.labels);
        let mut state = ScopeState::default();
        paginate(&mut self.client, &path, &query, |page, first| {
            if first {
                state = ScopeState::default();
            }
            for object in page.items.iter().filter(|o| rules.keep(*kind, o)) {
                let meta = &object.metadata;
                let key = format!("{}/{}", meta.namespace.as_deref().unwrap_or(""), meta.name);
                let rv = meta.resource_version.as_deref().unwrap_or("").to_string();
                let items = match old.get(key.as_str()) {
                    Some((old_rv, items)) if !rv.is_empty() && *old_rv == rv => (*items).clone(),
                    _ => rules
                        .items(*kind, object, labels)
                        .into_iter()
                        .map(Arc::new)
                        .collect(),
                };
                state.objects.push((key, rv, items));
            }
        })?;
        Ok(state)
    }

    fn items(&self) -> Vec<Arc<Item>> {
        self.scopes
            .values()
            .flat_map(|s| {
                s.objects
                    .iter()
                    .flat_map(|(_, _, items)| items.iter().cloned())
            })
            .collect()
    }

    /// When to list again after a good pass: every refresh, or at a random point between
    /// half and all of `--max-cache-duration`.
    fn schedule(&self) -> Option<Instant> {
        let max = self.rules.settings().max_cache_duration;
        if max.is_zero() {
            return None;
        }
        let random = RandomState::new().hash_one(Instant::now()) as f64 / u64::MAX as f64;
        Some(Instant::now() + max.mul_f64(0.5 + 0.5 * random))
    }
}

/// GETs every page of a list in turn, one page held at a time, handing each to `each` with
/// whether it is the first of the list. An expired continue token (410) restarts the list
/// from its first page, up to [`MAX_RESTARTS`] times.
fn paginate(
    client: &mut Client,
    path: &str,
    query: &[(&str, String)],
    mut each: impl FnMut(Page<'_>, bool),
) -> Result<(), ApiError> {
    let mut restarts = 0;
    let mut next = String::new();
    loop {
        let mut q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if !next.is_empty() {
            q.push(("continue", &next));
        }
        let body = match client.get(path, &q) {
            Ok(body) => body,
            Err(e) if e.is_expired() && !next.is_empty() && restarts < MAX_RESTARTS => {
                restarts += 1;
                log::info!("list {path}: continue token expired, restarting the list");
                next.clear();
                continue;
            }
            Err(e) => return Err(e),
        };
        let page: Page<'_> = serde_json::from_slice(&body).map_err(invalid_json)?;
        let first = next.is_empty();
        next = page
            .metadata
            .next
            .as_deref()
            .unwrap_or_default()
            .to_string();
        each(page, first);
        if next.is_empty() {
            return Ok(());
        }
    }
}

fn invalid_json(e: serde_json::Error) -> ApiError {
    ApiError {
        status: None,
        reason: String::new(),
        // serde quotes the offending value, which may be a whole remote string.
        message: format!(
            "invalid JSON in the response: {}",
            client::cut(&e.to_string())
        ),
        retry_after: None,
    }
}

fn scope_name(scope: &Scope) -> String {
    match &scope.1 {
        Some(ns) => format!("list {} in namespace {ns}", scope.0.resource()),
        None => format!("list {} in all namespaces", scope.0.resource()),
    }
}

impl Source for KubeSource {
    fn describe(&self) -> String {
        "--watch-kube-secrets".to_string()
    }

    /// Its lists wait on the API server, which may hold them up to the client's timeouts.
    fn lane(&self) -> Lane {
        Lane::Network
    }

    fn refresh(&mut self) -> Pass {
        if let (Some(at), Some(last)) = (self.next_list, &self.last) {
            if Instant::now() < at {
                return last.clone();
            }
        }
        let mut errors = Vec::new();
        let mut failure: Option<ApiError> = None;
        let namespaces = match self.rules.namespaces() {
            Namespaces::All => Some(vec![None]),
            Namespaces::Named(names) => Some(names.into_iter().map(Some).collect()),
            Namespaces::Listed(selector) => match self.namespaces(&selector) {
                Ok(names) => Some(names.into_iter().map(Some).collect()),
                Err(e) => {
                    errors.push(format!("list namespaces: {e}"));
                    failure = Some(e);
                    None
                }
            },
        };
        if let Some(namespaces) = namespaces {
            let mut scopes = BTreeMap::new();
            for namespace in namespaces {
                for kind in self.rules.kinds() {
                    let scope = (kind, namespace.clone());
                    let throttled = failure.as_ref().is_some_and(|f| f.status == Some(429));
                    let result = if throttled {
                        None
                    } else {
                        Some(self.list(&scope))
                    };
                    match result {
                        Some(Ok(state)) => {
                            scopes.insert(scope, state);
                        }
                        other => {
                            if let Some(Err(e)) = other {
                                errors.push(format!("{}: {e}", scope_name(&scope)));
                                failure = Some(e);
                            }
                            // Keep the last good data of this scope.
                            if let Some(old) = self.scopes.remove(&scope) {
                                scopes.insert(scope, old);
                            }
                        }
                    }
                }
            }
            self.scopes = scopes;
        }
        let ready = failure.is_none();
        let retry_in = match &failure {
            None => {
                self.backoff = FIRST_BACKOFF;
                self.next_list = self.schedule();
                None
            }
            Some(e) => {
                // Our own backoff stays within the refresh interval; the server's
                // Retry-After is honoured whatever its length.
                let wait = self
                    .backoff
                    .min(self.interval)
                    .max(e.retry_after.unwrap_or_default());
                self.backoff = (self.backoff * 2).min(self.interval);
                self.next_list = None;
                Some(wait)
            }
        };
        self.labels.prune();
        let pass = Pass {
            items: self.items().into(),
            errors,
            ready,
            retry_in,
        };
        self.last = Some(pass.clone());
        pass
    }
}
