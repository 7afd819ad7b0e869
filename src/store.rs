//! The state the store thread owns: what every source last reported and the error counter,
//! published as an immutable [`View`] that scrapes render from.
//!
//! A report costs what it carries: each source's rows are de-duplicated on their own when its
//! report changes, and a view is the list of every source's rows. Label sets that several
//! sources hold (a path watched twice, or `-l` dropping the labels that told two items
//! apart) are the exception: their items are merged into one more set of rows, rebuilt only
//! when a source holding one of them changes, and left out of each source's rows at render.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

#[cfg(test)]
use crate::model::Item;
use crate::model::{Items, Report, Series};

/// What a scrape renders; shared with the HTTP loop and its workers, never changed once
/// published.
#[derive(Default)]
pub struct View {
    /// Changes with every publication.
    pub generation: u64,
    /// Each source's rows, in source order.
    sources: Arc<[Arc<Rows>]>,
    /// The rows of label sets held by several sources, rendered after every source's.
    shared: Arc<Shared>,
    /// Certificate series in the view.
    cert_count: usize,
    /// CRL series in the view.
    crl_count: usize,
    /// Read failures in the latest refresh of every source.
    pub read_errors: u64,
    /// Read failures since start.
    pub read_errors_total: u64,
}

/// De-duplicated rows of some items: one source's, or the merge of those that several
/// sources share.
#[derive(Default)]
struct Rows {
    /// The report's own slice when the rows are one source's.
    items: Items,
    /// A digest of each item's labels.
    digests: Vec<u64>,
    /// Each certificate series: (item, series, needs a discriminator), in item order.
    certs: Vec<Row>,
    /// Each CRL series, the same way.
    crls: Vec<Row>,
    /// (item, has a failure), one per distinct label set, in item order.
    errors: Vec<(u32, bool)>,
    /// The items' read failures.
    failures: u64,
}

/// One series of a [`Rows`]: (item, series in the item, needs a discriminator).
type Row = (u32, u32, bool);

/// Label sets held by more than one source, and their merged rows.
#[derive(Default)]
struct Shared {
    /// The label digests whose items are rendered here rather than with their source.
    digests: HashSet<u64>,
    rows: Rows,
}

/// Where a rendering stands in a view's certificate or CRL series (see [`View::next_cert`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// A source's index, or the source count for the shared rows.
    segment: usize,
    row: usize,
}

impl View {
    /// Number of certificate series.
    pub fn cert_count(&self) -> usize {
        self.cert_count
    }

    /// Number of CRL series.
    pub fn crl_count(&self) -> usize {
        self.crl_count
    }

    /// The certificate series at `at`, moving `at` past it: its item's labels, the series,
    /// and whether it needs a `discriminator` label. `None` once every series was given.
    pub fn next_cert(&self, at: &mut Cursor) -> Option<(&str, &Series, bool)> {
        self.next_row(at, |rows| &rows.certs)
    }

    /// The CRL series at `at`, as [`Self::next_cert`] gives certificates.
    pub fn next_crl(&self, at: &mut Cursor) -> Option<(&str, &Series, bool)> {
        self.next_row(at, |rows| &rows.crls)
    }

    fn next_row(
        &self,
        at: &mut Cursor,
        of: impl Fn(&Rows) -> &Vec<Row>,
    ) -> Option<(&str, &Series, bool)> {
        loop {
            let (rows, hide) = self.segment(at.segment)?;
            let Some(&(item, series, disc)) = of(rows).get(at.row) else {
                *at = Cursor {
                    segment: at.segment + 1,
                    row: 0,
                };
                continue;
            };
            at.row += 1;
            if hide && self.shared.digests.contains(&rows.digests[item as usize]) {
                continue;
            }
            let item = &rows.items[item as usize];
            return Some((&*item.labels, &item.series[series as usize], disc));
        }
    }

