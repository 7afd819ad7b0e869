//! `--watch-kube-secrets` (watching, the default): each scope is listed once, then watched
//! by a [`Reflector`] thread of its own, which sends the scope's objects after every burst
//! of events and wakes this source. A refresh only gathers what the reflectors sent: with
//! nothing new it hands on the previous pass.
//!
//! Where: across the cluster with no namespace filter; in each namespace named by
//! `--include-namespace` alone. With namespace label filters or exclusions the namespaces
//! are watched too, and Secrets are watched across the cluster and kept when their
//! namespace passes the filters; where RBAC refuses that (403 on the first list), each kept
//! namespace gets its own reflector instead, and the scopes follow the namespaces as they
//! come into the filters and leave them. The kinds holding caBundles belong to no
//! namespace: one reflector each, whatever the namespace filters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::cabundles::Bundles;
use super::client::Client;
use super::reflector::{Decode, Message, Reflector, Setup, Update};
use super::secrets::{
    namespace_selectors, Kind, NamespaceFilter, Namespaces, Objects, Rules, NAMESPACES_PATH,
};
use super::{scope_name, scope_path, ObjectMap, Scope};
use crate::labels::LabelConfig;
use crate::model::{Item, Items};
use crate::poll::{Lane, Pass, Source, Wake};

/// `--watch-kube-secrets` and `--watch-kube-ca-bundles`, listing once and then watching.
pub struct WatchSource {
    client: Client,
    rules: Arc<Rules>,
    labels: Arc<LabelConfig>,
    /// Held by a reflector while it lists: one list at a time, so that memory holds one
    /// page however many scopes start together.
    lists: Arc<Mutex<()>>,
    wake: Option<Wake>,
    out: Sender<Message>,
    messages: Receiver<Message>,
    next_id: u64,
    /// The namespaces' reflector, with namespace label filters or exclusions.
    namespaces: Option<Watched>,
    /// Namespaced kinds are watched in each kept namespace rather than across the cluster.
    per_namespace: bool,
    scopes: BTreeMap<Scope, Watched>,
    last: Option<Pass>,
}

/// A reflector and what it last sent.
struct Watched {
    id: u64,
    _reflector: Reflector,
    objects: Arc<ObjectMap>,
    /// It has listed its scope at least once.
    listed: bool,
    /// It has sent something: objects or a failure.
    heard: bool,
    /// Failures since the previous pass.
    failures: Vec<String>,
    /// The last failure, until objects or a healthy watch follow it.
    broken: Option<String>,
}

impl WatchSource {
    /// A source watching through `client` (and clones of it: the rate limit covers them
    /// all) by `rules`.
    pub fn new(client: Client, rules: Arc<Rules>, labels: Arc<LabelConfig>) -> Self {
        let (out, messages) = unbounded();
        // Namespaces an include filter bounds are watched one by one: a shard that selects a
        // few namespaces by label then lists and holds their Secrets alone, not the
        // cluster's. Exclude filters alone keep most namespaces: one watch across the
        // cluster, filtered, costs less than one per namespace.
        let per_namespace = match rules.namespaces() {
            Namespaces::All => false,
            Namespaces::Named(_) => true,
            Namespaces::Listed(_) => rules.bounds_namespaces(),
        };
        Self {
            client,
            rules,
            labels,
            lists: Arc::default(),
            wake: None,
            out,
            messages,
            next_id: 0,
            namespaces: None,
            per_namespace,
            scopes: BTreeMap::new(),
            last: None,
        }
    }

