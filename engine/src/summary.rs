//! A container in one line, as `ps` and the API's `/containers/json` show it: the status
//! text ("Up 3 seconds"), and the summary object Docker's clients read.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::container::{Container, Status};
use crate::engine::Engine;
use crate::health::HealthStatus;
use crate::view::{mount_views, network_mode, network_views, state_name_of, Lookup};

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
    status_text_of(c, c.is_running())
}

/// [`status_text`] of a container whose liveness is known.
fn status_text_of(c: &Container, running: bool) -> String {
    match c.state.status {
        Status::Created => "Created".into(),
        Status::Dead => "Dead".into(),
        Status::Running if running => running_text(c),
        _ => format!(
            "Exited ({}) {}",
            c.state.exit_code,
            ago(&c.state.finished_at)
        ),
    }
}

/// "Up 3 seconds (Paused)", "Restarting (1) 2 seconds ago" ...: a running container's status.
fn running_text(c: &Container) -> String {
    if c.state.restarting {
        return format!(
            "Restarting ({}) {}",
            c.state.exit_code,
            ago(&c.state.finished_at)
        );
    }
    let up = format!("Up {}", ago(&c.state.started_at).trim_end_matches(" ago"));
    if c.state.paused {
        return up + " (Paused)";
    }
    match c.state.health.as_ref().map(|h| h.status) {
        Some(HealthStatus::Starting) => up + " (health: starting)",
        Some(s) => format!("{up} ({})", s.as_str()),
        None => up,
    }
}

/// One published or exposed port in a summary.
#[derive(Debug, Clone, Serialize)]
pub struct PortSummary {
    /// The host address (absent for an exposed port).
    #[serde(rename = "IP", skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The container's port.
    #[serde(rename = "PrivatePort")]
    pub private_port: u16,
    /// The host's port (absent for an exposed port).
    #[serde(rename = "PublicPort", skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    /// tcp or udp.
    #[serde(rename = "Type")]
    pub kind: String,
}

/// A container in the Engine API's `/containers/json` list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    /// 64 hex.
    pub id: String,
    /// `/NAME`.
    pub names: Vec<String>,
    /// The image as the user named it.
    pub image: String,
    /// `sha256:...`.
    #[serde(rename = "ImageID")]
    pub image_id: String,
    /// The command line.
    pub command: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// Published ports and, while running, exposed ones.
    pub ports: Vec<PortSummary>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// created, running, paused, restarting, exited, dead.
    pub state: &'static str,
    /// "Up 3 seconds".
    pub status: String,
    /// The network mode.
    pub host_config: serde_json::Value,
    /// Each network's endpoint, as inspect shows it.
    pub network_settings: serde_json::Value,
    /// Mounts, as inspect shows them.
    pub mounts: serde_json::Value,
    /// Bytes written by the container (with `size`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<u64>,
    /// Those plus its image's (with `size`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<u64>,
}

/// The names legacy links give containers: `/PARENT/ALIAS` for each `--link NAME:ALIAS`
/// of PARENT, by the linked container's name.
#[derive(Debug, Default)]
pub struct LinkNames(BTreeMap<String, Vec<String>>);

impl LinkNames {
    /// The link names of every container in `all`.
    pub fn of(all: &[Container]) -> Self {
        let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in all {
            for (target, alias) in &p.config.links {
                by_target
                    .entry(target.clone())
                    .or_default()
                    .push(format!("/{}/{alias}", p.config.name));
            }
        }
        LinkNames(by_target)
    }

    /// Every name of `c` as Docker lists them, sorted: `/NAME` and its link names.
    pub fn names(&self, c: &Container) -> Vec<String> {
        let mut names = vec![format!("/{}", c.config.name)];
        names.extend(self.0.get(&c.config.name).into_iter().flatten().cloned());
        names.sort();
        names
    }
}

/// Container `c` as `/containers/json` lists it, with its `names`; `image_size` (with
/// `size`) adds the sizes.
pub fn summary(
    c: &Container,
    names: Vec<String>,
    lookup: &Lookup,
    image_size: Option<u64>,
) -> ContainerSummary {
    let mut ports: Vec<PortSummary> = c
        .published()
        .iter()
        .map(|p| PortSummary {
            ip: Some(
                p.host_ip
                    .map_or_else(|| "0.0.0.0".into(), |i| i.to_string()),
            ),
            private_port: p.container_port,
            public_port: Some(p.host_port),
            kind: p.protocol.to_string(),
        })
        .collect();
    // Asked once: each ask opens a descriptor of the container's monitor.
    let running = c.is_running();
    if running {
        for (port, proto) in &c.config.exposed {
            let proto = proto.to_string();
            if !ports
                .iter()
                .any(|p| p.private_port == *port && p.kind == proto)
            {
                ports.push(PortSummary {
                    ip: None,
                    private_port: *port,
                    public_port: None,
                    kind: proto,
                });
            }
        }
    }
    let rw = image_size.map(|_| c.size_rw());
    ContainerSummary {
        id: c.config.id.clone(),
        names,
        image: c.config.image_name.clone(),
        image_id: format!("sha256:{}", c.config.image),
        command: c.config.command.join(" "),
        created: crate::clock::epoch(&c.config.created).unwrap_or(0),
        ports,
        labels: c.config.labels.clone(),
        state: state_name_of(c, running),
        status: status_text_of(c, running),
        host_config: serde_json::json!({"NetworkMode": network_mode(c)}),
        network_settings: serde_json::json!({"Networks": network_views(c, lookup)}),
        mounts: serde_json::to_value(mount_views(c, lookup)).unwrap_or_default(),
        size_rw: rw,
        size_root_fs: rw.zip(image_size).map(|(a, b)| a + b),
    }
}

/// Which containers a listing shows (`ps -a`, `-n`, `--filter`; the API's `all`, `limit`,
/// `filters`).
#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    /// Stopped ones too.
    pub all: bool,
    /// Only the last N made (of every state).
    pub limit: Option<usize>,
    /// `KEY=VALUE` filters ([`crate::filter::ContainerFilter`]).
    pub filters: Vec<String>,
}

/// The containers a listing shows, in the store's order (newest first).
pub fn list(engine: &Engine, opts: &ListOptions) -> crate::Result<Listing> {
    let filter = crate::filter::ContainerFilter::parse(&opts.filters)?;
    // Read once for the whole listing: each container's image names, for `ancestor`.
    let images = crate::image::ImageStore::open(engine.root())?.all()?;
    let all = opts.all || opts.limit.is_some() || filter.names_a_status();
    let every = engine.containers.all()?;
    let names = LinkNames::of(&every);
    let shown = every
        .into_iter()
        .take(opts.limit.unwrap_or(usize::MAX))
        .filter(|c| all || c.is_running())
        .filter(|c| {
            let tags = images
                .iter()
                .find(|i| i.id == c.config.image)
                .map(|i| i.tags.as_slice())
                .unwrap_or_default();
            filter.matches(c, tags)
        })
        .collect();
    Ok(Listing { shown, names })
}

/// What a listing shows, and the names of its containers.
#[derive(Debug)]
pub struct Listing {
    /// The containers listed, newest first.
    pub shown: Vec<Container>,
    /// Every container's link names.
    pub names: LinkNames,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_dockers() {
        assert_eq!(human_duration(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human_duration(Duration::from_secs(70)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3 hours");
    }
}
