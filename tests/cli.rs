//! The command line as a user meets it: `--help` of the real binary against the parser's own
//! table of flags, so that no flag the parser takes can be missing from the help.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use x509_certificate_exporter::cli::FLAGS;

/// The flags `--help` documents, from the lines that start with a dash: each name (short and
/// long) with the placeholder its line shows (`=PATH`), or none for a switch.
fn documented(help: &str) -> BTreeMap<String, Option<String>> {
    let mut names = BTreeMap::new();
    for line in help.lines() {
        let line = line.trim_start();
        if !line.starts_with('-') {
            continue;
        }
        let (column, description) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("no description on the flag's own line: {line:?}"));
        assert!(!description.trim().is_empty(), "{line:?}");
        let mut placeholder = None;
        // Long last: `-f, --watch-file=PATH`; the short form shares the long one's value.
        for name in column.split(", ").collect::<Vec<_>>().into_iter().rev() {
            let name = match name.split_once('=') {
                Some((name, value)) => {
                    placeholder = Some(value.to_string());
                    name
                }
                None => name,
            };
            assert!(
                names
                    .insert(name.to_string(), placeholder.clone())
                    .is_none(),
                "{name} documented twice"
            );
        }
    }
    names
}

#[test]
fn help_lists_every_flag() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    let documented = documented(&help);
    for flag in FLAGS {
        let want = flag.value.map(str::to_string);
        for name in [Some(flag.long), flag.short].into_iter().flatten() {
            assert_eq!(
                documented.get(name),
                Some(&want),
                "{name} (value {want:?}) is not documented as such in --help:\n{help}"
            );
        }
    }
    // Nor does the help document a flag the parser does not take.
    for name in documented.keys() {
        assert!(
            FLAGS
                .iter()
                .any(|f| f.long == name || f.short == Some(name.as_str())),
            "--help documents {name}, which the parser refuses"
        );
    }
    // The healthcheck usage line names every flag healthcheck takes.
    let usage = help
        .lines()
        .find(|l| l.contains("x509-certificate-exporter healthcheck"))
        .unwrap();
    for flag in FLAGS.iter().filter(|f| f.healthcheck) {
        let name = flag.short.unwrap_or(flag.long);
        assert!(usage.contains(&format!("[{name}")), "{name} in {usage:?}");
    }
}

#[test]
fn every_flag_of_the_table_is_taken_by_the_binary() {
    // Each switch alone, and each flag given a value it refuses: the binary never answers
    // "unknown flag" for a flag of the table.
    for flag in FLAGS {
        for name in [Some(flag.long), flag.short].into_iter().flatten() {
            let args: Vec<&str> = match flag.value {
                None => vec![name, "--listen-address=nowhere"],
                Some(_) => vec!["--listen-address=nowhere", name],
            };
            let out = run(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("unknown flag"), "{args:?}: {err}");
        }
    }
}
