//! x509-certificate-exporter as a library: the modules the binary (`src/main.rs`) wires
//! together, public so that the fuzz targets (`fuzz/`) reach the parsers directly.
#![forbid(unsafe_code)]

/// The `check` subcommand: one pass, a status, a table, JSON or a textfile.
pub mod check;
/// Flags and `--help`.
pub mod cli;
/// What a certificate is: key, signature, CA, SANs, place in its chain.
pub mod facts;
/// `-f` and `-d`: files, directories, globs, change detection.
pub mod files;
/// Bounded file reads, YAML documents, I/O error wording: helpers every side may use.
pub mod fsio;
/// Glob patterns.
pub mod glob;
/// The `healthcheck` subcommand.
pub mod healthcheck;
/// The HTTP server: routes, TLS, basic auth, limits.
pub mod http;
/// PKCS#12 and Java keystores.
pub mod keystore;
/// Kubernetes Secrets and ConfigMaps.
pub mod kube;
/// `-k`: kubeconfig files.
pub mod kubeconfig;
/// Label names and values.
pub mod labels;
/// The vocabulary every module passes around.
pub mod model;
/// Bytes to certificates.
pub mod pem;
/// The engine: a fixed pool refreshes the sources, the store thread publishes their views.
pub mod poll;
/// The exposition text.
pub mod render;
/// The latest report of each source, and the views scrapes are answered from.
pub mod store;
/// What every TLS stack refuses, checked after x509-parser.
pub mod strict;