    /// Every certificate series once, in rendering order (see [`View::next_cert`]).
    pub fn certs(&self) -> impl Iterator<Item = (&str, &Series, bool)> + '_ {
        let mut at = Cursor::default();
        std::iter::from_fn(move || self.next_cert(&mut at))
    }

    /// Every CRL series once, in rendering order (see [`View::next_crl`]).
    pub fn crls(&self) -> impl Iterator<Item = (&str, &Series, bool)> + '_ {
        let mut at = Cursor::default();
        std::iter::from_fn(move || self.next_crl(&mut at))
    }

    /// Every `x509_cert_error` series once: its labels and whether it had a failure.
    pub fn error_series(&self) -> impl Iterator<Item = (&str, bool)> + '_ {
        (0..=self.sources.len())
            .filter_map(|segment| self.segment(segment))
            .flat_map(move |(rows, hide)| {
                rows.errors.iter().filter_map(move |&(item, failing)| {
                    let hidden = hide && self.shared.digests.contains(&rows.digests[item as usize]);
                    (!hidden).then(|| (&*rows.items[item as usize].labels, failing))
                })
            })
    }

    /// The rows of segment `index` (a source's, then the shared ones) and whether the
    /// shared label sets must be left out of them.
    fn segment(&self, index: usize) -> Option<(&Rows, bool)> {
        match self.sources.get(index) {
            Some(rows) => Some((rows, !self.shared.digests.is_empty())),
            None if index == self.sources.len() => Some((&self.shared.rows, false)),
            None => None,
        }
    }
}

/// What the store keeps of one source.
#[derive(Default)]
struct Slot {
    rows: Arc<Rows>,
    /// Read failures in its latest report.
    errors: u64,
    /// It has reported once.
    reported: bool,
    /// It has sent a ready report once.
    settled: bool,
}

/// Every source's latest rows, counters, and the published view.
pub struct Store {
    slots: Vec<Slot>,
    /// Label digest → (a source holding it, how many sources hold it).
    holders: HashMap<u64, (u32, u32)>,
    /// Every source holding each label digest that more than one source holds, ascending.
    shared: HashMap<u64, Vec<u32>>,
    /// The shared rows must be rebuilt before the next publication.
    shared_dirty: bool,
    shared_rows: Arc<Shared>,
    /// Read failures since start, published or not.
    errors_total: u64,
    /// Reports applied since the last publication.
    pending: bool,
    /// Some report applied since the last publication replaced its source's rows.
    changed: bool,
    view: Arc<View>,
}

impl Store {
    /// An empty store for `sources` sources; not ready until each has reported once.
    pub fn new(sources: usize) -> Self {
        Self {
            slots: (0..sources).map(|_| Slot::default()).collect(),
            holders: HashMap::new(),
            shared: HashMap::new(),
            shared_dirty: false,
            shared_rows: Arc::default(),
            errors_total: 0,
            pending: false,
            changed: false,
            view: Arc::default(),
        }
    }

    /// Takes a source's report (it replaces the previous one whole), at a cost in
    /// proportion to what it carries. Nothing is published until [`Store::publish`], so
    /// that many reports arriving together publish once.
    pub fn apply(&mut self, report: Report) {
        let index = report.source;
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        slot.settled |= report.ready;
        self.pending = true;
        // The items' own failures are counted once, with their rows.
        let mut errors = report.errors.len() as u64;
        if slot.reported && !report.changed {
            slot.errors = errors + slot.rows.failures;
            self.errors_total += slot.errors;
            return;
        }
        slot.reported = true;
        self.changed = true;
        let rows = Arc::new(rows_of(report.items));
        errors += rows.failures;
        slot.errors = errors;
        self.errors_total += errors;
        let old = std::mem::replace(&mut slot.rows, Arc::clone(&rows));
        if self.slots.len() > 1 {
            self.track_holders(index as u32, &old.digests, &rows.digests);
        }
    }

