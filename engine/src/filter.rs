//! `ps --filter`: Docker's container filters, parsed once and matched in the engine so that
//! every front end lists the same containers. Values of one key are alternatives (`status=
//! running` or `status=exited`); different keys must all match; `label` filters must all
//! match.

use std::collections::BTreeMap;

use crate::container::Container;
use crate::error::{invalid, Error, Result};
use crate::view::state_name;

/// The filters of a listing.
#[derive(Debug, Default)]
pub struct ContainerFilter {
    by: BTreeMap<Key, Vec<Value>>,
}

/// What a filter looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Id,
    Name,
    Status,
    Network,
    Label,
    Ancestor,
    Exited,
    Health,
    Publish,
    Expose,
}

/// One filter value, compiled.
#[derive(Debug)]
enum Value {
    Text(String),
    Pattern(regex::Regex),
    Label(String, Option<String>),
    Code(i32),
    /// A port range and protocol (`8000-8080/tcp`; tcp when none).
    Ports(u16, u16, netctl_cni::types::Protocol),
}

const KEYS: &str = "id, name, status, network, label, ancestor, exited, health, publish or expose";

impl ContainerFilter {
    /// Parses `KEY=VALUE` filters, with Docker's errors for unknown keys and values.
    pub fn parse(filters: &[String]) -> Result<Self> {
        let mut by: BTreeMap<Key, Vec<Value>> = BTreeMap::new();
        for f in filters {
            let Some((k, v)) = f.split_once('=') else {
                invalid!("bad format of filter (expected name=value): {f}");
            };
            let (key, value) = parse_one(k, v)?;
            by.entry(key).or_default().push(value);
        }
        Ok(Self { by })
    }

    /// Whether a status filter was given (which lists stopped containers too).
    pub fn names_a_status(&self) -> bool {
        self.by.contains_key(&Key::Status) || self.by.contains_key(&Key::Exited)
    }

    /// Whether `c` passes every filter; `image_names` are the names of its image.
    pub fn matches(&self, c: &Container, image_names: &[String]) -> bool {
        self.by.iter().all(|(key, values)| {
            let one = |v: &Value| one_matches(*key, v, c, image_names);
            match key {
                Key::Label => values.iter().all(one),
                _ => values.iter().any(one),
            }
        })
    }
}

fn parse_one(k: &str, v: &str) -> Result<(Key, Value)> {
    Ok(match k {
        "id" => (Key::Id, Value::Text(v.into())),
        "name" => (
            Key::Name,
            Value::Pattern(
                regex::Regex::new(v)
                    .map_err(|e| Error::Invalid(format!("invalid filter 'name={v}': {e}")))?,
            ),
        ),
        "status" => {
            const STATES: [&str; 7] = [
                "created",
                "restarting",
                "running",
                "removing",
                "paused",
                "exited",
                "dead",
            ];
            if !STATES.contains(&v) {
                invalid!(
                    "invalid filter 'status={v}': use one of {}",
                    STATES.join(", ")
                );
            }
            (Key::Status, Value::Text(v.into()))
        }
        "network" => (Key::Network, Value::Text(v.into())),
        "label" => {
            let (name, value) = match v.split_once('=') {
                Some((n, val)) => (n, Some(val.to_string())),
                None => (v, None),
            };
            (Key::Label, Value::Label(name.into(), value))
        }
        "ancestor" => (Key::Ancestor, Value::Text(v.into())),
        "exited" => {
            let code = v.parse().map_err(|_| {
                Error::Invalid(format!("invalid filter 'exited={v}': not a number"))
            })?;
            (Key::Exited, Value::Code(code))
        }
        "publish" | "expose" => {
            let key = if k == "publish" {
                Key::Publish
            } else {
                Key::Expose
            };
            let ports = crate::spec::parse_expose(v).map_err(|_| {
                Error::Invalid(format!(
                    "invalid filter '{k}={v}': use PORT[-END][/tcp|udp]"
                ))
            })?;
            let (Some(first), Some(last)) = (ports.first(), ports.last()) else {
                invalid!("invalid filter '{k}={v}': use PORT[-END][/tcp|udp]");
            };
            (key, Value::Ports(first.0, last.0, first.1))
        }
        "health" => {
            const STATES: [&str; 4] = ["starting", "healthy", "unhealthy", "none"];
            if !STATES.contains(&v) {
                invalid!(
                    "Unrecognised filter value for health: {v} (use {})",
                    STATES.join(", ")
                );
            }
            (Key::Health, Value::Text(v.into()))
        }
        _ => invalid!("Invalid filter '{k}': use {KEYS}"),
    })
}

fn one_matches(key: Key, v: &Value, c: &Container, image_names: &[String]) -> bool {
    match (key, v) {
        (Key::Id, Value::Text(t)) => c.config.id.starts_with(t.as_str()),
        (Key::Name, Value::Pattern(p)) => p.is_match(&c.config.name),
        (Key::Status, Value::Text(t)) => state_name(c) == t,
        (Key::Network, Value::Text(t)) => {
            c.config.networks.iter().any(|n| &n.name == t)
                || c.state.endpoints.iter().any(|e| &e.network == t)
        }
        (Key::Label, Value::Label(name, want)) => c
            .config
            .labels
            .get(name)
            .is_some_and(|have| want.as_ref().is_none_or(|w| w == have)),
        (Key::Ancestor, Value::Text(t)) => {
            let t = t.strip_prefix("sha256:").unwrap_or(t);
            c.config.image.starts_with(t)
                || c.config.image_name == *t
                || image_names
                    .iter()
                    .any(|n| n == t || n.strip_suffix(":latest") == Some(t))
        }
        (Key::Publish, Value::Ports(a, b, proto)) => c
            .state
            .ports
            .iter()
            .chain(&c.config.ports)
            .any(|p| p.protocol == *proto && (*a..=*b).contains(&p.host_port)),
        (Key::Expose, Value::Ports(a, b, proto)) => c
            .config
            .exposed
            .iter()
            .copied()
            .chain(
                c.config
                    .ports
                    .iter()
                    .map(|p| (p.container_port, p.protocol)),
            )
            .any(|(port, p)| p == *proto && (*a..=*b).contains(&port)),
        (Key::Health, Value::Text(t)) => {
            let now = c
                .state
                .health
                .as_ref()
                .map_or("none", |h| h.status.as_str());
            now == t
        }
        (Key::Exited, Value::Code(code)) => state_name(c) == "exited" && c.state.exit_code == *code,
        _ => false,
    }
}

