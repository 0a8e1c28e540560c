//! What the commands print, as Docker prints it: tables, `--format` templates, human
//! durations and sizes, container status lines.

use std::collections::BTreeMap;

use netctl_engine::container::Container;
pub use netctl_engine::summary::{ago, status_text};
use netctl_engine::view::state_name;
use netctl_engine::{Engine, Error};

/// `ps`'s PORTS as Docker's `DisplayablePorts` writes them: exposed ports (ranges
/// collapsed, `443/tcp`, `8000-8002/tcp`) and same-number mappings first, then each
/// mapping to another host port (`0.0.0.0:8080->80/tcp`); sorted by container port.
pub fn ports_text(c: &Container) -> String {
    if !c.is_running() {
        return String::new();
    }
    // (container port, protocol, host address, host port); no address: exposed only.
    let mut ports: Vec<(u16, String, String, u16)> = c
        .published()
        .iter()
        .map(|p| {
            let ip = p
                .host_ip
                .map_or_else(|| "0.0.0.0".to_string(), |i| i.to_string());
            (p.container_port, p.protocol.to_string(), ip, p.host_port)
        })
        .collect();
    for (port, proto) in &c.config.exposed {
        let proto = proto.to_string();
        if !ports.iter().any(|(p, t, _, _)| p == port && *t == proto) {
            ports.push((*port, proto, String::new(), 0));
        }
    }
    ports.sort();
    let mut groups: Vec<(String, u16, u16)> = Vec::new();
    let mut mappings = Vec::new();
    for (port, proto, ip, public) in ports {
        let key = if ip.is_empty() {
            proto.clone()
        } else if public != port {
            mappings.push(format!("{ip}:{public}->{port}/{proto}"));
            continue;
        } else {
            format!("{ip}/{proto}")
        };
        match groups.iter_mut().rev().find(|(k, _, _)| *k == key) {
            Some(g) if g.2 + 1 == port => g.2 = port,
            _ => groups.push((key, port, port)),
        }
    }
    let mut out: Vec<String> = groups
        .into_iter()
        .map(|(key, first, last)| {
            let range = if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            };
            match key.split_once('/') {
                Some((ip, proto)) => format!("{ip}:{range}->{range}/{proto}"),
                None => format!("{range}/{key}"),
            }
        })
        .collect();
    out.extend(mappings);
    out.join(", ")
}

/// `ps`'s COMMAND: the command line cut to 20 characters and quoted as Go's
/// `strconv.Quote` does (Docker's `"sh -c 'echo \"hi\"'"`).
fn quoted_command(c: &Container, full: bool) -> String {
    let cmd = c.config.command.join(" ");
    let short: String = if !full && cmd.chars().count() > 20 {
        cmd.chars().take(19).chain(['…']).collect()
    } else {
        cmd
    };
    go_quote(&short)
}

/// Go's `strconv.Quote`: `"` and `\` escaped, control characters as `\n`, `\t`, `\xNN`.
fn go_quote(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Left-aligned columns, as Docker's tables (see [`tabwrite`]).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let line = |cells: Vec<&str>| cells.join("\t") + "\n";
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    tabwrite(&out)
}

/// Aligns tab-separated cells as Docker's tab writer does (Go's `tabwriter` with a minimum
/// cell width of 10, padding 3, spaces): every cell that a tab ends is padded to its
/// column's widest cell plus three, and to at least ten; the last cell of a line is not.
pub fn tabwrite(text: &str) -> String {
    tabwrite_min(text, 10)
}

