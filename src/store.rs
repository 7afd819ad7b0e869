//! The state the HTTP thread owns: the latest report of every source, the error counter,
//! and a de-duplicated view of the series, rebuilt only when a report changes something.

use std::sync::Arc;

use crate::model::{Item, Report, Series};

/// Latest reports and what is rendered from them.
pub struct Store {
    reports: Vec<Option<Report>>,
    /// Whether each source has sent a ready report once.
    settled: Vec<bool>,
    read_errors_total: u64,
    generation: u64,
    items: Vec<Arc<Item>>,
    /// (item, series, needs a discriminator), sorted by labels.
    certs: Vec<(u32, u32, bool)>,
    /// (item, has a failure), one per distinct label set, sorted by labels.
    error_series: Vec<(u32, bool)>,
}

impl Store {
    /// An empty store for `sources` sources; not ready until each has reported once.
    pub fn new(sources: usize) -> Self {
        Self {
            reports: (0..sources).map(|_| None).collect(),
            settled: vec![false; sources],
            read_errors_total: 0,
            generation: 0,
            items: Vec::new(),
            certs: Vec::new(),
            error_series: Vec::new(),
        }
    }

    /// Takes a source's report: it replaces the previous one whole.
    pub fn apply(&mut self, report: Report) {
        let index = report.source;
        if index >= self.reports.len() {
            return;
        }
        self.read_errors_total += error_count(&report) as u64;
        let first = self.reports[index].is_none();
        let changed = report.changed || first;
        self.settled[index] |= report.ready;
        self.reports[index] = Some(report);
        self.generation += 1;
        if changed {
            self.rebuild();
        }
    }

    /// True once every source has finished a first pass that reached everything.
    pub fn ready(&self) -> bool {
        self.settled.iter().all(|s| *s)
    }

    /// Changes whenever what [`crate::render`] would print changes (apart from the clock).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Read failures in the latest refresh of every source.
    pub fn read_errors(&self) -> u64 {
        self.reports
            .iter()
            .flatten()
            .map(|r| error_count(r) as u64)
            .sum()
    }

    /// Read failures since start.
    pub fn read_errors_total(&self) -> u64 {
        self.read_errors_total
    }

    /// Every certificate series once, with whether it needs a `discriminator` label.
    pub fn certs(&self) -> impl Iterator<Item = (&Series, bool)> + '_ {
        self.certs
            .iter()
            .map(|&(item, series, disc)| (&self.items[item as usize].series[series as usize], disc))
    }

    /// Every `x509_cert_error` series once: its labels and whether it had a failure.
    pub fn error_series(&self) -> impl Iterator<Item = (&str, bool)> + '_ {
        self.error_series
            .iter()
            .map(|&(item, failing)| (&*self.items[item as usize].error_labels, failing))
    }

    /// Recomputes the de-duplicated view: identical label sets of the same certificate are
    /// one series; of different certificates, each gets a discriminator.
    fn rebuild(&mut self) {
        self.items = self
            .reports
            .iter()
            .flatten()
            .flat_map(|r| r.items.iter().cloned())
            .collect();
        let items = &self.items;
        let series = |&(i, s): &(u32, u32)| &items[i as usize].series[s as usize];
        let mut all: Vec<(u32, u32)> = items
            .iter()
            .enumerate()
            .flat_map(|(i, item)| (0..item.series.len()).map(move |s| (i as u32, s as u32)))
            .collect();
        all.sort_by(|a, b| {
            let (a, b) = (series(a), series(b));
            (&a.labels, a.fingerprint).cmp(&(&b.labels, b.fingerprint))
        });
        all.dedup_by(|a, b| {
            let (a, b) = (series(a), series(b));
            a.labels == b.labels && a.fingerprint == b.fingerprint
        });
        let mut certs = Vec::with_capacity(all.len());
        for (n, key) in all.iter().enumerate() {
            let labels = &series(key).labels;
            let shared =
                |other: Option<&(u32, u32)>| other.is_some_and(|o| series(o).labels == *labels);
            let disc = shared(n.checked_sub(1).and_then(|p| all.get(p))) || shared(all.get(n + 1));
            certs.push((key.0, key.1, disc));
        }
        self.certs = certs;

        let mut errors: Vec<(u32, bool)> = items
            .iter()
            .enumerate()
            .filter(|(_, item)| !item.series.is_empty() || !item.errors.is_empty())
            .map(|(i, item)| (i as u32, !item.errors.is_empty()))
            .collect();
        // Failing first within a label set, so that de-duplication keeps the failure.
        errors.sort_by(|a, b| {
            let labels = |i: u32| &items[i as usize].error_labels;
            labels(a.0).cmp(labels(b.0)).then(b.1.cmp(&a.1))
        });
        errors
            .dedup_by(|a, b| items[a.0 as usize].error_labels == items[b.0 as usize].error_labels);
        self.error_series = errors;
    }
}

fn error_count(report: &Report) -> usize {
    report.errors.len() + report.items.iter().map(|i| i.errors.len()).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &str, fingerprint: u32) -> Series {
        Series {
            labels: labels.into(),
            not_before: 0,
            not_after: 1,
            fingerprint,
        }
    }

    fn item(error_labels: &str, series: Vec<Series>, errors: usize) -> Arc<Item> {
        Arc::new(Item {
            error_labels: error_labels.into(),
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
    fn duplicates_collapse_and_collisions_get_a_discriminator() {
        let mut store = Store::new(2);
        assert!(!store.ready());
        store.apply(report(
            0,
            vec![item(
                "f=\"a\"",
                vec![series("x=\"1\"", 7), series("x=\"1\"", 7)],
                0,
            )],
            1,
        ));
        assert!(!store.ready());
        store.apply(report(
            1,
            vec![
                item(
                    "f=\"b\"",
                    vec![series("x=\"1\"", 9), series("x=\"2\"", 9)],
                    1,
                ),
                item("f=\"c\"", vec![], 0),
            ],
            0,
        ));
        assert!(store.ready());
        let certs: Vec<_> = store
            .certs()
            .map(|(s, d)| (&*s.labels, s.fingerprint, d))
            .collect();
        assert_eq!(
            certs,
            [
                ("x=\"1\"", 7, true),
                ("x=\"1\"", 9, true),
                ("x=\"2\"", 9, false)
            ]
        );
        let errors: Vec<_> = store.error_series().collect();
        assert_eq!(errors, [("f=\"a\"", false), ("f=\"b\"", true)]);
        assert_eq!(store.read_errors(), 2);
        assert_eq!(store.read_errors_total(), 2);
        store.apply(report(1, vec![], 0));
        assert_eq!(store.read_errors(), 1);
        assert_eq!(store.read_errors_total(), 2, "the empty pass added none");
        assert_eq!(store.certs().count(), 1);
        assert!(!store.certs().next().unwrap().1, "no collision left");
    }

    #[test]
    fn an_error_label_set_shared_by_a_good_and_a_bad_item_reports_the_failure() {
        let mut store = Store::new(1);
        store.apply(report(
            0,
            vec![item("", vec![series("", 1)], 0), item("", vec![], 1)],
            0,
        ));
        assert_eq!(store.error_series().collect::<Vec<_>>(), [("", true)]);
    }
}
