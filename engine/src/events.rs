//! Events (`events`, the Engine API's `/events`): what happened to containers, networks,
//! volumes and images, as Docker reports it. Every engine process (a command, a monitor, a
//! daemon thread) appends one JSON line per event to a journal in the run dir (so events go
//! with a reboot, as Docker's go with its daemon); readers filter it by time, type, action
//! and object, and follow it while it grows. The journal is cut in two at a size bound:
//! one older part is kept.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{invalid, Context, Result};
use crate::watch::{Cancel, FileWatch, Wake};
use crate::when::Instant;

/// One event, in the Engine API's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// container, network, volume, image.
    #[serde(rename = "Type")]
    pub kind: String,
    /// create, start, die, connect ...
    #[serde(rename = "Action")]
    pub action: String,
    /// The object and what describes it.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `local`.
    pub scope: String,
    /// Seconds since the epoch.
    pub time: u64,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    pub time_nano: u128,
    /// The action again (containers and images, for old clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The object's ID again (containers and images, for old clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The container's image (containers, for old clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Its ID (a volume's or an image reference's name).
    #[serde(rename = "ID")]
    pub id: String,
    /// name, image, exitCode, container, type ... and a container's labels.
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// The journal is cut at this size.
const JOURNAL_MAX: u64 = 4 << 20;

fn journal(run_dir: &Path) -> PathBuf {
    run_dir.join("events.jsonl")
}

fn older(path: &Path) -> PathBuf {
    path.with_extension("jsonl.1")
}

/// Records an event (best effort: a journal that cannot be written loses the event, never
/// the operation).
pub fn record(engine: &Engine, kind: &str, action: &str, id: &str, attributes: &[(&str, &str)]) {
    let now = crate::when::now();
    let attributes: BTreeMap<String, String> = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let legacy = matches!(kind, "container" | "image");
    let e = Event {
        kind: kind.into(),
        action: action.into(),
        status: legacy.then(|| action.to_string()),
        id: legacy.then(|| id.to_string()),
        from: (kind == "container")
            .then(|| attributes.get("image").cloned())
            .flatten(),
        actor: Actor {
            id: id.into(),
            attributes,
        },
        scope: "local".into(),
        time: now.as_secs(),
        time_nano: now.as_nanos(),
    };
    let _ = append(engine.run_dir(), &e);
}

/// A container's event, with its name, image and labels as attributes (and `extra`).
pub fn container(engine: &Engine, c: &crate::Container, action: &str, extra: &[(&str, &str)]) {
    let mut attrs: Vec<(&str, &str)> = c
        .config
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    attrs.push(("image", &c.config.image_name));
    attrs.push(("name", &c.config.name));
    attrs.extend_from_slice(extra);
    record(engine, "container", action, &c.config.id, &attrs);
}

fn append(run_dir: &Path, e: &Event) -> Result<()> {
    let path = journal(run_dir);
    let mut line = serde_json::to_vec(e).ctx(|| "encode an event".into())?;
    line.push(b'\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ctx(|| format!("open {}", path.display()))?;
    // One write of one line: appends from many processes never interleave.
    f.write_all(&line)
        .ctx(|| format!("write {}", path.display()))?;
    if f.metadata().map(|m| m.len()).unwrap_or(0) > JOURNAL_MAX {
        let _ = std::fs::rename(&path, older(&path));
    }
    Ok(())
}

/// Which events a reader wants (`--filter`): values of one key are alternatives; every key
/// given must match.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    by: BTreeMap<String, Vec<String>>,
}

impl EventFilter {
    /// Parses `KEY=VALUE` filters: type, event, container, image, network, volume, label.
    pub fn parse(filters: &[String]) -> Result<Self> {
        const KEYS: [&str; 7] = [
            "type",
            "event",
            "container",
            "image",
            "network",
            "volume",
            "label",
        ];
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in filters {
            let Some((k, v)) = f.split_once('=') else {
                invalid!("bad format of filter (expected name=value): {f}");
            };
            if !KEYS.contains(&k) {
                invalid!("Invalid filter '{k}': use {}", KEYS.join(", "));
            }
            by.entry(k.to_string()).or_default().push(v.to_string());
        }
        Ok(Self { by })
    }

    /// Whether `e` passes.
    pub fn matches(&self, e: &Event) -> bool {
        let attr = |k: &str| e.actor.attributes.get(k).map(String::as_str);
        self.by.iter().all(|(k, values)| {
            values.iter().any(|v| match k.as_str() {
                "type" => e.kind == *v,
                "event" => e.action == *v || e.action.split(':').next() == Some(v),
                "container" => {
                    e.kind == "container"
                        && (e.actor.id.starts_with(v.as_str()) || attr("name") == Some(v))
                }
                "image" => attr("image") == Some(v) || (e.kind == "image" && e.actor.id == *v),
                "network" => {
                    e.kind == "network"
                        && (e.actor.id.starts_with(v.as_str()) || attr("name") == Some(v))
                }
                "volume" => e.kind == "volume" && e.actor.id == *v,
                _ => match v.split_once('=') {
                    Some((lk, lv)) => attr(lk) == Some(lv),
                    None => attr(v).is_some(),
                },
            })
        })
    }
}

