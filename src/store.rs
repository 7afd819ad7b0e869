//! The state the store thread owns: the latest report of every source and the error counter,
//! published after every report as an immutable [`View`] that scrapes render from.
//! De-duplication happens here, only when a report changes something.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Item, Report, Series};

/// What a scrape renders; shared with the HTTP loop and its workers, never changed once
/// published.
#[derive(Default)]
pub struct View {
    /// Changes with every report.
    pub generation: u64,
    rows: Arc<Rows>,
    /// Read failures in the latest refresh of every source.
    pub read_errors: u64,
    /// Read failures since start.
    pub read_errors_total: u64,
}

/// The de-duplicated series, rebuilt only when some source's items change.
#[derive(Default)]
struct Rows {
    items: Vec<Arc<Item>>,
    /// (item, series, needs a discriminator), in source order.
    certs: Vec<(u32, u32, bool)>,
    /// (item, has a failure), one per distinct label set, in source order.
    errors: Vec<(u32, bool)>,
}

impl View {
    /// Every certificate series once: its item's labels, the series, and whether it needs a
    /// `discriminator` label.
    #[cfg(test)]
    pub fn certs(&self) -> impl Iterator<Item = (&str, &Series, bool)> + '_ {
        self.rows.certs.iter().map(|&(item, series, disc)| {
            let item = &self.rows.items[item as usize];
            (&*item.labels, &item.series[series as usize], disc)
        })
    }

    /// Number of certificate series.
    pub fn cert_count(&self) -> usize {
        self.rows.certs.len()
    }

    /// The certificate series at `index` (in [`View::certs`] order).
    pub fn cert(&self, index: usize) -> (&str, &Series, bool) {
        let (item, series, disc) = self.rows.certs[index];
        let item = &self.rows.items[item as usize];
        (&*item.labels, &item.series[series as usize], disc)
    }

    /// Every `x509_cert_error` series once: its labels and whether it had a failure.
    pub fn error_series(&self) -> impl Iterator<Item = (&str, bool)> + '_ {
        self.rows
            .errors
            .iter()
            .map(|&(item, failing)| (&*self.rows.items[item as usize].labels, failing))
    }
}

/// Latest reports, counters, and the published view.
pub struct Store {
    reports: Vec<Option<Report>>,
    /// Whether each source has sent a ready report once.
    settled: Vec<bool>,
    /// Read failures since start, published or not.
    errors_total: u64,
    /// Reports applied since the last publication.
    pending: bool,
    /// Some applied report changed the items since the last publication.
    dirty: bool,
    view: Arc<View>,
}

impl Store {
    /// An empty store for `sources` sources; not ready until each has reported once.
    pub fn new(sources: usize) -> Self {
        Self {
            reports: (0..sources).map(|_| None).collect(),
            settled: vec![false; sources],
            errors_total: 0,
            pending: false,
            dirty: false,
            view: Arc::default(),
        }
    }

    /// Takes a source's report (it replaces the previous one whole). Nothing is published
    /// until [`Store::publish`], so that many reports arriving together publish once.
    pub fn apply(&mut self, report: Report) {
        let index = report.source;
        if index >= self.reports.len() {
            return;
        }
        self.errors_total += error_count(&report) as u64;
        self.dirty |= report.changed || self.reports[index].is_none();
        self.settled[index] |= report.ready;
        self.reports[index] = Some(report);
        self.pending = true;
    }

    /// Publishes a view of every report applied so far; returns whether anything was
    /// applied since the last publication.
    pub fn publish(&mut self) -> bool {
        if !std::mem::take(&mut self.pending) {
            return false;
        }
        let rows = match std::mem::take(&mut self.dirty) {
            true => Arc::new(self.rows()),
            false => Arc::clone(&self.view.rows),
        };
        self.view = Arc::new(View {
            generation: self.view.generation + 1,
            rows,
            read_errors: self
                .reports
                .iter()
                .flatten()
                .map(|r| error_count(r) as u64)
                .sum(),
            read_errors_total: self.errors_total,
        });
        true
    }

    /// True once every source has finished a first pass that reached everything.
    pub fn ready(&self) -> bool {
        self.settled.iter().all(|s| *s)
    }

    /// True once every source has finished a first pass, whether it reached everything or
    /// failed somewhere (an API that did not answer): a scrape then has the whole truth,
    /// read errors included.
    pub fn first_pass_done(&self) -> bool {
        self.reports.iter().all(Option::is_some)
    }

    /// The view last published.
    pub fn view(&self) -> Arc<View> {
        Arc::clone(&self.view)
    }

    /// The de-duplicated rows, in source order: identical label sets of the same certificate
    /// are one series; of different certificates, each gets a discriminator. Hashing, not
    /// sorting: this runs on the store thread whenever a source changes.
    fn rows(&self) -> Rows {
        let items: Vec<Arc<Item>> = self
            .reports
            .iter()
            .flatten()
            .flat_map(|r| r.items.iter().cloned())
            .collect();
        let mut certs: Vec<(u32, u32, bool)> =
            Vec::with_capacity(items.iter().map(|i| i.series.len()).sum());
        // Series can only share a label set within items that share theirs: nearly always a
        // single item (a file, a Secret key); several when a path is watched twice or `-l`
        // drops the labels that told them apart. So no map of every series is needed.
        let mut groups: HashMap<&str, Vec<u32>> = HashMap::new();
        // Keyed by a digest of the labels (12 bytes an item, not 24); a digest shared by
        // different labels only costs a comparison.
        let mut first_with: HashMap<u64, u32> = HashMap::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let digest = {
                let mut h = std::hash::DefaultHasher::new();
                std::hash::Hash::hash(&*item.labels, &mut h);
                std::hash::Hasher::finish(&h)
            };
            match first_with.get(&digest) {
                None => {
                    first_with.insert(digest, i as u32);
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
        drop(first_with);
        // (series labels, issuer labels) -> (fingerprint, row) of each distinct certificate.
        let mut seen: HashMap<(&str, &str), Vec<(u32, usize)>> = HashMap::new();
        let mut add = |certs: &mut Vec<(u32, u32, bool)>, members: &[u32]| {
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
                None => add(&mut certs, &[i as u32]),
                // A group is added whole, at its first member.
                Some(members) if members[0] == i as u32 => add(&mut certs, members),
                Some(_) => {}
            }
        }
        drop(groups);

        // x509_cert_error: one series per label set, failing if any item behind it failed.
        let mut errors: Vec<(u32, bool)> = Vec::new();
        let mut by_labels: HashMap<&str, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            if item.series.is_empty() && item.errors.is_empty() {
                continue;
            }
            let failing = !item.errors.is_empty();
            match by_labels.get(&*item.labels) {
                Some(&at) => errors[at].1 |= failing,
                None => {
                    by_labels.insert(&item.labels, errors.len());
                    errors.push((i as u32, failing));
                }
            }
        }
        drop(by_labels);
        Rows {
            items,
            certs,
            errors,
        }
    }
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
        items: vec![Arc::new(item)],
        errors: vec![],
        changed: true,
        ready: true,
    });
    store.publish();
    store.view()
}

fn error_count(report: &Report) -> usize {
    report.errors.len() + report.items.iter().map(|i| i.errors.len()).sum::<usize>()
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
            items,
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
        assert!(!after.cert(0).2, "no collision left");
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
        again.items = vec![item("f=\"a\"", vec![series("x=\"1\"", 7)], 1)];
        store.apply(again);
        store.publish();
        let second = store.view();
        assert!(Arc::ptr_eq(&first.rows, &second.rows));
        assert_eq!(second.read_errors_total, 2);
    }
}