/// [`tabwrite`] with another minimum cell width (`top`'s is 20).
pub fn tabwrite_min(text: &str, min: usize) -> String {
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter(|r| i + 1 < r.len())
                .map(|r| r[i].chars().count() + 3)
                .max()
                .unwrap_or(0)
                .max(min)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i + 1 < r.len() {
                out.push_str(&format!("{cell:<w$}", w = widths[i]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

/// The fields `ps --format` templates name, in [`ps_fields`] order.
pub const PS_FIELDS: [&str; 12] = [
    "ID",
    "Image",
    "Command",
    "CreatedAt",
    "RunningFor",
    "Status",
    "Ports",
    "Names",
    "State",
    "Networks",
    "Labels",
    "Size",
];

/// How a `ps` row is shown: full IDs and commands (`--no-trunc`), and the size of each
/// container with the size of its image (`-s`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PsShow<'a> {
    /// `--no-trunc`.
    pub full: bool,
    /// `-s`: the image's size, for "virtual".
    pub image_size: Option<u64>,
    /// Every name of the container (`/NAME`, and `/PARENT/ALIAS` of legacy links to it):
    /// `--no-trunc` shows them all, as Docker's does.
    pub names: &'a [String],
}

/// One `ps` row: the values of [`PS_FIELDS`].
pub fn ps_fields(c: &Container, show: PsShow) -> Vec<(&'static str, String)> {
    let names = if show.full && !show.names.is_empty() {
        show.names
            .iter()
            .map(|n| n.trim_start_matches('/'))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        c.config.name.clone()
    };
    let networks: Vec<&str> = c.config.networks.iter().map(|n| n.name.as_str()).collect();
    let size = show.image_size.map_or_else(String::new, |image| {
        let rw = c.size_rw();
        format!("{} (virtual {})", human_size(rw), human_size(rw + image))
    });
    let values = [
        if show.full {
            c.config.id.clone()
        } else {
            c.config.short_id().to_string()
        },
        c.config.image_name.clone(),
        quoted_command(c, show.full),
        c.config.created.clone(),
        ago(&c.config.created),
        status_text(c),
        ports_text(c),
        names,
        state_name(c).to_string(),
        networks.join(","),
        c.config
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        size,
    ];
    PS_FIELDS.into_iter().zip(values).collect()
}

/// One `ps` row by field name, for `--format` templates.
pub fn ps_map(c: &Container, show: PsShow) -> BTreeMap<&'static str, String> {
    ps_fields(c, show).into_iter().collect()
}

/// The header row of a `ps --format 'table ...'`: Docker's column names.
pub fn ps_headers() -> BTreeMap<&'static str, String> {
    let names = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED AT",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
        "STATE",
        "NETWORKS",
        "LABELS",
        "SIZE",
    ];
    PS_FIELDS.into_iter().zip(names.map(String::from)).collect()
}

/// Docker's sizes: "4.26MB", three significant digits.
pub fn human_size(bytes: u64) -> String {
    if bytes < 1000 {
        return format!("{bytes}B");
    }
    let units = ["kB", "MB", "GB", "TB"];
    let mut v = bytes as f64 / 1000.0;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[u])
}

/// A listing's rows (fields by Docker's template names) as Docker prints them: through the
/// `--format` template when one is given (each field's column name from `columns` for a
/// `table` header), else as the default table of the `shown` fields.
pub fn listing(
    rows: &[BTreeMap<&str, String>],
    columns: &[(&str, &str)],
    shown: &[&str],
    format: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(f) = format {
        let header: BTreeMap<&str, &str> = columns.iter().copied().collect();
        return crate::template::render_list(f, &header, rows);
    }
    let names: Vec<&str> = shown
        .iter()
        .map(|k| columns.iter().find(|(f, _)| f == k).map_or(*k, |(_, c)| *c))
        .collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            shown
                .iter()
                .map(|k| r.get(k).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    Ok(table(&names, &cells))
}

/// Prints inspected objects: as a JSON array, or each through a `-f` template.
pub fn objects<T: serde::Serialize>(objects: &[T], format: Option<&str>) -> anyhow::Result<()> {
    match format {
        Some(f) => {
            let f = crate::template::Format::parse(f)?;
            for o in objects {
                println!("{}", f.render(o)?);
            }
            Ok(())
        }
        None => json(&objects),
    }
}

/// Prints a value as pretty JSON.
pub fn json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// The first command after a reboot brings back the containers whose restart policy asks
/// for it; what failed is told, and the command goes on.
pub fn restart_after_boot(engine: &Engine) {
    match netctl_engine::lifecycle::restart_after_boot(engine) {
        Ok(failed) => {
            for e in failed {
                eprintln!("netctl: {}", e.report());
            }
        }
        Err(e) => eprintln!(
            "netctl: restart containers after the reboot: {}",
            e.report()
        ),
    }
}

/// Detaches what a killed command left, and says what it could not.
pub fn repair(engine: &Engine) {
    match netctl_engine::lifecycle::repair(engine) {
        Ok(warnings) => warn(warnings),
        Err(e) => eprintln!("netctl: repair what a crash left: {}", e.report()),
    }
}

/// Prints what the engine could not undo, as Docker's warnings.
pub fn warn(warnings: Vec<Error>) {
    for w in warnings {
        eprintln!("WARNING: {}", w.report());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(512), "512B");
    }

    #[test]
    fn commands_are_quoted_as_go_quotes_them() {
        assert_eq!(go_quote("sh -c echo \"hi\""), r#""sh -c echo \"hi\"""#);
        assert_eq!(go_quote("a\\b\tc\n"), r#""a\\b\tc\n""#);
        assert_eq!(go_quote("x\u{1}é"), r#""x\x01é""#);
    }

    #[test]
    fn tables_align_columns_as_dockers_tab_writer() {
        let t = table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A         BB\nxyz       1\n");
        let wide = tabwrite("CONTAINER ID\tNAME\nabcdefabcdef\tweb\n");
        assert_eq!(wide, "CONTAINER ID   NAME\nabcdefabcdef   web\n");
    }
}