    /// Publishes a view of every report applied so far; returns whether a new view was
    /// published. Reports that changed nothing a scrape shows (no rows, the same read
    /// failures) keep the view, generation and all, so that a body rendered from it stays
    /// good. Costs in proportion to the number of sources (and to the items of the sources
    /// that share label sets, when one of them changed).
    pub fn publish(&mut self) -> bool {
        if !std::mem::take(&mut self.pending) {
            return false;
        }
        let read_errors = self.slots.iter().map(|s| s.errors).sum();
        let counts = (read_errors, self.errors_total);
        if !std::mem::take(&mut self.changed)
            && counts == (self.view.read_errors, self.view.read_errors_total)
        {
            return false;
        }
        if std::mem::take(&mut self.shared_dirty) {
            self.shared_rows = Arc::new(self.shared_rows());
        }
        let sources: Arc<[Arc<Rows>]> = self.slots.iter().map(|s| Arc::clone(&s.rows)).collect();
        self.view = Arc::new(View {
            generation: self.view.generation + 1,
            cert_count: self.count(&sources, |rows| &rows.certs),
            crl_count: self.count(&sources, |rows| &rows.crls),
            sources,
            shared: Arc::clone(&self.shared_rows),
            read_errors,
            read_errors_total: self.errors_total,
        });
        true
    }

    /// How many series of `sources` a view shows, counting those of shared label sets
    /// once: in the shared rows, not in their sources' rows.
    fn count(&self, sources: &[Arc<Rows>], of: impl Fn(&Rows) -> &Vec<Row>) -> usize {
        let mut count: usize = sources.iter().map(|rows| of(rows).len()).sum();
        if !self.shared.is_empty() {
            count += of(&self.shared_rows.rows).len();
            for &source in self.shared.values().flatten().collect::<HashSet<_>>() {
                let rows = &sources[source as usize];
                count -= of(rows)
                    .iter()
                    .filter(|(item, _, _)| self.shared.contains_key(&rows.digests[*item as usize]))
                    .count();
            }
        }
        count
    }

    /// True once every source has finished a first pass that reached everything.
    pub fn ready(&self) -> bool {
        self.slots.iter().all(|s| s.settled)
    }

    /// True once every source has finished a first pass, whether it reached everything or
    /// failed somewhere (an API that did not answer): a scrape then has the whole truth,
    /// read errors included.
    pub fn first_pass_done(&self) -> bool {
        self.slots.iter().all(|s| s.reported)
    }

    /// The view last published.
    pub fn view(&self) -> Arc<View> {
        Arc::clone(&self.view)
    }

    /// Moves `source` from the label digests it held to those it holds now, noting when
    /// the shared rows must be rebuilt.
    fn track_holders(&mut self, source: u32, old: &[u64], new: &[u64]) {
        let old: HashSet<u64> = old.iter().copied().collect();
        let new: HashSet<u64> = new.iter().copied().collect();
        for digest in old.difference(&new) {
            let Some(entry) = self.holders.get_mut(digest) else {
                continue;
            };
            entry.1 -= 1;
            if entry.1 == 0 {
                self.holders.remove(digest);
                continue;
            }
            let Some(holders) = self.shared.get_mut(digest) else {
                continue;
            };
            holders.retain(|s| *s != source);
            entry.0 = holders[0];
            if holders.len() == 1 {
                self.shared.remove(digest);
            }
            self.shared_dirty = true;
        }
        for digest in new.difference(&old) {
            match self.holders.get_mut(digest) {
                None => {
                    self.holders.insert(*digest, (source, 1));
                }
                Some(entry) => {
                    entry.1 += 1;
                    let holders = self.shared.entry(*digest).or_insert_with(|| vec![entry.0]);
                    let at = holders.partition_point(|s| *s < source);
                    holders.insert(at, source);
                    self.shared_dirty = true;
                }
            }
        }
        // A source holding shared label sets changed: the merge must see its new items.
        if new.intersection(&old).any(|d| self.shared.contains_key(d)) {
            self.shared_dirty = true;
        }
    }