/// How to read the journal.
#[derive(Debug, Clone, Default)]
pub struct EventOptions {
    /// Past events from this instant on (without it, only events from now on).
    pub since: Option<Instant>,
    /// Stop at this instant (without it, follow for ever).
    pub until: Option<Instant>,
    /// Which events.
    pub filter: EventFilter,
    /// Stops the reading between events (a client that went away).
    pub cancel: Option<Cancel>,
}

/// Hands each wanted event to `each`, oldest first, following the journal until `until`,
/// until `each` breaks or fails (a client that went away), or until the reading is
/// cancelled. Between events it sleeps on a watch of the journal, never polling.
pub fn read(
    engine: &Engine,
    opts: &EventOptions,
    mut each: impl FnMut(&Event) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let path = journal(engine.run_dir());
    let run = engine.run_dir();
    std::fs::create_dir_all(run).ctx(|| format!("create {}", run.display()))?;
    // Watching begins before the first read, so no event falls between the two.
    let watch = FileWatch::file(&path)?;
    let start = crate::when::now();
    let since = opts.since.unwrap_or(start);
    let mut wanted = |e: &Event| -> Result<ControlFlow<()>> {
        let at = Duration::from_nanos(u64::try_from(e.time_nano).unwrap_or(u64::MAX));
        let ours = at >= since && opts.until.is_none_or(|u| at <= u) && opts.filter.matches(e);
        if ours {
            each(e)
        } else {
            Ok(ControlFlow::Continue(()))
        }
    };
    if let Ok(f) = File::open(older(&path)) {
        for e in lines(&mut BufReader::new(f)) {
            if wanted(&e)?.is_break() {
                return Ok(());
            }
        }
    }
    let mut reader: Option<BufReader<File>> = None;
    loop {
        if reader.is_none() {
            reader = open(&path)?;
        }
        if let Some(r) = reader.as_mut() {
            for e in lines(r) {
                if wanted(&e)?.is_break() {
                    return Ok(());
                }
            }
            let moved = match (r.get_ref().metadata(), std::fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() != b.ino(),
                _ => false,
            };
            if moved {
                // Cut in two: what the old file holds was read; the new one is next.
                reader = None;
                continue;
            }
        }
        let left = match opts.until {
            Some(u) => match u.max(start).checked_sub(crate::when::now()) {
                Some(d) => Some(d),
                None => return Ok(()),
            },
            None => None,
        };
        if watch.wait(opts.cancel.as_ref(), left) == Wake::Cancelled {
            return Ok(());
        }
    }
}

/// The live journal, if it exists yet.
fn open(path: &Path) -> Result<Option<BufReader<File>>> {
    match File::open(path) {
        Ok(f) => Ok(Some(BufReader::new(f))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx(|| format!("open {}", path.display())),
    }
}

/// The whole lines `r` holds now (a line still being written is left for later).
fn lines(r: &mut BufReader<File>) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return out,
            Ok(n) if !line.ends_with('\n') => {
                let _ = r.seek_relative(-i64::try_from(n).unwrap_or(0));
                return out;
            }
            Ok(_) => out.extend(serde_json::from_str::<Event>(&line).ok()),
        }
    }
}

/// Docker's line for an event: `TIME TYPE ACTION ID (k=v, ...)`.
pub fn line(e: &Event) -> String {
    let secs = u64::try_from(e.time_nano / 1_000_000_000).unwrap_or(0);
    let nanos = e.time_nano % 1_000_000_000;
    let stamp = crate::clock::rfc3339_of(secs);
    let stamp = format!("{}.{nanos:09}Z", stamp.trim_end_matches('Z'));
    let mut s = format!("{stamp} {} {} {}", e.kind, e.action, e.actor.id);
    if !e.actor.attributes.is_empty() {
        let attrs: Vec<String> = e
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!(" ({})", attrs.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, action: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            kind: kind.into(),
            action: action.into(),
            actor: Actor {
                id: "abc".into(),
                attributes: attrs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            scope: "local".into(),
            time: 1,
            time_nano: 1_000_000_001,
            status: None,
            id: None,
            from: None,
        }
    }

    #[test]
    fn filters_match_as_dockers_do() {
        let f = |list: &[&str]| {
            EventFilter::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        let start = event(
            "container",
            "start",
            &[("name", "web"), ("image", "busybox"), ("tier", "front")],
        );
        assert!(f(&["type=container", "event=start"]).matches(&start));
        assert!(f(&["event=die", "event=start"]).matches(&start));
        assert!(f(&["container=web", "label=tier=front", "image=busybox"]).matches(&start));
        assert!(!f(&["type=network"]).matches(&start));
        assert!(f(&["event=exec_start"]).matches(&event(
            "container",
            "exec_start: sh -c true",
            &[]
        )));
        assert!(EventFilter::parse(&["colour=red".into()]).is_err());
    }

    #[test]
    fn lines_are_dockers() {
        let e = event(
            "container",
            "start",
            &[("name", "web"), ("image", "busybox")],
        );
        assert_eq!(
            line(&e),
            "1970-01-01T00:00:01.000000001Z container start abc (image=busybox, name=web)"
        );
    }
}
