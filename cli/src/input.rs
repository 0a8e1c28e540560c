//! What the user types besides arguments: KEY=VALUE lists and confirmations.

use std::collections::BTreeMap;
use std::io::BufRead;

/// Parses `K=V` pairs.
pub fn key_values(pairs: &[String], flag: &str) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("{flag} {p:?} is not KEY=VALUE"))?;
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Parses `K=V` pairs where a bare `K` means `K=""`, as Docker's `--opt` and `--label` do
/// (`network create -o encrypted`).
pub fn options(pairs: &[String]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.clone(), String::new()),
        })
        .collect()
}

/// Asks `warning` + "Are you sure you want to continue? [y/N]" on the terminal.
pub fn confirm(warning: &str) -> anyhow::Result<bool> {
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim().eq_ignore_ascii_case("y"))
}