    /// The merged rows of the label sets several sources hold: their items in source order.
    fn shared_rows(&self) -> Shared {
        let mut sources: Vec<u32> = self.shared.values().flatten().copied().collect();
        sources.sort_unstable();
        sources.dedup();
        let mut items = Vec::new();
        for source in sources {
            let rows = &self.slots[source as usize].rows;
            for (item, digest) in rows.items.iter().zip(&rows.digests) {
                if self.shared.contains_key(digest) {
                    items.push(Arc::clone(item));
                }
            }
        }
        Shared {
            digests: self.shared.keys().copied().collect(),
            rows: rows_of(items.into()),
        }
    }
}

/// The de-duplicated rows of `items`: identical label sets of the same certificate are one
/// series; of different certificates, each gets a discriminator. Hashing, not sorting.
fn rows_of(items: Items) -> Rows {
    let digests: Vec<u64> = items.iter().map(|item| digest(&item.labels)).collect();
    let mut certs: Vec<Row> = Vec::with_capacity(items.iter().map(|i| i.series.len()).sum());
    // Series can only share a label set within items that share theirs: nearly always a
    // single item (a file, a Secret key); several when `-l` drops the labels that told them
    // apart. So no map of every series is needed.
    let mut groups: HashMap<&str, Vec<u32>> = HashMap::new();
    {
        let mut first_with: HashMap<u64, u32> = HashMap::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match first_with.get(&digests[i]) {
                None => {
                    first_with.insert(digests[i], i as u32);
                }
                Some(&first) if items[first as usize].labels == item.labels => groups
                    .entry(&item.labels)
                    .or_insert_with(|| vec![first])
                    .push(i as u32),
                // Same digest, other labels (astronomically rare): a group of its own, by
                // the slower road.
                Some(_) => groups.entry(&item.labels).or_default().push(i as u32),
            }
        }
    }
    // (series labels, issuer labels) -> (fingerprint, row) of each distinct certificate.
    let mut seen: HashMap<(&str, &str), Vec<(u32, usize)>> = HashMap::new();
    let mut add = |certs: &mut Vec<Row>, members: &[u32]| {
        seen.clear();
        for &i in members {
            for (s, series) in items[i as usize].series.iter().enumerate() {
                let rows = seen.entry((&series.labels, &series.issuer)).or_default();
                if rows.iter().any(|(fp, _)| *fp == series.fingerprint) {
                    continue; // the same certificate again: one series
                }
                let collision = !rows.is_empty();
                for (_, row) in rows.iter() {
                    certs[*row].2 = true;
                }
                rows.push((series.fingerprint, certs.len()));
                certs.push((i, s as u32, collision));
            }
        }
    };
    for (i, item) in items.iter().enumerate() {
        match groups.get(&*item.labels) {
            None if item.series.len() <= FEW => add_few(&mut certs, &items, i as u32),
            None => add(&mut certs, &[i as u32]),
            // A group is added whole, at its first member.
            Some(members) if members[0] == i as u32 => add(&mut certs, members),
            Some(_) => {}
        }
    }
    drop(seen);

    // x509_cert_error: one series per label set, failing if any item behind it failed.
    let mut errors: Vec<(u32, bool)> = Vec::new();
    let mut by_labels: HashMap<&str, usize> = HashMap::new();
    let mut failures = 0;
    for (i, item) in items.iter().enumerate() {
        failures += item.errors.len() as u64;
        if item.series.is_empty() && item.errors.is_empty() {
            continue;
        }
        let failing = !item.errors.is_empty();
        if !groups.contains_key(&*item.labels) {
            errors.push((i as u32, failing));
            continue;
        }
        match by_labels.get(&*item.labels) {
            Some(&at) => errors[at].1 |= failing,
            None => {
                by_labels.insert(&item.labels, errors.len());
                errors.push((i as u32, failing));
            }
        }
    }
    drop(by_labels);
    drop(groups);
    // CRLs were de-duplicated with the certificates (their labels never collide with a
    // certificate's but through `-l`); they are rendered as families of their own.
    let is_crl = |&(i, s, _): &Row| items[i as usize].series[s as usize].crl;
    let crls = match certs.iter().any(is_crl) {
        true => {
            let (crls, only_certs) = certs.into_iter().partition(is_crl);
            certs = only_certs;
            crls
        }
        false => Vec::new(),
    };
    Rows {
        items,
        digests,
        certs,
        crls,
        errors,
        failures,
    }
}

