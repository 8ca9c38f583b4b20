//! The `thaw` commands the README, `docs/` and the operations guides
//! (`ops/`, runbooks included) tell an operator to type use only options
//! the CLI has: each `thaw <subcommand> … --flag` written in those files is
//! checked against the real binary's `--help`.
//!
//! Found when tried as a new user would: the reconcile-freshness runbook
//! said `thaw run --tables <table> --mode full`, which the CLI rejects
//! (`--table`, `--full`).
//!
//! Needs no services (only the binary).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use thaw_test_support::repo_root;

/// Subcommands as written in the docs (longest first, so `cutover check`
/// wins over a shorter prefix).
const SUBCOMMANDS: [&str; 11] = ["cutover check", "dev check-planted", "dev seed", "dev mutate", "dual-read", "reconcile", "conflicts", "validate", "migrate", "status", "run"];

/// Markdown files an operator reads: README.md, docs/, ops/ (recursively),
/// infra/README.md and the tests' READMEs.
fn documents() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let root = repo_root();
    let mut out = vec![root.join("README.md"), root.join("infra/README.md"), root.join("tests/bench/README.md"), root.join("tests/sfn_local/README.md")];
    walk(&root.join("docs"), &mut out);
    walk(&root.join("ops"), &mut out);
    out.retain(|p| p.exists());
    out
}

/// The `--flags` written after `thaw <subcommand>` on one line, up to the end
/// of the command (a backtick, a `#` comment, a table cell's `|`).
fn written_flags(line: &str) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("thaw ") {
        let after = &rest[at + 5..];
        rest = after;
        let Some(sub) = SUBCOMMANDS.iter().find(|s| after.starts_with(*s) && !after[s.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_')) else {
            continue;
        };
        let command = &after[sub.len()..];
        let end = command.find(['`', '#', '|']).unwrap_or(command.len());
        for word in command[..end].split(|c: char| c.is_whitespace() || "[]()=,;\"'".contains(c)) {
            if let Some(name) = word.strip_prefix("--") {
                let name: String = name.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
                if !name.is_empty() {
                    found.push((*sub, format!("--{name}")));
                }
            }
        }
    }
    found
}

/// The options `thaw <subcommand> --help` lists.
fn cli_flags(sub: &str) -> BTreeSet<String> {
    let mut args: Vec<&str> = sub.split(' ').collect();
    args.push("--help");
    let out = thaw_test_support::thaw!(&args);
    assert!(out.status.success(), "thaw {sub} --help: {}", thaw_test_support::text(&out));
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '=')
        .filter_map(|w| w.strip_prefix("--").map(|n| format!("--{}", n.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect::<String>())))
        .collect()
}

#[test]
fn documented_thaw_commands_use_only_options_the_cli_has() {
    let mut known: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut unknown = Vec::new();
    let mut checked = 0;
    for path in documents() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            for (sub, flag) in written_flags(line) {
                checked += 1;
                let flags = known.entry(sub).or_insert_with(|| cli_flags(sub));
                if !flags.contains(&flag) {
                    unknown.push(format!("{}:{}: `thaw {sub}` has no {flag}: {}", path.strip_prefix(repo_root()).unwrap_or(&path).display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(checked > 50, "the scan found only {checked} documented options; is the pattern still right?");
    assert!(unknown.is_empty(), "documented commands with options the CLI does not have:\n{}", unknown.join("\n"));
}

/// The other direction: every option of every subcommand's `--help` is
/// written after `thaw <subcommand>` in the README (found missing: `run
/// --source/--allow-truncate/--workers/--no-conflicts/--conflicts-full`,
/// `reconcile --bisect-factor/--leaf-rows`, `cutover check
/// --max-age-hours/--freshness-hours/--dual-read-days`, `status --limit`,
/// the `dev` options).
#[test]
fn every_cli_option_is_in_the_readme() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let mut written: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for line in readme.lines() {
        for (sub, flag) in written_flags(line) {
            written.entry(sub).or_default().insert(flag);
        }
    }
    let mut missing = Vec::new();
    for sub in SUBCOMMANDS {
        for flag in cli_flags(sub) {
            if flag != "--help" && flag != "--version" && !written.get(sub).is_some_and(|w| w.contains(&flag)) {
                missing.push(format!("thaw {sub} {flag}"));
            }
        }
    }
    assert!(missing.is_empty(), "options the CLI has but README.md's \"Running it\" does not show:\n{}", missing.join("\n"));
}

#[test]
fn written_flags_reads_commands_in_code_and_prose() {
    assert_eq!(written_flags("run `thaw run --config c.json --table t --full` then"), [("run", "--config".to_string()), ("run", "--table".into()), ("run", "--full".into())]);
    assert_eq!(written_flags("thaw reconcile --run-id X  # see thaw run --reconcile-full"), [("reconcile", "--run-id".to_string()), ("run", "--reconcile-full".into())]);
    assert_eq!(written_flags("thaw status --json | jq .runs  --not-thaw"), [("status", "--json".to_string())]);
    assert_eq!(written_flags("thaw cutover check --config p [--dual-read-signed-off TEXT]"), [("cutover check", "--config".to_string()), ("cutover check", "--dual-read-signed-off".into())]);
    assert!(written_flags("the thaw runner --x").is_empty(), "a word that only starts like a subcommand");
}
