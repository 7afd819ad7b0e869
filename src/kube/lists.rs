//! `--kube-watch=false`: the Kubernetes source that lists every scope again at each refresh,
//! for API proxies that cut long requests. A failed list keeps the last good data of its
//! scope, counts one error and is retried with backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cabundles::Bundles;
use super::client::{ApiError, Client};
use super::secrets::{
    namespace_selectors, Kind, NamespaceFilter, Namespaces, Objects, Rules, NAMESPACES_PATH,
};
use super::{list_all, scope_name, scope_path, ObjectMap, Scope};
use crate::labels::LabelConfig;
use crate::model::Item;
use crate::poll::{Lane, Pass, Source};

/// First retry delay after a failed pass; doubles up to the refresh interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// `--watch-kube-secrets --kube-watch=false`: every scope listed again at each refresh
/// (or, with `--max-cache-duration`, at a random time between half and all of it).
pub struct ListSource {
    client: Client,
    rules: Arc<Rules>,
    labels: Arc<LabelConfig>,
    interval: Duration,
    scopes: BTreeMap<Scope, ObjectMap>,
    last: Option<Pass>,
    next_list: Option<Instant>,
    backoff: Duration,
}

impl ListSource {
    /// A source listing through `client` by `rules`, refreshed every `interval`.
    pub fn new(
        client: Client,
        rules: Arc<Rules>,
        labels: Arc<LabelConfig>,
        interval: Duration,
    ) -> Self {
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
    fn namespaces(&self, selector: &str) -> Result<Vec<String>, ApiError> {
        let mut query = vec![("limit", self.rules.settings().page_size.to_string())];
        query.extend(namespace_selectors(selector));
        let decode = NamespaceFilter {
            rules: Arc::clone(&self.rules),
        };
        let (names, _) = list_all(
            &self.client,
            NAMESPACES_PATH,
            &query,
            &decode,
            &ObjectMap::new(),
        )?;
        Ok(names.into_keys().collect())
    }

    /// Lists one scope; objects whose resourceVersion is unchanged are not decoded again.
    fn list(&self, scope: &Scope) -> Result<ObjectMap, ApiError> {
        let kind = scope.0;
        let (rules, labels) = (Arc::clone(&self.rules), Arc::clone(&self.labels));
        let mut query = vec![("limit", self.rules.settings().page_size.to_string())];
        query.extend(self.rules.selectors(kind));
        let empty = ObjectMap::new();
        let old = self.scopes.get(scope).unwrap_or(&empty);
        let (client, path) = (&self.client, scope_path(scope));
        let (objects, _) = match kind {
            Kind::Secret | Kind::ConfigMap => {
                let decode = Objects {
                    kind,
                    rules,
                    labels,
                };
                list_all(client, &path, &query, &decode, old)?
            }
            _ => {
                let decode = Bundles {
                    kind,
                    rules,
                    labels,
                };
                list_all(client, &path, &query, &decode, old)?
            }
        };
        Ok(objects)
    }

    fn items(&self) -> Vec<Arc<Item>> {
        self.scopes
            .values()
            .flat_map(|objects| {
                objects
                    .values()
                    .flat_map(|(_, items)| items.iter().cloned())
            })
            .collect()
    }

    /// When to list again after a good pass: every refresh, or at a random point between
    /// half and all of `--max-cache-duration`.
    fn schedule(&self) -> Option<Instant> {
        super::relist_at(self.rules.settings().max_cache_duration)
    }
}

impl Source for ListSource {
    fn describe(&self) -> String {
        super::describe(self.rules.settings())
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
        let (cluster, namespaced): (Vec<Kind>, Vec<Kind>) = self
            .rules
            .kinds()
            .into_iter()
            .partition(|k| k.cluster_scoped());
        let plan = match namespaced.is_empty() {
            true => Namespaces::Named(Vec::new()),
            false => self.rules.namespaces(),
        };
        let namespaces = match plan {
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
        let mut scopes = BTreeMap::new();
        let mut wanted: Vec<Scope> = cluster.into_iter().map(|kind| (kind, None)).collect();
        match namespaces {
            Some(namespaces) => {
                for namespace in namespaces {
                    wanted.extend(namespaced.iter().map(|kind| (*kind, namespace.clone())));
                }
            }
            // The namespaces are unknown: their scopes keep their last good data.
            None => {
                let old = std::mem::take(&mut self.scopes);
                let (kept, rest) = old.into_iter().partition(|((k, _), _)| !k.cluster_scoped());
                scopes = kept;
                self.scopes = rest;
            }
        }
        for scope in wanted {
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
                        errors.push(format!("list {}: {e}", scope_name(&scope)));
                        failure = Some(e);
                    }
                    // Keep the last good data of this scope.
                    if let Some(old) = self.scopes.remove(&scope) {
                        scopes.insert(scope, old);
                    }
                }
            }
        }
        self.scopes = scopes;
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
