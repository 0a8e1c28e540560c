//! The DNS record store: `<run dir>/dns/records/<network>/<container>:<ifname>.json`, one
//! file per attachment, each written atomically. The `netctl-dns` plugin writes and removes
//! records, then tells the server (`netctl-dnsd`) which one changed over its control socket;
//! the engine renames them. This crate is what all three share, without the server.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netctl_cni::fsutil;
use serde::{Deserialize, Serialize};

/// What went wrong in the record store or talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, on which path.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A record file could not be read.
    #[error("record {path} is not valid: {source}")]
    BadRecord {
        /// The file.
        path: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// Talking to the server failed.
    #[error("the DNS server did not answer on {0}: is netctl-dnsd running?")]
    NoServer(String),
}

impl DnsError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        DnsError::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<DnsError> for netctl_cni::Error {
    fn from(e: DnsError) -> Self {
        let code = match e {
            DnsError::BadRecord { .. } => netctl_cni::ErrorCode::Decoding,
            _ => netctl_cni::ErrorCode::Io,
        };
        netctl_cni::Error::new(code, e.to_string())
    }
}

/// One attachment's DNS names and addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The network name.
    pub network: String,
    /// The container ID.
    pub container_id: String,
    /// The interface in the container.
    pub ifname: String,
    /// The container's name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Other names (`--net-alias`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Its addresses on this network.
    pub ips: Vec<IpAddr>,
    /// The container's network namespace, where the server listens on 127.0.0.11.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    /// Gateways of the network, where the server also listens when it can.
    #[serde(default)]
    pub gateways: Vec<IpAddr>,
    /// An internal network: names outside it are never forwarded upstream.
    #[serde(default)]
    pub internal: bool,
    /// The container's own upstream resolvers (`--dns`, the CNI `dns` capability): names
    /// this container asks that no network knows go there instead of the host's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<IpAddr>,
    /// Whether the upstreams are the container's own (`--dns`), not its network's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own_upstreams: bool,
    /// The container's links on this network (`--link NAME:ALIAS` on a user network):
    /// each alias answers as its container, for this container alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

/// A link on a user network: `alias`, asked by the linking container, answers as the
/// container called `name` on the same network (Docker's links beside its embedded DNS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The linked container's name.
    pub name: String,
    /// The name the linking container uses for it.
    pub alias: String,
}

/// The `CNI_ARGS` key that carries an attachment's links: `NAME:ALIAS,NAME:ALIAS`.
pub const LINKS_ARG: &str = "NETCTL_LINKS";

impl Link {
    /// Links as the value of [`LINKS_ARG`].
    pub fn list_arg(links: &[Link]) -> String {
        links
            .iter()
            .map(|l| format!("{}:{}", l.name, l.alias))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The links of a [`LINKS_ARG`] value; each name and alias must be a container name.
    pub fn parse_list(value: &str) -> Result<Vec<Link>, netctl_cni::Error> {
        value
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, alias) = l.split_once(':').unwrap_or((l, l));
                for n in [name, alias] {
                    if !netctl_cni::validate::is_object_name(n) {
                        return Err(netctl_cni::Error::invalid_config(format!(
                            "{LINKS_ARG}: {n:?} in {l:?} is no container name"
                        )));
                    }
                }
                Ok(Link {
                    name: name.into(),
                    alias: alias.into(),
                })
            })
            .collect()
    }
}

/// The attachment's links, from `CNI_ARGS` ([`LINKS_ARG`]).
pub fn links(ctx: &netctl_cni::Ctx) -> Result<Vec<Link>, netctl_cni::Error> {
    ctx.cni_arg(LINKS_ARG)
        .map_or(Ok(Vec::new()), Link::parse_list)
}

impl Record {
    /// The first 12 characters of the container ID (Docker's short ID).
    pub fn short_id(&self) -> &str {
        netctl_cni::validate::short_id(&self.container_id)
    }

    /// Every name this record answers to, lowercase: its name, aliases and short ID, each
    /// also as `<name>.<network>` (what PTR answers name, so every PTR answer resolves).
    pub fn names(&self) -> Vec<String> {
        let clean = |n: &str| n.trim_end_matches('.').to_ascii_lowercase();
        let network = self.network.to_ascii_lowercase();
        let mut out: Vec<String> = Vec::new();
        let mut push = |n: String| {
            if !n.is_empty() && !out.contains(&n) {
                out.push(n);
            }
        };
        for n in self.name.iter().chain(&self.aliases).map(|n| clean(n)) {
            push(format!("{n}.{network}"));
            push(n);
        }
        let short = clean(self.short_id());
        push(format!("{short}.{network}"));
        push(short);
        out
    }

    /// The file name of this record.
    pub fn file_name(&self) -> String {
        format!("{}:{}.json", self.container_id, self.ifname)
    }
}

/// The DNS name and aliases a runtime gives an attachment: `K8S_POD_NAME` in `CNI_ARGS`
/// (what podman and netctl pass), and `runtimeConfig.aliases` for this network (without
/// the name itself).
pub fn identity(ctx: &netctl_cni::Ctx) -> (Option<String>, Vec<String>) {
    let name = ctx.cni_arg("K8S_POD_NAME").map(str::to_string);
    let aliases = ctx
        .conf
        .runtime_config
        .as_ref()
        .and_then(|rc| rc.aliases.get(&ctx.conf.name).cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|a| Some(a) != name.as_ref())
        .collect();
    (name, aliases)
}

