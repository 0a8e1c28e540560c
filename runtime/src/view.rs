//! What `ps`, `inspect`, `logs` and `images` print, as Docker prints it.

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::container::{Container, NetMode, Status};
use crate::image::Image;

/// "3 seconds", "About a minute", "2 hours" — Docker's human durations.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// How long ago a timestamp was.
pub fn ago(ts: &str) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let then = crate::clock::epoch(ts).unwrap_or(now);
    format!(
        "{} ago",
        human_duration(Duration::from_secs(now.saturating_sub(then)))
    )
}

/// "Up 3 seconds", "Exited (0) 2 minutes ago", "Created".
pub fn status_text(c: &Container) -> String {
    match c.state.status {
        Status::Created => "Created".into(),
        Status::Running if c.is_running() => {
            let up = format!("Up {}", ago(&c.state.started_at).trim_end_matches(" ago"));
            if c.state.paused {
                up + " (Paused)"
            } else {
                up
            }
        }
        _ => format!(
            "Exited ({}) {}",
            c.state.exit_code,
            ago(&c.state.finished_at)
        ),
    }
}

/// "0.0.0.0:8080->80/tcp, ..."
pub fn ports_text(c: &Container) -> String {
    c.state
        .ports
        .iter()
        .map(|p| {
            let ip = if p.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                &p.host_ip
            };
            format!("{ip}:{}->{}/{}", p.host_port, p.container_port, p.protocol)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted_command(c: &Container) -> String {
    let cmd = c.config.command.join(" ");
    let short: String = if cmd.chars().count() > 20 {
        cmd.chars().take(19).chain(['…']).collect()
    } else {
        cmd
    };
    format!("\"{short}\"")
}

/// Left-aligned columns three spaces apart, like Docker's tables.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let s: String = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}   ", w = w))
            .collect();
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// The fields `ps --format` templates name, in [`ps_fields`] order.
pub const PS_FIELDS: [&str; 10] = [
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
];

/// One `ps` row: the values of [`PS_FIELDS`].
pub fn ps_fields(c: &Container) -> Vec<(&'static str, String)> {
    let networks: Vec<&str> = c.config.networks.iter().map(|n| n.name.as_str()).collect();
    let values = [
        c.config.short_id().to_string(),
        c.config.image_name.clone(),
        quoted_command(c),
        c.config.created.clone(),
        ago(&c.config.created),
        status_text(c),
        ports_text(c),
        c.config.name.clone(),
        state_name(c).to_string(),
        networks.join(","),
    ];
    PS_FIELDS.into_iter().zip(values).collect()
}

/// Docker's State.Status.
pub fn state_name(c: &Container) -> &'static str {
    match c.state.status {
        Status::Created => "created",
        Status::Running if c.is_running() && c.state.paused => "paused",
        Status::Running if c.is_running() => "running",
        _ => "exited",
    }
}

/// `{{.ID}}\t{{.Names}}` with the fields filled in; `table` prefix adds a header.
pub fn render_template(tpl: &str, fields: &[(&'static str, String)]) -> String {
    let mut out = tpl.replace("\\t", "\t").replace("\\n", "\n");
    for (k, v) in fields {
        for form in [format!("{{{{.{k}}}}}"), format!("{{{{ .{k} }}}}")] {
            out = out.replace(&form, v);
        }
    }
    out
}

/// `docker inspect` of a container.
pub fn inspect(c: &Container, image_name: &str) -> Value {
    let networks: serde_json::Map<String, Value> = c
        .state
        .endpoints
        .iter()
        .map(|e| {
            let v4 = e.ips.iter().position(|i| !i.contains(':'));
            let v6 = e.ips.iter().position(|i| i.contains(':'));
            let addr = |i: Option<usize>| i.and_then(|i| e.ips[i].split('/').next()).unwrap_or("").to_string();
            let plen = |i: Option<usize>| i.and_then(|i| e.ips[i].split('/').nth(1)?.parse::<u32>().ok()).unwrap_or(0);
            let gw = |i: Option<usize>| i.map(|i| e.gateways[i].clone()).unwrap_or_default();
            let aliases = c.config.networks.iter().find(|n| n.name == e.network).map(|n| n.aliases.clone()).unwrap_or_default();
            (e.network.clone(), json!({
                "Aliases": aliases, "MacAddress": e.mac,
                "EndpointID": crate::network::derived_id(&format!("{}/{}/{}", e.network, c.config.id, e.ifname)),
                "Gateway": gw(v4), "IPAddress": addr(v4), "IPPrefixLen": plen(v4),
                "IPv6Gateway": gw(v6), "GlobalIPv6Address": addr(v6), "GlobalIPv6PrefixLen": plen(v6),
                "DNSNames": [c.config.name.clone(), c.config.short_id().to_string()],
            }))
        })
        .collect();
    let primary = networks.values().next().cloned().unwrap_or(json!({}));
    let mut ports = serde_json::Map::new();
    for p in &c.state.ports {
        ports.insert(
            format!("{}/{}", p.container_port, p.protocol),
            json!([{"HostIp": if p.host_ip.is_empty() { "0.0.0.0" } else { &p.host_ip }, "HostPort": p.host_port.to_string()}]),
        );
    }
    let net_mode = match &c.config.net_mode {
        NetMode::Host => "host".to_string(),
        NetMode::None => "none".to_string(),
        NetMode::Container(id) => format!("container:{id}"),
        NetMode::Private => c
            .config
            .networks
            .first()
            .map(|n| n.name.clone())
            .unwrap_or_default(),
    };
    let running = c.is_running();
    json!({
        "Id": c.config.id, "Created": c.config.created,
        "Path": c.config.command.first(), "Args": c.config.command.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": state_name(c), "Running": running, "Paused": running && c.state.paused, "Restarting": false,
            "OOMKilled": false, "Dead": false, "Pid": if running { c.state.pid } else { 0 },
            "ExitCode": c.state.exit_code, "Error": c.state.error,
            "StartedAt": c.state.started_at, "FinishedAt": c.state.finished_at,
        },
        "Image": format!("sha256:{}", c.config.image),
        "ResolvConfPath": c.dir.join("resolv.conf"), "HostnamePath": c.dir.join("hostname"),
        "HostsPath": c.dir.join("hosts"), "LogPath": c.log_path(),
        "Name": format!("/{}", c.config.name), "Driver": "overlay2",
        "Mounts": c.config.mounts.iter().map(|m| json!({
            "Type": m.kind, "Name": if m.kind == crate::volume::MountKind::Volume { m.source.clone() } else { String::new() },
            "Source": m.source, "Destination": m.target, "RW": !m.readonly,
        })).collect::<Vec<_>>(),
        "HostConfig": {
            "NetworkMode": net_mode, "AutoRemove": c.config.auto_remove,
            "PortBindings": c.config.ports.iter().map(|p| (format!("{}/{}", p.container_port, p.protocol),
                json!([{"HostIp": p.host_ip, "HostPort": if p.host_port == 0 { String::new() } else { p.host_port.to_string() }}])))
                .collect::<serde_json::Map<_, _>>(),
            "Dns": c.config.dns, "ExtraHosts": c.config.extra_hosts.iter().map(|(n, i)| format!("{n}:{i}")).collect::<Vec<_>>(),
            "Links": c.config.links,
        },
        "Config": {
            "Hostname": c.config.hostname, "Env": c.config.env, "Cmd": c.config.command,
            "Image": image_name, "WorkingDir": c.config.workdir, "Entrypoint": c.config.entrypoint,
            "Tty": c.config.tty, "OpenStdin": c.config.interactive,
        },
        "NetworkSettings": {
            "Ports": ports, "IPAddress": primary["IPAddress"], "IPPrefixLen": primary["IPPrefixLen"],
            "Gateway": primary["Gateway"], "MacAddress": primary["MacAddress"],
            "SandboxKey": if c.config.net_mode == NetMode::Host { String::new() } else { format!("/run/netctl/netns/{}", c.config.id) },
            "Networks": networks,
        },
    })
}

/// `docker inspect` of an image.
pub fn inspect_image(i: &Image) -> Value {
    json!({
        "Id": format!("sha256:{}", i.id), "RepoTags": i.tags, "Created": i.created(),
        "Size": i.record.get("Size"), "Architecture": i.record.get("Architecture"), "Os": i.record.get("Os"),
        "Config": i.record.get("Config"),
        "RootFS": {"Type": "layers", "Layers": i.layers.iter().map(|l| format!("sha256:{l}")).collect::<Vec<_>>()},
    })
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

/// Options of `logs`.
pub struct LogOptions {
    /// Keep following while the container runs.
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Prefix each line with its time.
    pub timestamps: bool,
}

/// Prints the json-file log: stdout lines to stdout, stderr lines to stderr.
pub fn logs(c: &Container, opts: &LogOptions) -> anyhow::Result<()> {
    let path = c.log_path();
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(_) if !opts.follow => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        lines.push(std::mem::take(&mut line));
    }
    let skip = opts.tail.map_or(0, |n| lines.len().saturating_sub(n));
    for l in &lines[skip..] {
        print_record(l, opts.timestamps)?;
    }
    if !opts.follow {
        return Ok(());
    }
    let mut c = c.clone();
    loop {
        line.clear();
        if reader.read_line(&mut line)? > 0 {
            if line.ends_with('\n') {
                print_record(&line, opts.timestamps)?;
            } else {
                continue;
            }
            continue;
        }
        if c.reload().is_err() || !c.is_running() {
            while reader.read_line(&mut line)? > 0 {
                print_record(&line, opts.timestamps)?;
                line.clear();
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn print_record(line: &str, timestamps: bool) -> anyhow::Result<()> {
    let Ok(rec) = serde_json::from_str::<Value>(line) else {
        return Ok(());
    };
    let text = rec.get("log").and_then(Value::as_str).unwrap_or("");
    let prefix = if timestamps {
        format!("{} ", rec.get("time").and_then(Value::as_str).unwrap_or(""))
    } else {
        String::new()
    };
    if rec.get("stream").and_then(Value::as_str) == Some("stderr") {
        let mut e = std::io::stderr().lock();
        write!(e, "{prefix}{text}")?;
    } else {
        let mut o = std::io::stdout().lock();
        write!(o, "{prefix}{text}")?;
        o.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_like_docker() {
        assert_eq!(human_duration(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human_duration(Duration::from_secs(70)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3 hours");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(512), "512B");
    }

    #[test]
    fn templates_fill_the_named_fields() {
        let f = vec![("ID", "abc".to_string()), ("Names", "web".to_string())];
        assert_eq!(render_template("{{.ID}}\\t{{ .Names }}", &f), "abc\tweb");
    }
}
