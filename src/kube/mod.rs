//! The Kubernetes source: Secrets (and ConfigMaps with `-c`), and namespaces when their
//! labels filter, decoded by [`secrets::Rules`]. By default each scope is listed once, then
//! watched ([`watch::WatchSource`], one [`reflector::Reflector`] thread per scope); with
//! `--kube-watch=false` every scope is listed again at each refresh
//! ([`lists::ListSource`]). Either way a failed call keeps the last good data of its scope,
//! counts one error and is retried with backoff. Lists go page by page through
//! [`client::Client`], one page held at a time.

pub mod cabundles;
pub mod client;
pub mod config;
pub mod lists;
pub mod passwords;
pub mod proxy;
pub mod reflector;
pub mod secrets;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::Item;
use client::{ApiError, Client};
use reflector::Decode;
use secrets::{Kind, Page};

/// How many times an expired continue token restarts one list.
const MAX_RESTARTS: usize = 3;

/// One list: a kind in a namespace, or across the cluster (`None`).
pub type Scope = (Kind, Option<String>);

/// The objects of a scope by `namespace/name`: their resourceVersion and items, in key
/// order.
pub type ObjectMap = BTreeMap<String, (String, Vec<Arc<Item>>)>;

/// When a safety-net re-list (`--max-cache-duration`) is next due: at a random point
/// between half and all of `within` from now, so that replicas spread out; `None` for 0.
pub fn relist_at(within: std::time::Duration) -> Option<std::time::Instant> {
    use std::hash::BuildHasher;
    let now = std::time::Instant::now();
    let random =
        std::collections::hash_map::RandomState::new().hash_one(now) as f64 / u64::MAX as f64;
    (!within.is_zero()).then(|| now + within.mul_f64(0.5 + 0.5 * random))
}

/// The source's name in logs: the flags that asked for it.
fn describe(settings: &secrets::Settings) -> String {
    match (settings.secrets, settings.ca_bundles) {
        (true, true) => "--watch-kube-secrets --watch-kube-ca-bundles",
        (false, true) => "--watch-kube-ca-bundles",
        _ => "--watch-kube-secrets",
    }
    .to_string()
}

/// The API path that lists a scope.
fn scope_path(scope: &Scope) -> String {
    match &scope.1 {
        Some(ns) => format!("{}/namespaces/{ns}/{}", scope.0.api(), scope.0.resource()),
        None => format!("{}/{}", scope.0.api(), scope.0.resource()),
    }
}

/// A scope in messages: `secrets in namespace a`, `secrets in all namespaces`.
fn scope_name(scope: &Scope) -> String {
    match &scope.1 {
        Some(ns) => format!("{} in namespace {ns}", scope.0.resource()),
        None if scope.0.cluster_scoped() => scope.0.resource().to_string(),
        None => format!("{} in all namespaces", scope.0.resource()),
    }
}

/// Lists `path` whole and decodes what it keeps; an object whose resourceVersion is the
/// one in `old` keeps its items from there, undecoded. Returns the objects and the list's
/// resourceVersion (where a watch of the same query may start).
pub fn list_all<D: Decode>(
    client: &Client,
    path: &str,
    query: &[(&str, String)],
    decode: &D,
    old: &ObjectMap,
) -> Result<(ObjectMap, String), ApiError> {
    let mut objects = ObjectMap::new();
    let version = paginate::<D>(client, path, query, |page, first| {
        if first {
            objects.clear();
        }
        for object in &page.items {
            let (key, version) = decode.key(object);
            let items = match old.get(&key) {
                Some((v, items)) if !version.is_empty() && v == version => Some(items.clone()),
                _ => decode.items(object),
            };
            if let Some(items) = items {
                objects.insert(key, (version.to_string(), items));
            }
        }
    })?;
    Ok((objects, version))
}

/// GETs every page of a list in turn, one page held at a time, handing each to `each` with
/// whether it is the first of the list. An expired continue token (410) restarts the list
/// from its first page, up to [`MAX_RESTARTS`] times.
fn paginate<D: Decode>(
    client: &Client,
    path: &str,
    query: &[(&str, String)],
    mut each: impl FnMut(Page<'_, D::Object<'_>>, bool),
) -> Result<String, ApiError> {
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
        let page: Page<'_, D::Object<'_>> =
            serde_json::from_slice(&body).map_err(|e| invalid_json(&e))?;
        let first = next.is_empty();
        next = page
            .metadata
            .next
            .as_deref()
            .unwrap_or_default()
            .to_string();
        let version = page
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or_default()
            .to_string();
        each(page, first);
        if next.is_empty() {
            return Ok(version);
        }
    }
}

fn invalid_json(e: &serde_json::Error) -> ApiError {
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