/// Series of one item compared pair by pair, not through a map, up to this many.
const FEW: usize = 8;

/// The rows of item `i`, alone in its label set and holding at most [`FEW`] series: as
/// `add` in [`rows_of`] would make them, without hashing.
fn add_few(certs: &mut Vec<Row>, items: &Items, i: u32) {
    let series = &items[i as usize].series;
    let start = certs.len();
    for (s, one) in series.iter().enumerate() {
        let same = |row: &Row| {
            let other = &series[row.1 as usize];
            other.labels == one.labels && other.issuer == one.issuer
        };
        let earlier = &mut certs[start..];
        if earlier
            .iter()
            .any(|row| same(row) && series[row.1 as usize].fingerprint == one.fingerprint)
        {
            continue; // the same certificate again: one series
        }
        let mut collision = false;
        for row in earlier.iter_mut().filter(|row| same(row)) {
            row.2 = true;
            collision = true;
        }
        certs.push((i, s as u32, collision));
    }
}

/// A digest of an item's labels.
fn digest(labels: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(labels, &mut h);
    std::hash::Hasher::finish(&h)
}

/// A view of one item, `big.pem`, holding `n` series with serials 0.. and dates from
/// `dates(i)` (for the renderer's and the HTTP side's tests).
#[cfg(test)]
pub fn big_view(n: i64, dates: impl Fn(i64) -> (i64, i64)) -> Arc<View> {
    let series: Vec<Series> = (0..n)
        .map(|i| Series {
            issuer: "".into(),
            labels: format!("serial_number=\"{i}\"").into(),
            not_before: dates(i).0,
            not_after: dates(i).1,
            fingerprint: i as u32,
            facts: Box::default(),
            crl: false,
        })
        .collect();
    view_of(Item {
        labels: "filename=\"big.pem\"".into(),
        series: series.into(),
        errors: Box::new([]),
    })
}