    /// Starts a reflector. A thread that cannot start (the process is out of threads) is
    /// logged, and its scope is missing until the scopes change again.
    fn start<D: Decode>(
        &mut self,
        what: String,
        path: String,
        selectors: Vec<(&'static str, String)>,
        decode: D,
    ) -> Option<Watched> {
        self.next_id += 1;
        let setup = Setup {
            client: self.client.clone(),
            page_size: self.rules.settings().page_size,
            relist_within: self.rules.settings().max_cache_duration,
            lists: Arc::clone(&self.lists),
            out: self.out.clone(),
            wake: self.wake.clone(),
        };
        let id = self.next_id;
        match Reflector::start(id, what.clone(), path, selectors, Arc::new(decode), setup) {
            Ok(reflector) => Some(Watched {
                id,
                _reflector: reflector,
                objects: Arc::default(),
                listed: false,
                heard: false,
                failures: Vec::new(),
                broken: None,
            }),
            Err(e) => {
                log::error!("watch {what}: cannot start its thread: {e}");
                None
            }
        }
    }

    fn start_scope(&mut self, scope: Scope) {
        let (what, path) = (scope_name(&scope), scope_path(&scope));
        let selectors = self.rules.selectors(scope.0);
        let (rules, labels) = (Arc::clone(&self.rules), Arc::clone(&self.labels));
        let kind = scope.0;
        let watched = match kind {
            Kind::Secret | Kind::ConfigMap => {
                let decode = Objects {
                    kind,
                    rules,
                    labels,
                };
                self.start(what, path, selectors, decode)
            }
            _ => {
                let decode = Bundles {
                    kind,
                    rules,
                    labels,
                };
                self.start(what, path, selectors, decode)
            }
        };
        if let Some(watched) = watched {
            self.scopes.insert(scope, watched);
        }
    }

    /// The kinds listed in namespaces (Secrets, ConfigMaps).
    fn namespaced(&self) -> Vec<Kind> {
        let kinds = self.rules.kinds().into_iter();
        kinds.filter(|k| !k.cluster_scoped()).collect()
    }

    /// The namespaces kept, when the namespaces are watched.
    fn kept_namespaces(&self) -> Option<BTreeSet<String>> {
        let watched = self.namespaces.as_ref()?;
        Some(watched.objects.keys().cloned().collect())
    }

    /// Makes the per-namespace scopes those of `namespaces`: starts the missing, stops the
    /// others.
    fn follow(&mut self, namespaces: &BTreeSet<String>) {
        let kinds = self.namespaced();
        self.scopes.retain(|(kind, ns), _| match ns {
            Some(ns) => namespaces.contains(ns),
            None => kind.cluster_scoped(),
        });
        for namespace in namespaces {
            for kind in &kinds {
                let scope = (*kind, Some(namespace.clone()));
                if !self.scopes.contains_key(&scope) {
                    self.start_scope(scope);
                }
            }
        }
    }

    /// Starts what the rules ask for: the scopes, and the namespaces' reflector whose names
    /// filter them or choose them.
    fn begin(&mut self) {
        for kind in self.rules.kinds() {
            if kind.cluster_scoped() {
                self.start_scope((kind, None));
            }
        }
        if self.namespaced().is_empty() {
            return;
        }
        match self.rules.namespaces() {
            Namespaces::All => {
                for kind in self.namespaced() {
                    self.start_scope((kind, None));
                }
            }
            Namespaces::Named(names) => {
                let names: BTreeSet<String> = names.into_iter().collect();
                self.follow(&names);
            }
            Namespaces::Listed(selector) => {
                let decode = NamespaceFilter {
                    rules: Arc::clone(&self.rules),
                };
                self.namespaces = self.start(
                    "namespaces".to_string(),
                    NAMESPACES_PATH.to_string(),
                    namespace_selectors(&selector),
                    decode,
                );
                // Each namespace kept is followed once the namespaces are listed.
                if !self.per_namespace {
                    for kind in self.namespaced() {
                        self.start_scope((kind, None));
                    }
                }
            }
        }
    }

    /// Takes one message in; returns whether the items (or the scopes) changed.
    fn take(&mut self, message: Message) -> bool {
        let Message { id, update } = message;
        let is_namespaces = self.namespaces.as_ref().is_some_and(|w| w.id == id);
        let found = match is_namespaces {
            true => None,
            false => self
                .scopes
                .iter()
                .find(|(_, w)| w.id == id)
                .map(|(s, _)| s.clone()),
        };
        // Listing a namespaced kind across the cluster is refused: watch each namespace.
        if let (Some(scope), Update::Failed(why, Some(403))) = (&found, &update) {
            let refused = self.scopes.get(scope).is_some_and(|w| !w.listed);
            let listed = self.namespaces.is_some();
            if listed
                && scope.1.is_none()
                && !scope.0.cluster_scoped()
                && refused
                && !self.per_namespace
            {
                log::info!("{why}: watching each namespace kept instead");
                self.per_namespace = true;
                self.scopes
                    .retain(|(kind, ns), _| ns.is_some() || kind.cluster_scoped());
                if let Some(names) = self.kept_namespaces() {
                    self.follow(&names);
                }
                return true;
            }
        }
        let watched = match (is_namespaces, &found) {
            (true, _) => self.namespaces.as_mut(),
            (false, Some(scope)) => self.scopes.get_mut(scope),
            // A message from a reflector stopped since it was sent.
            (false, None) => None,
        };
        let Some(watched) = watched else {
            return false;
        };
        watched.heard = true;
        match update {
            Update::Objects(objects) => {
                watched.objects = objects;
                watched.listed = true;
                watched.broken = None;
                if is_namespaces && self.per_namespace {
                    if let Some(names) = self.kept_namespaces() {
                        self.follow(&names);
                    }
                }
                true
            }
            Update::Failed(why, _) => {
                watched.failures.push(why.clone());
                watched.broken = Some(why);
                false
            }
            Update::Healthy => {
                watched.broken = None;
                false
            }
        }
    }

    /// Every reflector has sent something.
    fn all_heard(&self) -> bool {
        self.watched().all(|w| w.heard)
    }

    fn watched(&self) -> impl Iterator<Item = &Watched> {
        self.namespaces.iter().chain(self.scopes.values())
    }

    /// Every item of every scope; a namespaced kind watched across the cluster with
    /// namespace filters keeps the objects of the namespaces kept.
    fn gather(&self) -> Items {
        let kept = match self.per_namespace {
            true => None,
            false => self.kept_namespaces(),
        };
        let mut all: Vec<Arc<Item>> = Vec::new();
        for ((kind, ns), watched) in &self.scopes {
            let filter = kept
                .as_ref()
                .filter(|_| ns.is_none() && !kind.cluster_scoped());
            for (key, (_, items)) in watched.objects.iter() {
                let namespace = key.split_once('/').map_or("", |(ns, _)| ns);
                if filter.is_none_or(|kept| kept.contains(namespace)) {
                    all.extend(items.iter().cloned());
                }
            }
        }
        Items::from(all)
    }
}

impl Source for WatchSource {
    fn describe(&self) -> String {
        super::describe(self.rules.settings())
    }