/// `network ls --filter` (the API's `/networks?filters=`): driver, id (a prefix), name (a
/// part), label (KEY or KEY=VALUE, all must match), scope, type (custom or builtin) and
/// dangling (no container attached).
#[derive(Debug, Default)]
pub struct NetworkFilter {
    by: BTreeMap<String, Vec<String>>,
}

impl NetworkFilter {
    /// Parses `KEY=VALUE` filters, with Docker's errors for unknown keys and values.
    pub fn parse(filters: &[String]) -> Result<Self> {
        const KEYS: [&str; 7] = ["dangling", "driver", "id", "label", "name", "scope", "type"];
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in filters {
            let Some((k, v)) = f.split_once('=') else {
                invalid!("bad format of filter (expected name=value): {f}");
            };
            if !KEYS.contains(&k) {
                invalid!("Invalid filter '{k}'");
            }
            if k == "type" && !["custom", "builtin"].contains(&v) {
                invalid!("invalid filter: 'type'='{v}'");
            }
            if k == "dangling" && !["true", "false", "1", "0"].contains(&v) {
                invalid!("invalid filter 'dangling={v}'");
            }
            by.entry(k.to_string()).or_default().push(v.to_string());
        }
        Ok(Self { by })
    }

    /// Whether network `n` passes; `used` says whether a container is attached to it.
    pub fn matches(&self, n: &crate::network::Network, used: impl Fn() -> bool) -> bool {
        let builtin = crate::network::PREDEFINED.contains(&n.name.as_str());
        self.by.iter().all(|(k, values)| {
            let one = |v: &String| match k.as_str() {
                "driver" => n.driver() == *v,
                "id" => n.id.starts_with(v.as_str()),
                "name" => n.name.contains(v.as_str()),
                "scope" => n.scope() == v,
                "type" => (v == "builtin") == builtin,
                "dangling" => (v == "true" || v == "1") == (!builtin && !used()),
                _ => match v.split_once('=') {
                    Some((lk, lv)) => n.meta.labels.get(lk).is_some_and(|x| x == lv),
                    None => n.meta.labels.contains_key(v),
                },
            };
            if k == "label" {
                values.iter().all(one)
            } else {
                values.iter().any(one)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{Config, State, Status};

    fn container(name: &str, labels: &[(&str, &str)], status: Status) -> Container {
        Container {
            config: Config {
                id: "ab".repeat(32),
                name: name.into(),
                image: "cd".repeat(32),
                image_name: "busybox".into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            },
            state: State {
                status,
                exit_code: 3,
                ..State::default()
            },
            dir: std::path::PathBuf::new(),
        }
    }

    fn passes(filters: &[&str], c: &Container) -> bool {
        let f: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
        ContainerFilter::parse(&f)
            .unwrap()
            .matches(c, &["busybox:latest".into()])
    }

    #[test]
    fn filters_match_as_dockers_do() {
        let web = container("web", &[("tier", "front"), ("team", "")], Status::Exited);
        assert!(passes(&["name=^web$"], &web));
        assert!(!passes(&["name=^we$"], &web));
        assert!(
            passes(&["name=eb"], &web),
            "a name filter is a pattern, not anchored"
        );
        assert!(passes(&["label=tier"], &web));
        assert!(passes(&["label=tier=front", "label=team"], &web));
        assert!(
            !passes(&["label=tier=front", "label=owner"], &web),
            "labels all match"
        );
        assert!(
            passes(&["status=running", "status=exited"], &web),
            "one status of several"
        );
        assert!(passes(&["exited=3", "ancestor=busybox"], &web));
        assert!(passes(&["ancestor=busybox:latest", "id=abab"], &web));
        assert!(!passes(&["ancestor=alpine"], &web));
    }

    #[test]
    fn published_and_exposed_ports_filter_as_dockers_do() {
        let mut web = container("web", &[], Status::Running);
        web.config.ports = vec![crate::container::PortBinding {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: netctl_cni::types::Protocol::Tcp,
        }];
        web.config.exposed = vec![(443, netctl_cni::types::Protocol::Tcp)];
        assert!(passes(&["publish=8080"], &web));
        assert!(passes(&["publish=8000-8100/tcp"], &web));
        assert!(!passes(&["publish=8080/udp"], &web));
        assert!(passes(&["expose=80"], &web));
        assert!(passes(&["expose=443/tcp"], &web));
        assert!(!passes(&["expose=8080"], &web));
    }

    #[test]
    fn bad_filters_say_what_to_use() {
        for bad in ["nosuch=1", "status=sleeping", "name=(", "exited=x", "label"] {
            let e = ContainerFilter::parse(&[bad.to_string()]).unwrap_err();
            assert!(e.to_string().contains("filter"), "{bad}: {e}");
        }
    }
}