/// The view of a single item from a single source (tests).
#[cfg(test)]
pub fn view_of(item: Item) -> Arc<View> {
    let mut store = Store::new(1);
    store.apply(Report {
        source: 0,
        items: [Arc::new(item)].into(),
        errors: vec![],
        changed: true,
        ready: true,
    });
    store.publish();
    store.view()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &str, fingerprint: u32) -> Series {
        Series {
            issuer: "".into(),
            labels: labels.into(),
            not_before: 0,
            not_after: 1,
            fingerprint,
            facts: Box::default(),
            crl: false,
        }
    }

    fn item(labels: &str, series: Vec<Series>, errors: usize) -> Arc<Item> {
        Arc::new(Item {
            labels: labels.into(),
            series: series.into(),
            errors: (0..errors).map(|i| format!("error {i}")).collect(),
        })
    }

    fn report(source: usize, items: Vec<Arc<Item>>, errors: usize) -> Report {
        Report {
            source,
            items: items.into(),
            errors: (0..errors).map(|i| format!("source error {i}")).collect(),
            changed: true,
            ready: true,
        }
    }

    #[test]
    fn a_failed_first_pass_is_done_but_not_ready() {
        let mut store = Store::new(1);
        let mut failed = report(0, vec![], 1);
        failed.ready = false;
        store.apply(failed);
        store.publish();
        assert!(store.first_pass_done());
        assert!(!store.ready());
    }

    #[test]
    fn a_small_item_gets_the_rows_the_map_would_give() {
        // Every list of up to FEW series over two label sets, two issuers and two
        // fingerprints, taken from a counter: alone, the item goes pair by pair; beside an
        // empty item of the same labels, through the map.
        let kinds = [("a", "i"), ("a", "j"), ("b", "i"), ("b", "j")];
        let mut compared = 0;
        for code in 0u32..20_000 {
            let len = (code % (FEW as u32 + 1)) as usize;
            let mut rest = code / (FEW as u32 + 1);
            let series: Vec<Series> = (0..len)
                .map(|_| {
                    let (kind, fingerprint) = ((rest % 4) as usize, rest / 4 % 2);
                    rest = rest / 8 + code % 7;
                    Series {
                        issuer: kinds[kind].1.into(),
                        ..series(kinds[kind].0, fingerprint)
                    }
                })
                .collect();
            let alone = rows_of(vec![item("f", series.clone(), 0)].into());
            let grouped = rows_of(vec![item("f", series, 0), item("f", vec![], 0)].into());
            assert_eq!(alone.certs, grouped.certs, "code {code}");
            compared += alone.certs.iter().filter(|row| row.2).count();
        }
        assert!(compared > 1000, "collisions were exercised: {compared}");
    }

    #[test]
    fn duplicates_collapse_and_collisions_get_a_discriminator() {
        let mut store = Store::new(2);
        assert!(!store.ready() && !store.first_pass_done());
        store.apply(report(
            0,
            vec![item(
                "",
                vec![series("x=\"1\"", 7), series("x=\"1\"", 7)],
                0,
            )],
            1,
        ));
        store.publish();
        assert!(!store.ready() && !store.first_pass_done());
        store.apply(report(
            1,
            vec![
                item("", vec![series("x=\"1\"", 9), series("x=\"2\"", 9)], 1),
                item("f=\"c\"", vec![], 0),
            ],
            0,
        ));
        store.publish();
        assert!(store.ready());
        let view = store.view();
        let certs: Vec<_> = view
            .certs()
            .map(|(_, s, d)| (&*s.labels, s.fingerprint, d))
            .collect();
        assert_eq!(
            certs,
            [
                ("x=\"1\"", 7, true),
                ("x=\"1\"", 9, true),
                ("x=\"2\"", 9, false)
            ]
        );
        assert_eq!(
            view.error_series().collect::<Vec<_>>(),
            [("", true)],
            "one label set, failing"
        );
        assert_eq!((view.read_errors, view.read_errors_total), (2, 2));
        store.apply(report(1, vec![], 0));
        store.publish();
        let after = store.view();
        assert_eq!(
            (after.read_errors, after.read_errors_total),
            (1, 2),
            "the empty pass added none"
        );
        assert_eq!(after.cert_count(), 1);
        assert!(!after.certs().next().unwrap().2, "no collision left");
        assert!(after.generation > view.generation);
        assert_eq!(view.cert_count(), 3, "a published view never changes");
    }

    #[test]
    fn the_same_series_labels_under_different_items_are_different_series() {
        let mut store = Store::new(1);
        store.apply(report(
            0,
            vec![
                item("f=\"a\"", vec![series("x=\"1\"", 7)], 0),
                item("f=\"b\"", vec![series("x=\"1\"", 7)], 0),
            ],
            0,
        ));
        store.publish();
        let view = store.view();
        let certs: Vec<_> = view.certs().map(|(i, _, d)| (i, d)).collect();
        assert_eq!(certs, [("f=\"a\"", false), ("f=\"b\"", false)]);
        assert_eq!(
            view.error_series().collect::<Vec<_>>(),
            [("f=\"a\"", false), ("f=\"b\"", false)]
        );
    }

    #[test]
    fn an_unchanged_report_keeps_the_rows_and_counts_its_errors() {
        let mut store = Store::new(1);
        store.apply(report(
            0,
            vec![item("f=\"a\"", vec![series("x=\"1\"", 7)], 1)],
            0,
        ));
        store.publish();
        let first = store.view();
        let mut again = report(0, vec![], 0);
        again.changed = false;
        again.items = [item("f=\"a\"", vec![series("x=\"1\"", 7)], 1)].into();
        store.apply(again);
        store.publish();
        let second = store.view();
        assert!(Arc::ptr_eq(&first.sources[0], &second.sources[0]));
        assert_eq!(second.read_errors_total, 2);
    }

    #[test]
    fn an_unchanged_report_keeps_the_view_unless_its_failures_count() {
        let mut store = Store::new(1);
        store.apply(report(
            0,
            vec![item("f=\"a\"", vec![series("x=\"1\"", 7)], 0)],
            0,
        ));
        assert!(store.publish());
        let first = store.view();
        let unchanged = |errors| {
            let mut r = report(0, vec![], errors);
            r.changed = false;
            r
        };
        store.apply(unchanged(0));
        assert!(!store.publish(), "nothing a scrape shows has changed");
        assert!(Arc::ptr_eq(&first, &store.view()));
        store.apply(unchanged(1));
        assert!(store.publish(), "a read failure counts");
        let failing = store.view();
        assert_eq!(failing.generation, first.generation + 1);
        assert_eq!((failing.read_errors, failing.read_errors_total), (1, 1));
        assert_eq!(failing.cert_count(), 1, "the rows stay");
        store.apply(unchanged(1));
        assert!(store.publish(), "the total of failures moved");
        assert_eq!(store.view().read_errors_total, 2);
        store.apply(report(0, vec![], 0));
        assert!(store.publish(), "changed rows");
        assert_eq!(store.view().cert_count(), 0);
    }

    #[test]
    fn a_report_rebuilds_only_its_own_sources_rows_and_reports_together_publish_once() {
        let mut store = Store::new(3);
        for source in 0..3 {
            let labels = format!("f=\"{source}\"");
            store.apply(report(
                source,
                vec![item(&labels, vec![series("x=\"1\"", 7)], 0)],
                0,
            ));
        }
        assert!(store.publish());
        assert!(!store.publish(), "nothing new to publish");
        let before = store.view();
        assert_eq!(before.generation, 1, "three reports, one publication");
        store.apply(report(
            1,
            vec![item("f=\"1\"", vec![series("x=\"2\"", 8)], 0)],
            0,
        ));
        store.publish();
        let after = store.view();
        assert!(Arc::ptr_eq(&before.sources[0], &after.sources[0]));
        assert!(Arc::ptr_eq(&before.sources[2], &after.sources[2]));
        assert!(!Arc::ptr_eq(&before.sources[1], &after.sources[1]));
        assert_eq!(after.certs().count(), 3);
    }

    /// Publishes, checks the view's series as (item labels, fingerprint, discriminated),
    /// and returns the view.
    fn published(store: &mut Store, want: &[(&str, u32, bool)], why: &str) -> Arc<View> {
        store.publish();
        let view = store.view();
        let certs: Vec<_> = view
            .certs()
            .map(|(i, s, d)| (i, s.fingerprint, d))
            .collect();
        assert_eq!(certs, want, "{why}");
        assert_eq!(view.cert_count(), want.len());
        view
    }

    #[test]
    fn a_label_set_that_two_sources_hold_is_one_set_of_series() {
        let mut store = Store::new(3);
        let shared = |fp| item("f=\"same\"", vec![series("x=\"1\"", fp)], 0);
        store.apply(report(0, vec![shared(7), item("f=\"a\"", vec![], 1)], 0));
        store.apply(report(
            1,
            vec![item("f=\"b\"", vec![series("x=\"1\"", 7)], 0)],
            0,
        ));
        store.apply(report(2, vec![shared(7)], 0));
        published(
            &mut store,
            &[("f=\"b\"", 7, false), ("f=\"same\"", 7, false)],
            "the same certificate under the same labels twice is one series, after the rest",
        );
        // The second source now sees another certificate under the shared labels.
        store.apply(report(2, vec![shared(9)], 0));
        published(
            &mut store,
            &[
                ("f=\"b\"", 7, false),
                ("f=\"same\"", 7, true),
                ("f=\"same\"", 9, true),
            ],
            "two certificates under the shared labels each get a discriminator",
        );
        // And lets go of it: the first source's item is its own again.
        store.apply(report(2, vec![], 0));
        let view = published(
            &mut store,
            &[("f=\"same\"", 7, false), ("f=\"b\"", 7, false)],
            "the label set is the first source's alone again",
        );
        assert_eq!(
            view.error_series().collect::<Vec<_>>(),
            [("f=\"same\"", false), ("f=\"a\"", true), ("f=\"b\"", false)]
        );
    }

    /// What a view must hold, computed the slow and obvious way from every source's latest
    /// items: (item labels, series labels, issuer, fingerprint, discriminated), sorted.
    type Expected = (
        Vec<(String, String, String, u32, bool)>,
        Vec<(String, bool)>,
    );

    fn expected(latest: &[Items]) -> Expected {
        use std::collections::{BTreeMap, BTreeSet};
        let mut certs: BTreeMap<(String, String, String), BTreeSet<u32>> = BTreeMap::new();
        let mut errors: BTreeMap<String, bool> = BTreeMap::new();
        for item in latest.iter().flat_map(|items| items.iter()) {
            for s in item.series.iter() {
                let key = (
                    item.labels.to_string(),
                    s.labels.to_string(),
                    s.issuer.to_string(),
                );
                certs.entry(key).or_default().insert(s.fingerprint);
            }
            if !item.series.is_empty() || !item.errors.is_empty() {
                *errors.entry(item.labels.to_string()).or_default() |= !item.errors.is_empty();
            }
        }
        let mut rows: Vec<_> = certs
            .into_iter()
            .flat_map(|((i, l, s), fps)| {
                let disc = fps.len() > 1;
                fps.into_iter()
                    .map(move |fp| (i.clone(), l.clone(), s.clone(), fp, disc))
            })
            .collect();
        rows.sort();
        (rows, errors.into_iter().collect())
    }

    fn observed(view: &View) -> Expected {
        let mut rows: Vec<_> = view
            .certs()
            .map(|(i, s, d)| {
                (
                    i.to_string(),
                    s.labels.to_string(),
                    s.issuer.to_string(),
                    s.fingerprint,
                    d,
                )
            })
            .collect();
        rows.sort();
        let mut errors: Vec<_> = view
            .error_series()
            .map(|(i, f)| (i.to_string(), f))
            .collect();
        errors.sort();
        (rows, errors)
    }

    #[test]
    fn any_sequence_of_reports_gives_the_series_a_full_rebuild_would() {
        // A small deterministic generator: few labels, so that items, series and
        // fingerprints collide within and across sources.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for sources in [1, 2, 5] {
            let mut store = Store::new(sources);
            let mut latest: Vec<Items> = vec![Items::default(); sources];
            for step in 0..400 {
                let source = next(sources as u64) as usize;
                let mut r = report(source, Vec::new(), 0);
                if next(4) == 0 && step > 0 {
                    // The same items again, unchanged.
                    r.items = latest[source].clone();
                    r.changed = false;
                } else {
                    r.items = (0..next(5))
                        .map(|_| {
                            let labels = format!("f=\"{}\"", next(6));
                            let series = (0..next(4))
                                .map(|_| series(&format!("x=\"{}\"", next(3)), next(3) as u32))
                                .collect();
                            item(&labels, series, next(3) as usize / 2)
                        })
                        .collect();
                }
                latest[source] = r.items.clone();
                store.apply(r);
                if next(3) == 0 {
                    continue; // published together with the next report
                }
                store.publish();
                let view = store.view();
                assert_eq!(
                    observed(&view),
                    expected(&latest),
                    "{sources} sources, step {step}"
                );
                assert_eq!(view.cert_count(), view.certs().count());
            }
        }
    }
}