    /// Its first refresh waits for the first lists, which wait on the API server.
    fn lane(&self) -> Lane {
        Lane::Network
    }

    fn attach(&mut self, wake: Wake) {
        self.wake = Some(wake);
    }

    fn refresh(&mut self) -> Pass {
        let first = self.last.is_none();
        if first {
            self.begin();
        }
        let mut changed = first;
        loop {
            // The first pass waits until every reflector has listed or failed (the client's
            // timeouts bound each call); later ones take what has come.
            let message = match first && !self.all_heard() {
                true => self.messages.recv().ok(),
                false => self.messages.try_recv().ok(),
            };
            match message {
                Some(message) => changed |= self.take(message),
                None => break,
            }
        }
        let mut errors = Vec::new();
        for watched in self.namespaces.iter_mut().chain(self.scopes.values_mut()) {
            match (watched.failures.is_empty(), &watched.broken) {
                (true, Some(broken)) => errors.push(broken.clone()),
                _ => errors.append(&mut watched.failures),
            }
        }
        let items = match (&self.last, changed) {
            (Some(last), false) => Arc::clone(&last.items),
            _ => self.gather(),
        };
        self.labels.prune();
        let pass = Pass {
            items,
            errors,
            ready: self.watched().all(|w| w.listed),
            retry_in: None,
        };
        self.last = Some(pass.clone());
        pass
    }
}