/// The folders and sockets of the DNS service under a run directory.
#[derive(Debug, Clone)]
pub struct DnsPaths {
    /// `<run>/dns`.
    pub root: PathBuf,
}

impl DnsPaths {
    /// The paths under `run_dir`.
    pub fn new(run_dir: &Path) -> Self {
        DnsPaths {
            root: run_dir.join("dns"),
        }
    }

    /// Where records live.
    pub fn records(&self) -> PathBuf {
        self.root.join("records")
    }

    /// The server's control socket.
    pub fn control(&self) -> PathBuf {
        self.root.join("control.sock")
    }

    /// The server's pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("dnsd.pid")
    }

    /// The pid file of the server's supervisor, which restarts it when it dies.
    pub fn supervisor_pid_file(&self) -> PathBuf {
        self.root.join("supervisor.pid")
    }

    /// The lock the running server holds.
    pub fn server_lock(&self) -> PathBuf {
        self.root.join("dnsd.lock")
    }

    /// The record of `container:ifname` on `network`.
    pub fn record_path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.records()
            .join(network)
            .join(format!("{container_id}:{ifname}.json"))
    }

    /// Writes a record atomically.
    pub fn write(&self, r: &Record) -> Result<PathBuf, DnsError> {
        let path = self.record_path(&r.network, &r.container_id, &r.ifname);
        let bytes = serde_json::to_vec(r).unwrap_or_default();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| DnsError::io(format!("create {}", dir.display()), e))?;
        }
        fsutil::write_atomic(&path, &bytes)
            .map_err(|e| DnsError::io(format!("write {}", path.display()), e))?;
        Ok(path)
    }

    /// Reads one record, None when it does not exist.
    pub fn read(path: &Path) -> Result<Option<Record>, DnsError> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| DnsError::BadRecord {
                    path: path.display().to_string(),
                    source,
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DnsError::io(format!("read {}", path.display()), e)),
        }
    }

    /// Every record file of every network (or of one), read from the folders as the
    /// iterator goes: a server loading 100,000 records holds one path at a time, not a list
    /// whose freed pieces would stay between the records' memory.
    pub fn record_files(&self, network: Option<&str>) -> impl Iterator<Item = PathBuf> {
        let nets: Vec<PathBuf> = match network {
            Some(n) => vec![self.records().join(n)],
            None => std::fs::read_dir(self.records())
                .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default(),
        };
        nets.into_iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|rd| rd.filter_map(Result::ok).map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
    }

    /// Asks the running server to reload `path` (a record that was written or removed) and
    /// waits for it to answer; `Err(NoServer)` when no server listens.
    pub fn notify(&self, path: &Path) -> Result<(), DnsError> {
        self.request(&format!("update {}", path.display()))
            .map_err(|e| match e {
                DnsError::Io { source, .. } => DnsError::io(
                    format!("the DNS server refused the update of {}", path.display()),
                    source,
                ),
                other => other,
            })
    }

    /// Waits for the running server to answer; `Err(NoServer)` when no server listens.
    pub fn ping(&self) -> Result<(), DnsError> {
        self.request("ping")
    }

    fn request(&self, line: &str) -> Result<(), DnsError> {
        let sock = self.control();
        let no_server = || DnsError::NoServer(sock.display().to_string());
        let mut stream = UnixStream::connect(&sock).map_err(|_| no_server())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
            .map_err(|_| no_server())?;
        writeln!(stream, "{line}").map_err(|_| no_server())?;
        let mut reply = String::new();
        BufReader::new(&stream)
            .read_line(&mut reply)
            .map_err(|_| no_server())?;
        if reply.starts_with("ok") {
            Ok(())
        } else {
            Err(DnsError::io(
                format!("the DNS server refused {line:?}"),
                std::io::Error::other(reply.trim().to_string()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record {
            network: "Web".into(),
            container_id: "0123456789abcdef0123".into(),
            ifname: "eth0".into(),
            name: Some("Api".into()),
            aliases: vec!["web".into(), "web".into()],
            ips: vec!["172.18.0.2".parse().unwrap()],
            netns: None,
            ..Default::default()
        }
    }

    #[test]
    fn a_record_answers_to_name_short_id_aliases_and_network_qualified_names() {
        assert_eq!(
            rec().names(),
            [
                "api.web",
                "api",
                "web.web",
                "web",
                "0123456789ab.web",
                "0123456789ab"
            ]
        );
    }

    #[test]
    fn records_round_trip_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DnsPaths::new(dir.path());
        let p = paths.write(&rec()).unwrap();
        assert_eq!(DnsPaths::read(&p).unwrap(), Some(rec()));
        assert_eq!(
            paths.record_files(None).collect::<Vec<_>>(),
            vec![p.clone()]
        );
        std::fs::remove_file(&p).unwrap();
        assert_eq!(DnsPaths::read(&p).unwrap(), None);
        assert!(matches!(paths.notify(&p), Err(DnsError::NoServer(_))));
    }
}
