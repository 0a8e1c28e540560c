//! `stats`: Docker's table of what containers use, once (`--no-stream`) or redrawn every
//! second, with Docker's `--format` fields and size units.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use netctl_engine::stats::{measure, Usage};
use netctl_engine::{Container, Engine};

use crate::outcome::Outcome;

/// `stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Print one reading and stop.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Go template: `{{.Name}}\t{{.CPUPerc}}`, `table ...`.
    #[arg(long)]
    pub format: Option<String>,
    /// Containers (default: all running ones).
    pub containers: Vec<String>,
}

/// How long a reading watches the CPU counters.
const GAP: Duration = Duration::from_millis(500);

/// Runs `stats`.
pub fn run(engine: &Engine, a: &StatsArgs) -> Outcome {
    // Each container with what `{{.Container}}` shows: the name or ID as given, else the ID.
    let chosen: Vec<(Container, Option<&str>)> = if a.containers.is_empty() {
        engine
            .containers
            .all()?
            .into_iter()
            .filter(|c| a.all || c.is_running())
            .map(|c| (c, None))
            .collect()
    } else {
        a.containers
            .iter()
            .map(|n| Ok((engine.containers.find(n)?, Some(n.as_str()))))
            .collect::<Result<_, netctl_engine::Error>>()?
    };
    loop {
        let rows: Vec<BTreeMap<&'static str, String>> = std::thread::scope(|s| {
            let readings: Vec<_> = chosen
                .iter()
                .map(|(c, given)| s.spawn(move || row(c, *given, measure(c, GAP).ok(), a)))
                .collect();
            readings.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let text = render(&rows, a.format.as_deref())?;
        if a.no_stream {
            print!("{text}");
            return Ok(0);
        }
        // Docker's redraw: clear the screen, home the cursor.
        print!("\x1b[2J\x1b[H{text}");
        std::io::Write::flush(&mut std::io::stdout()).ok();
        std::thread::sleep(Duration::from_secs(1).saturating_sub(GAP));
    }
}

/// The default table, or the rows through `--format`.
fn render(rows: &[BTreeMap<&'static str, String>], format: Option<&str>) -> anyhow::Result<String> {
    const COLUMNS: [(&str, &str); 9] = [
        ("Container", "CONTAINER"),
        ("ID", "CONTAINER ID"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ];
    let shown: Vec<&str> = COLUMNS[1..].iter().map(|(k, _)| *k).collect();
    crate::output::listing(rows, &COLUMNS, &shown, format)
}

/// One container's row, by Docker's field names (zeros for a stopped container).
fn row(
    c: &Container,
    given: Option<&str>,
    usage: Option<Usage>,
    a: &StatsArgs,
) -> BTreeMap<&'static str, String> {
    let id = if a.no_trunc {
        c.config.id.clone()
    } else {
        c.config.short_id().to_string()
    };
    let (cpu, mem, mem_pct, net, block, pids) = match usage {
        Some(u) => (
            format!("{:.2}%", u.cpu_percent),
            format!(
                "{} / {}",
                binary_size(u.now.memory),
                binary_size(u.now.limit)
            ),
            format!("{:.2}%", u.memory_percent()),
            format!(
                "{} / {}",
                decimal_size(u.now.net.0),
                decimal_size(u.now.net.1)
            ),
            format!(
                "{} / {}",
                decimal_size(u.now.block.0),
                decimal_size(u.now.block.1)
            ),
            u.now.pids.to_string(),
        ),
        None => (
            "0.00%".into(),
            "0B / 0B".into(),
            "0.00%".into(),
            "0B / 0B".into(),
            "0B / 0B".into(),
            "0".into(),
        ),
    };
    BTreeMap::from([
        ("Container", given.map_or_else(|| id.clone(), String::from)),
        ("ID", id),
        ("Name", c.config.name.clone()),
        ("CPUPerc", cpu),
        ("MemUsage", mem),
        ("MemPerc", mem_pct),
        ("NetIO", net),
        ("BlockIO", block),
        ("PIDs", pids),
    ])
}

/// Go's `%.Ng`: N significant digits, trailing zeros dropped.
fn go_g(v: f64, digits: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let int_digits = (v.abs().log10().floor() as i64 + 1).max(1) as usize;
    let decimals = digits.saturating_sub(int_digits);
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Docker's `units.BytesSize`: four significant digits, powers of 1024.
fn binary_size(bytes: u64) -> String {
    scaled(bytes, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"], 4)
}

/// Docker's `units.HumanSizeWithPrecision(n, 3)`: powers of 1000.
fn decimal_size(bytes: u64) -> String {
    scaled(bytes, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"], 3)
}

fn scaled(bytes: u64, base: f64, units: &[&str], digits: usize) -> String {
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= base && u < units.len() - 1 {
        v /= base;
        u += 1;
    }
    format!("{}{}", go_g(v, digits), units[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_dockers_units() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1_577_000), "1.504MiB");
        assert_eq!(binary_size(25_140_000_000), "23.41GiB");
        assert_eq!(binary_size(1024), "1KiB");
        assert_eq!(decimal_size(648), "648B");
        assert_eq!(decimal_size(1234), "1.23kB");
        assert_eq!(decimal_size(15_300_000), "15.3MB");
    }
}
