//! `-k` sources: the CA of every cluster and the client certificate of every user of a
//! kubeconfig, embedded (`*-data`) or referenced by path. Client keys are never read.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use yaml_rust2::Yaml;

use crate::files::FileKey;
use crate::fsio::{parse_yaml, read_capped, read_limited};
use crate::glob::Pattern;
use crate::labels::{LabelConfig, Pair};
use crate::model::Item;
use crate::pem;
use crate::poll::{Pass, Source};

/// The two sections of a kubeconfig that hold certificates.
const SECTIONS: [Section; 2] = [
    Section {
        list: "clusters",
        kind: "cluster",
        data: "certificate-authority-data",
        file: "certificate-authority",
    },
    Section {
        list: "users",
        kind: "user",
        data: "client-certificate-data",
        file: "client-certificate",
    },
];

struct Section {
    list: &'static str,
    kind: &'static str,
    data: &'static str,
    file: &'static str,
}

/// Referenced certificate files and their keys when read (`None`: unreadable).
type Deps = Vec<(PathBuf, Option<FileKey>)>;

/// What one parse of a kubeconfig produced, with what it depended on.
struct Parsed {
    item: Item,
    deps: Deps,
}

/// One `-k` argument, with the last result of every kubeconfig it read.
pub struct KubeconfigSource {
    pattern: Pattern,
    labels: Arc<LabelConfig>,
    cache: HashMap<PathBuf, (FileKey, Deps, Arc<Item>)>,
}

impl KubeconfigSource {
    /// A source for one pattern.
    pub fn new(pattern: Pattern, labels: Arc<LabelConfig>) -> Self {
        Self {
            pattern,
            labels,
            cache: HashMap::new(),
        }
    }

    fn parse(&self, path: &Path) -> Parsed {
        let doc = read_limited(path).and_then(parse_yaml);
        self.parse_doc(path, doc)
    }

    /// Parses `data` as the kubeconfig at `path` (relative certificate paths resolve against
    /// its directory): one item, with a read error for each problem.
    pub fn parse_bytes(&self, path: &Path, data: &[u8]) -> Item {
        self.parse_doc(path, parse_yaml(data.to_vec())).item
    }

    fn parse_doc(&self, path: &Path, doc: Result<Yaml, String>) -> Parsed {
        let display = path.to_string_lossy();
        let pairs = self.labels.file_pairs(&display);
        let mut errors = Vec::new();
        // Every certificate of the file, with its entry's labels: its chain is the file's.
        let mut certs = Vec::new();
        let mut labelled: Vec<[Pair; 2]> = Vec::new();
        let mut deps = Vec::new();
        let doc = doc.map_err(|e| format!("kubeconfig {display}: {e}"));
        match doc {
            Err(e) => errors.push(e),
            Ok(doc) if doc.as_hash().is_none() => errors.push(format!(
                "parse {display}: not a kubeconfig (top level is not a mapping)"
            )),
            Ok(doc) => {
                for section in &SECTIONS {
                    let entries = match &doc[section.list] {
                        Yaml::Array(entries) => entries.as_slice(),
                        Yaml::BadValue | Yaml::Null => &[],
                        _ => {
                            errors.push(format!(
                                "kubeconfig {display}: {} is not a list",
                                section.list
                            ));
                            continue;
                        }
                    };
                    for (index, entry) in entries.iter().enumerate() {
                        let name = entry["name"].as_str().map(str::to_string);
                        let name = name.unwrap_or_else(|| format!("{}[{index}]", section.list));
                        let what = format!("kubeconfig {display}: {} {name:?}", section.kind);
                        let body = &entry[section.kind];
                        let (field, bytes) = if let Some(data) = body[section.data].as_str() {
                            (section.data, pem::decode_base64(data.as_bytes()))
                        } else if let Some(file) = body[section.file].as_str() {
                            let target = resolve(path, file);
                            deps.push((target.clone(), FileKey::of(&target).ok()));
                            (section.file, read_capped(&target))
                        } else {
                            continue;
                        };
                        let data = match bytes {
                            Ok(data) => data,
                            Err(e) => {
                                errors.push(format!("{what}: {field}: {e}"));
                                continue;
                            }
                        };
                        let parsed = pem::parse_certificates(&data, &[], self.labels.wants_facts());
                        errors.extend(
                            parsed
                                .errors
                                .iter()
                                .map(|e| format!("{what}: {field}: {e}")),
                        );
                        if parsed.certs.is_empty() && parsed.errors.is_empty() {
                            errors.push(format!("{what}: {field}: no certificate found"));
                        }
                        let several = parsed.certs.len() > 1;
                        for (i, cert) in parsed.certs.into_iter().enumerate() {
                            let key = match several {
                                true => format!("{name}({i})"),
                                false => name.clone(),
                            };
                            let entry: [Pair; 2] = [
                                ("embedded_kind".into(), section.kind.to_string()),
                                (Cow::Borrowed("embedded_key"), key),
                            ];
                            certs.push(cert);
                            labelled.push(entry);
                        }
                    }
                }
                if certs.is_empty() && errors.is_empty() {
                    errors.push(format!("kubeconfig {display}: no certificate found"));
                }
            }
        }
        // The store merges a certificate repeated in one place into one series.
        let series: Vec<_> = self
            .labels
            .chosen(&certs)
            .into_iter()
            .map(|(i, position)| self.labels.series(&labelled[i], &certs[i], position))
            .collect();
        Parsed {
            item: Item {
                labels: self.labels.origin(&pairs),
                series: series.into(),
                errors: errors.into(),
            },
            deps,
        }
    }
}

/// A path from a kubeconfig: relative ones are relative to the kubeconfig's directory.
fn resolve(kubeconfig: &Path, file: &str) -> PathBuf {
    let file = Path::new(file);
    match (file.is_absolute(), kubeconfig.parent()) {
        (false, Some(dir)) => dir.join(file),
        _ => file.to_path_buf(),
    }
}

impl Source for KubeconfigSource {
    fn describe(&self) -> String {
        format!("--watch-kubeconf={}", self.pattern.as_str())
    }

    fn refresh(&mut self) -> Pass {
        let mut items = Vec::new();
        let mut errors = Vec::new();
        let expansion = self.pattern.expand();
        errors.extend(expansion.errors);
        let paths: Vec<PathBuf> = expansion
            .paths
            .into_iter()
            .filter(|p| {
                self.pattern.is_literal() || std::fs::metadata(p).is_ok_and(|m| !m.is_dir())
            })
            .collect();
        if paths.is_empty() {
            errors.push(format!("watch {}: no files match", self.pattern.as_str()));
        }
        let mut cache = HashMap::with_capacity(paths.len());
        for path in paths {
            let key = FileKey::of(&path);
            let unchanged = |(old_key, deps, _): &(FileKey, Deps, _)| {
                key.as_ref().is_ok_and(|k| k == old_key)
                    && deps.iter().all(|(dep, k)| FileKey::of(dep).ok() == *k)
            };
            let (deps, item) = match self.cache.remove(&path).filter(unchanged) {
                Some((_, deps, item)) => (deps, item),
                None => {
                    let parsed = self.parse(&path);
                    (parsed.deps, Arc::new(parsed.item))
                }
            };
            items.push(Arc::clone(&item));
            if let Ok(key) = key {
                cache.insert(path, (key, deps, item));
            }
        }
        self.cache = cache;
        self.labels.prune();
        Pass::complete(items, errors)
    }
}
