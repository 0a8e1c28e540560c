//! The runtime side of CNI: find a plugin in `CNI_PATH`, exec it with the `CNI_*`
//! environment and a config on stdin, read its Result or Error; run whole configuration
//! lists (ADD in order with `prevResult` threaded through, DEL in reverse, CHECK, GC,
//! STATUS) and cache the last ADD result per attachment, as libcni does.

use crate::process::{wait_with_deadline, CleanSignals, Finished};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorCode};
use crate::fsutil;
use crate::skel::{Command, Ctx};
use crate::types::{Attachment, NetConfList, Success};
use crate::validate;
use crate::version::SpecVersion;

/// One container attachment as the runtime describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConf {
    /// The container ID.
    pub container_id: String,
    /// The container's network namespace (absent on DEL when it is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    /// The interface name in the container.
    pub ifname: String,
    /// `CNI_ARGS` pairs.
    #[serde(default)]
    pub args: Vec<(String, String)>,
    /// Capability arguments, given to the plugins that declare each capability.
    #[serde(default)]
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
    fn attachment(&self) -> Attachment {
        Attachment {
            container_id: self.container_id.clone(),
            ifname: self.ifname.clone(),
        }
    }

    fn cni_args(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Finds plugin binaries and runs them.
#[derive(Debug, Clone, Default)]
pub struct PluginExec {
    /// Folders searched for plugins, in order.
    pub cni_path: Vec<PathBuf>,
    /// Extra environment for every plugin run.
    pub env: Vec<(String, String)>,
    /// How long a plugin may run: past it, the plugin is killed with its process group (it
    /// runs in a group of its own then) and the call fails. None: no limit, and the plugin
    /// stays in its caller's group (a delegate, under its caller's deadline).
    pub deadline: Option<std::time::Duration>,
}

impl PluginExec {
    /// The plugin binary of type `ty`: the first executable file of that name in `CNI_PATH`.
    pub fn find(&self, ty: &str) -> Result<PathBuf, Error> {
        validate::plugin_type(ty)?;
        self.cni_path
            .iter()
            .map(|dir| dir.join(ty))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::PluginNotAvailable,
                    format!("failed to find plugin {ty:?} in CNI_PATH"),
                )
                .with_details(format!("searched {}", self.path_string()))
            })
    }

    fn path_string(&self) -> String {
        std::env::join_paths(&self.cni_path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Runs plugin `ty` for `command`; returns its stdout JSON (None when it printed
    /// nothing), or the Error it printed when it failed.
    pub fn run(
        &self,
        ty: &str,
        command: Command,
        rt: Option<&RuntimeConf>,
        stdin: &[u8],
    ) -> Result<Option<Value>, Error> {
        let binary = self.find(ty)?;
        let mut cmd = Process::new(&binary);
        cmd.env("CNI_COMMAND", command.as_str())
            .env("CNI_PATH", self.path_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for k in [
            "CNI_CONTAINERID",
            "CNI_NETNS",
            "CNI_IFNAME",
            "CNI_ARGS",
            crate::skel::DELEGATED_ENV,
        ] {
            cmd.env_remove(k);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(rt) = rt {
            cmd.env("CNI_CONTAINERID", &rt.container_id)
                .env("CNI_IFNAME", &rt.ifname)
                .env("CNI_ARGS", rt.cni_args());
            if let Some(ns) = &rt.netns {
                cmd.env("CNI_NETNS", ns);
            }
        }
        exec(&binary, cmd, stdin, self.deadline)
    }
}

thread_local! {
    /// The descriptor plugins started by this thread inherit ([`handing_down`]).
    static HANDED: std::cell::Cell<Option<std::os::fd::RawFd>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with `fd` handed to every plugin this thread starts meanwhile (open in the
/// plugin, as it is here), and to no other process: not to what this thread starts any
/// other way, nor to what other threads start. A runtime hands its lock on a container to
/// the plugins working on it this way, so a plugin a killed runtime left running still
/// holds it.
pub fn handing_down<T>(fd: std::os::fd::BorrowedFd<'_>, f: impl FnOnce() -> T) -> T {
    use std::os::fd::AsRawFd;
    let before = HANDED.replace(Some(fd.as_raw_fd()));
    let out = f();
    HANDED.set(before);
    out
}

/// Makes the descriptor handed down by this thread, if any, inheritable by what `cmd`
/// starts (in the child only).
#[allow(unsafe_code)]
fn hand_down(cmd: &mut Process) {
    use std::os::unix::process::CommandExt;
    if let Some(fd) = HANDED.get() {
        // SAFETY: runs in the child between fork and exec and only clears the descriptor's
        // close-on-exec flag (fcntl is async-signal-safe); the parent's flag is untouched.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

fn exec(
    binary: &Path,
    mut cmd: Process,
    stdin: &[u8],
    deadline: Option<std::time::Duration>,
) -> Result<Option<Value>, Error> {
    use std::os::unix::process::CommandExt;
    let shown = binary.display();
    hand_down(&mut cmd);
    if deadline.is_some() {
        cmd.process_group(0);
    }
    let mut child = cmd
        .clean_signals()
        .spawn()
        .map_err(|e| Error::io(format!("failed to start plugin {shown}"), &e))?;
    let writer = child.stdin.take().map(|input| feed(input, stdin.to_vec()));
    let waited = match deadline {
        None => child.wait_with_output().map(Finished::Exited),
        Some(d) => wait_with_deadline(child, d),
    };
    let out = match waited {
        Ok(Finished::Exited(out)) => out,
        Ok(Finished::TimedOut) => {
            return Err(Error::new(
                ErrorCode::Io,
                format!(
                "plugin {shown} did not finish within {:?} and was killed with its process group",
                deadline.unwrap_or_default()
            ),
            ))
        }
        Err(e) => return Err(Error::io(format!("failed to wait for plugin {shown}"), &e)),
    };
    // What the plugin made of its config is in its answer; a plugin that went without
    // reading it all is judged by that answer too.
    if let Some(w) = writer {
        let _ = w.join();
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(
            serde_json::from_slice::<Error>(&out.stdout).unwrap_or_else(|_| {
                Error::new(
                    ErrorCode::Io,
                    format!("plugin {shown} failed ({})", out.status),
                )
                .with_details(format!("it printed {:?}", text.trim()))
            }),
        );
    }
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::decoding(
            format!("plugin {shown} printed something that is not JSON"),
            &e,
        )
    })
}

/// Writes a plugin's config to its stdin from a thread of its own with SIGPIPE blocked: a
/// plugin that exits without reading it (a careless or hostile one) makes the write fail
/// with EPIPE instead of killing the runtime (the CLI keeps SIGPIPE's default action), and
/// one that never reads cannot hold the caller past its deadline. The pending SIGPIPE goes
/// with the thread.
fn feed(
    mut input: std::process::ChildStdin,
    config: Vec<u8>,
) -> std::thread::JoinHandle<std::io::Result<()>> {
    std::thread::spawn(move || {
        crate::process::block_sigpipe();
        input.write_all(&config)
    })
}

/// netctl's plugins that attach containers, never an IPAM plugin a driver delegates to.
/// (`netctl-overlay` is both: asked as a delegate, it is the cluster's IPAM, and as a
/// delegate it delegates to nothing.)
pub const MAIN_PLUGINS: [&str; 6] = [
    "netctl-bridge",
    "netctl-macvlan",
    "netctl-host",
    "netctl-none",
    "netctl-container",
    "netctl-dns",
];

/// Refuses a delegation that would run plugins in a loop: to the calling plugin itself, to
/// one of netctl's main plugins, or from a plugin that was itself run as a delegate.
fn check_delegation(ctx: &Ctx, ty: &str) -> Result<(), Error> {
    let why = if ctx.args.delegated {
        Some("this plugin was itself run as a delegate, and delegates do not delegate again")
    } else if ty == ctx.conf.plugin_type {
        Some("that is this plugin itself")
    } else if MAIN_PLUGINS.contains(&ty) {
        Some("that is a main plugin, not an IPAM plugin")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::invalid_config(format!(
            "ipam type {ty:?} of plugin {:?} would make the plugins run each other without end: {why}",
            ctx.conf.plugin_type
        ))),
        None => Ok(()),
    }
}

/// Runs a delegate plugin (IPAM) from inside a plugin: the same `CNI_*` environment as the
/// caller's, with the command replaced, and `conf` on stdin.
pub fn delegate(
    ctx: &Ctx,
    command: Command,
    ty: &str,
    conf: &[u8],
) -> Result<Option<Success>, Error> {
    check_delegation(ctx, ty)?;
    let exec = PluginExec {
        cni_path: ctx.args.cni_path.clone(),
        env: vec![(crate::skel::DELEGATED_ENV.into(), "1".into())],
        deadline: None,
    };
    let rt = RuntimeConf {
        container_id: ctx.args.container_id.clone(),
        netns: ctx.args.netns.clone(),
        ifname: ctx.args.ifname.clone(),
        args: ctx.args.cni_args.clone(),
        capability_args: Map::new(),
    };
    let rt = (!rt.container_id.is_empty()).then_some(&rt);
    exec.run(ty, command, rt, conf)?
        .map(|v| Success::from_json(&v))
        .transpose()
}

/// What is cached per attachment after a successful ADD.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheEntry {
    kind: String,
    network_name: String,
    runtime: RuntimeConf,
    result: Value,
}

const CACHE_KIND: &str = "netctlCniCacheV1";

/// A CNI client: plugins from `exec`, results cached under `cache_dir`.
#[derive(Debug, Clone)]
pub struct CniConfig {
    /// How plugins are found and run.
    pub exec: PluginExec,
    /// Where ADD results are cached (`<cache_dir>/results/<net>-<id>-<ifname>`).
    pub cache_dir: PathBuf,
}

impl CniConfig {
    /// A client searching `cni_path` and caching under `cache_dir`.
    pub fn new(cni_path: Vec<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        CniConfig {
            exec: PluginExec {
                cni_path,
                env: Vec::new(),
                deadline: None,
            },
            cache_dir: cache_dir.into(),
        }
    }

    /// Attaches: ADD through the chain in order. If a plugin fails, the plugins before it
    /// are called with DEL in reverse order, so nothing half-made stays behind.
    pub fn add(&self, list: &NetConfList, rt: &RuntimeConf) -> Result<Success, Error> {
        let version = check_runtime(list, rt)?;
        let mut prev: Option<Value> = None;
        for (i, plugin) in list.plugins.iter().enumerate() {
            let conf = plugin_config(list, plugin, prev.as_ref(), rt);
            match self
                .exec
                .run(plugin_type(plugin), Command::Add, Some(rt), &conf)
            {
                Ok(Some(out)) => prev = Some(out),
                Ok(None) => {
                    let err = Error::new(
                        ErrorCode::Decoding,
                        format!("plugin {} returned no result for ADD", plugin_type(plugin)),
                    );
                    self.undo_partial_add(list, rt, i, prev.as_ref());
                    return Err(err);
                }
                Err(e) => {
                    self.undo_partial_add(list, rt, i, prev.as_ref());
                    return Err(e);
                }
            }
        }
        let result = prev.unwrap_or(Value::Null);
        let success = Success::from_json(&result)?;
        self.cache_put(list, rt, success.to_json(version))?;
        Ok(success)
    }

    fn undo_partial_add(
        &self,
        list: &NetConfList,
        rt: &RuntimeConf,
        done: usize,
        prev: Option<&Value>,
    ) {
        for plugin in list.plugins[..done].iter().rev() {
            let conf = plugin_config(list, plugin, prev, rt);
            // Best effort: the ADD error is what the caller needs to see.
            let _ = self
                .exec
                .run(plugin_type(plugin), Command::Del, Some(rt), &conf);
        }
    }

    /// Detaches: DEL through the chain in reverse order, with the cached result as
    /// `prevResult` (0.4.0 on). Every plugin is called even if one fails; the first error is
    /// returned and the cache is kept so that DEL can be retried.
    pub fn del(&self, list: &NetConfList, rt: &RuntimeConf) -> Result<(), Error> {
        let version = check_runtime(list, rt)?;
        let cached = match version.has_check() {
            true => self.cache_get(&list.name, rt)?.map(|e| e.result),
            false => None,
        };
        let mut first_err = None;
        for plugin in list.plugins.iter().rev() {
            let conf = plugin_config(list, plugin, cached.as_ref(), rt);
            if let Err(e) = self
                .exec
                .run(plugin_type(plugin), Command::Del, Some(rt), &conf)
            {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => self.cache_remove(&list.name, rt),
        }
    }

    /// Verifies: CHECK through the chain in order, with the cached result as `prevResult`.
    pub fn check(&self, list: &NetConfList, rt: &RuntimeConf) -> Result<(), Error> {
        self.check_chain(list, rt, false)
    }

    /// Brings an attachment up to date with `rt` (a new name, new aliases) through the
    /// plugins that keep a container's names (those declaring the `aliases` capability):
    /// CHECK with netctl's [`crate::types::REFRESH`] key, even where the conflist disables
    /// CHECK.
    pub fn refresh(&self, list: &NetConfList, rt: &RuntimeConf) -> Result<(), Error> {
        self.check_chain(list, rt, true)
    }

    fn check_chain(
        &self,
        list: &NetConfList,
        rt: &RuntimeConf,
        refresh: bool,
    ) -> Result<(), Error> {
        let version = check_runtime(list, rt)?;
        if !version.has_check() {
            return Err(Error::new(
                ErrorCode::IncompatibleVersion,
                format!(
                    "network {} uses CNI {version}, which has no CHECK",
                    list.name
                ),
            ));
        }
        if list.disable_check && !refresh {
            return Ok(());
        }
        let cached = self.cache_get(&list.name, rt)?.ok_or_else(|| {
            Error::new(
                ErrorCode::UnknownContainer,
                format!(
                    "no cached result for container {} on network {} ({}): was it attached?",
                    rt.container_id, list.name, rt.ifname
                ),
            )
        })?;
        for plugin in &list.plugins {
            if refresh && !declares_aliases(plugin) {
                continue;
            }
            let mut plugin = plugin.clone();
            if refresh {
                plugin.insert(crate::types::REFRESH.into(), Value::Bool(true));
            }
            let conf = plugin_config(list, &plugin, Some(&cached.result), rt);
            self.exec
                .run(plugin_type(&plugin), Command::Check, Some(rt), &conf)?;
        }
        Ok(())
    }

    /// Garbage-collects: DEL for every cached attachment of this network not in `valid`,
    /// then GC on each plugin with `cni.dev/valid-attachments`.
    pub fn gc(&self, list: &NetConfList, valid: &[Attachment]) -> Result<(), Error> {
        self.collect(list, valid, false)
    }

    /// Removes a network from the host, through its plugins (netctl's extension of GC,
    /// [`crate::types::REMOVE_NETWORK`]): DEL of every cached attachment, then GC on each
    /// plugin with no valid attachment and the extension's key set, so each plugin takes away
    /// what it keeps for the whole network (a bridge and its rules, an address store, DNS
    /// records). Plugins that do not know the key do an ordinary GC.
    pub fn remove_network(&self, list: &NetConfList) -> Result<(), Error> {
        self.collect(list, &[], true)
    }

    fn collect(&self, list: &NetConfList, valid: &[Attachment], remove: bool) -> Result<(), Error> {
        let version = list.spec_version()?;
        fsutil::sweep_stale_tmp(&self.cache_dir.join("results"));
        let mut first_err = None;
        for entry in self.cache_entries(&list.name)? {
            if !valid.contains(&entry.runtime.attachment()) {
                let mut rt = entry.runtime.clone();
                rt.netns = None;
                if let Err(e) = self.del(list, &rt) {
                    first_err.get_or_insert(e);
                }
            }
        }
        if version.has_gc_and_status() && !list.disable_gc {
            let attachments = serde_json::to_value(valid).unwrap_or(Value::Null);
            for plugin in &list.plugins {
                let mut conf = plugin.clone();
                conf.insert("cni.dev/valid-attachments".into(), attachments.clone());
                if remove {
                    conf.insert(crate::types::REMOVE_NETWORK.into(), Value::Bool(true));
                }
                let bytes = base_config(list, &conf);
                if let Err(e) = self
                    .exec
                    .run(plugin_type(plugin), Command::Gc, None, &bytes)
                {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// STATUS on each plugin; the first that cannot serve ADD answers.
    pub fn status(&self, list: &NetConfList) -> Result<(), Error> {
        if !list.spec_version()?.has_gc_and_status() {
            return Ok(());
        }
        for plugin in &list.plugins {
            let bytes = base_config(list, plugin);
            self.exec
                .run(plugin_type(plugin), Command::Status, None, &bytes)?;
        }
        Ok(())
    }

    /// Makes a network's host side before any attachment, through its plugins (netctl's
    /// extension of STATUS, [`crate::types::PREPARE_NETWORK`]).
    pub fn prepare_network(&self, list: &NetConfList) -> Result<(), Error> {
        if !list.spec_version()?.has_gc_and_status() {
            return Ok(());
        }
        for plugin in &list.plugins {
            let mut conf = plugin.clone();
            conf.insert(crate::types::PREPARE_NETWORK.into(), Value::Bool(true));
            let bytes = base_config(list, &conf);
            self.exec
                .run(plugin_type(plugin), Command::Status, None, &bytes)?;
        }
        Ok(())
    }

    /// The last ADD result cached for this attachment.
    pub fn cached_result(&self, network: &str, rt: &RuntimeConf) -> Result<Option<Success>, Error> {
        self.cache_get(network, rt)?
            .map(|e| Success::from_json(&e.result))
            .transpose()
    }

    /// Every attachment of `network` with a cached result.
    pub fn cached_attachments(&self, network: &str) -> Result<Vec<RuntimeConf>, Error> {
        Ok(self
            .cache_entries(network)?
            .into_iter()
            .map(|e| e.runtime)
            .collect())
    }

    fn cache_path(&self, network: &str, rt: &RuntimeConf) -> PathBuf {
        self.cache_dir
            .join("results")
            .join(format!("{network}-{}-{}", rt.container_id, rt.ifname))
    }

    fn cache_put(&self, list: &NetConfList, rt: &RuntimeConf, result: Value) -> Result<(), Error> {
        let entry = CacheEntry {
            kind: CACHE_KIND.into(),
            network_name: list.name.clone(),
            runtime: rt.clone(),
            result,
        };
        let path = self.cache_path(&list.name, rt);
        let bytes = serde_json::to_vec(&entry).unwrap_or_default();
        std::fs::create_dir_all(self.cache_dir.join("results"))
            .and_then(|()| fsutil::write_atomic(&path, &bytes))
            .map_err(|e| {
                Error::io(
                    format!("failed to cache the result in {}", path.display()),
                    &e,
                )
            })
    }

    fn cache_get(&self, network: &str, rt: &RuntimeConf) -> Result<Option<CacheEntry>, Error> {
        let path = self.cache_path(network, rt);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::decoding(format!("cached result {} is corrupt", path.display()), &e)
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("failed to read {}", path.display()), &e)),
        }
    }

    fn cache_remove(&self, network: &str, rt: &RuntimeConf) -> Result<(), Error> {
        let path = self.cache_path(network, rt);
        fsutil::remove_if_exists(&path)
            .map_err(|e| Error::io(format!("failed to remove {}", path.display()), &e))
    }

    fn cache_entries(&self, network: &str) -> Result<Vec<CacheEntry>, Error> {
        let dir = self.cache_dir.join("results");
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("failed to list {}", dir.display()), &e)),
        };
        let prefix = format!("{network}-");
        Ok(read
            .filter_map(Result::ok)
            .filter(|d| d.file_name().to_string_lossy().starts_with(&prefix))
            .filter_map(|d| std::fs::read(d.path()).ok())
            .filter_map(|b| serde_json::from_slice::<CacheEntry>(&b).ok())
            .filter(|e| e.kind == CACHE_KIND && e.network_name == network)
            .collect())
    }
}

fn check_runtime(list: &NetConfList, rt: &RuntimeConf) -> Result<SpecVersion, Error> {
    validate::container_id(&rt.container_id)?;
    validate::ifname(&rt.ifname)?;
    validate::network_name(&list.name)?;
    list.spec_version()
}

/// The version string plugins are called with.
fn version_of(list: &NetConfList) -> String {
    list.spec_version()
        .map_or_else(|_| list.cni_version.clone(), |v| v.as_str().to_string())
}

/// Whether a plugin takes the container's names (declares the `aliases` capability).
fn declares_aliases(plugin: &Map<String, Value>) -> bool {
    plugin
        .get("capabilities")
        .and_then(|c| c.get("aliases"))
        .and_then(Value::as_bool)
        == Some(true)
}

fn plugin_type(plugin: &Map<String, Value>) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or("")
}

/// One plugin's config: its own keys plus the list's name and version.
fn base_config(list: &NetConfList, plugin: &Map<String, Value>) -> Vec<u8> {
    let mut conf = plugin.clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(version_of(list)));
    serde_json::to_vec(&conf).unwrap_or_default()
}

/// One plugin's config for an attachment: the base config, `prevResult`, and a
/// `runtimeConfig` with the capability arguments this plugin declares.
fn plugin_config(
    list: &NetConfList,
    plugin: &Map<String, Value>,
    prev: Option<&Value>,
    rt: &RuntimeConf,
) -> Vec<u8> {
    let mut conf = plugin.clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(version_of(list)));
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    let runtime_config: Map<String, Value> = plugin
        .get("capabilities")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, on)| on.as_bool() == Some(true))
        .filter_map(|(cap, _)| Some((cap.clone(), rt.capability_args.get(cap)?.clone())))
        .collect();
    if !runtime_config.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    serde_json::to_vec(&conf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> NetConfList {
        serde_json::from_value(json!({
            "cniVersion": "1.0.0",
            "name": "web",
            "plugins": [
                {"type": "netctl-bridge", "capabilities": {"portMappings": true, "ips": false}},
                {"type": "netctl-dns", "capabilities": {"aliases": true}}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn each_plugin_gets_only_the_capabilities_it_declares() {
        let rt = RuntimeConf {
            container_id: "c1".into(),
            ifname: "eth0".into(),
            capability_args: json!({
                "portMappings": [{"hostPort": 80, "containerPort": 80}],
                "ips": ["10.0.0.9"],
                "aliases": {"web": ["api"]}
            })
            .as_object()
            .cloned()
            .unwrap(),
            ..RuntimeConf::default()
        };
        let l = list();
        let first: Value =
            serde_json::from_slice(&plugin_config(&l, &l.plugins[0], None, &rt)).unwrap();
        assert_eq!(first["name"], "web");
        assert_eq!(first["cniVersion"], "1.0.0");
        assert!(first["runtimeConfig"].get("portMappings").is_some());
        assert!(first["runtimeConfig"].get("ips").is_none());
        assert!(first["runtimeConfig"].get("aliases").is_none());
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        let second: Value =
            serde_json::from_slice(&plugin_config(&l, &l.plugins[1], Some(&prev), &rt)).unwrap();
        assert_eq!(
            second["runtimeConfig"],
            json!({"aliases": {"web": ["api"]}})
        );
        assert_eq!(second["prevResult"], prev);
    }

    fn ctx(plugin_type: &str, delegated: bool) -> Ctx {
        Ctx {
            args: crate::skel::Args {
                command: Command::Add,
                container_id: "c1".into(),
                netns: None,
                ifname: "eth0".into(),
                cni_args: Vec::new(),
                cni_path: Vec::new(),
                delegated,
            },
            version: SpecVersion::LATEST,
            conf: serde_json::from_value(json!({"name": "web", "type": plugin_type})).unwrap(),
            stdin: Vec::new(),
        }
    }

    #[test]
    fn delegation_to_itself_to_a_main_plugin_or_from_a_delegate_is_refused() {
        for (ty, target, delegated) in [
            ("netctl-bridge", "netctl-bridge", false),
            ("netctl-bridge", "netctl-macvlan", false),
            ("my-driver", "my-driver", false),
            ("netctl-bridge", "host-local", true),
        ] {
            let e = delegate(&ctx(ty, delegated), Command::Add, target, b"{}").unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidConfig, "{ty} -> {target}");
            assert!(e.msg.contains("without end"), "{}", e.msg);
        }
        let e = delegate(
            &ctx("netctl-bridge", false),
            Command::Add,
            "host-local",
            b"{}",
        )
        .unwrap_err();
        assert_eq!(
            e.code,
            ErrorCode::PluginNotAvailable,
            "an ordinary IPAM is looked up"
        );
    }

    #[test]
    fn a_missing_plugin_is_error_50_naming_the_search_path() {
        let exec = PluginExec {
            cni_path: vec!["/nonexistent/cni".into()],
            ..PluginExec::default()
        };
        let e = exec.find("netctl-bridge").unwrap_err();
        assert_eq!(e.code, ErrorCode::PluginNotAvailable);
        assert!(e.details.contains("/nonexistent/cni"));
        assert_eq!(
            exec.find("../sh").unwrap_err().code,
            ErrorCode::InvalidConfig
        );
    }

    /// A plugin script in a folder of its own.
    fn script_plugin(dir: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn gone(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')').next().unwrap().trim_start().starts_with('Z')
        })
    }

    #[test]
    fn a_plugin_that_hangs_is_killed_with_its_children_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        script_plugin(
            dir.path(),
            "hang",
            &format!("sleep 300 & echo $! > {}; sleep 300", pids.display()),
        );
        let exec = PluginExec {
            cni_path: vec![dir.path().into()],
            deadline: Some(std::time::Duration::from_millis(500)),
            ..PluginExec::default()
        };
        let started = std::time::Instant::now();
        let e = exec.run("hang", Command::Add, None, b"{}").unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(
            e.msg.contains("hang") && e.msg.contains("did not finish"),
            "{}",
            e.msg
        );
        let child = std::fs::read_to_string(&pids).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !gone(child.trim()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the plugin's child lives on"
            );
            std::thread::yield_now();
        }
    }

    /// A plugin that fails at once without reading its (large) config, in a runtime that
    /// keeps SIGPIPE's default action (as the netctl CLI does): the runtime gets the
    /// plugin's error instead of dying of SIGPIPE.
    #[test]
    #[allow(unsafe_code)]
    fn a_plugin_that_never_reads_its_config_does_not_kill_the_runtime() {
        // SAFETY: restores SIGPIPE's default action in this test's own process.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        let dir = tempfile::tempdir().unwrap();
        script_plugin(
            dir.path(),
            "rude",
            "echo '{\"cniVersion\": \"1.0.0\", \"code\": 7, \"msg\": \"no\"}'; exit 1",
        );
        for deadline in [None, Some(std::time::Duration::from_secs(20))] {
            let exec = PluginExec {
                cni_path: vec![dir.path().into()],
                deadline,
                ..PluginExec::default()
            };
            let config = vec![b' '; 1 << 20];
            let e = exec.run("rude", Command::Del, None, &config).unwrap_err();
            assert_eq!(e.msg, "no");
        }
    }

    #[test]
    fn a_plugin_whose_child_keeps_stdout_open_is_read_when_it_exits() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        script_plugin(
            dir.path(),
            "quick",
            &format!(
                "sleep 30 2>/dev/null & echo $! > {}; echo '{{\"ok\": 1}}'",
                pids.display()
            ),
        );
        let exec = PluginExec {
            cni_path: vec![dir.path().into()],
            deadline: Some(std::time::Duration::from_secs(20)),
            ..PluginExec::default()
        };
        let started = std::time::Instant::now();
        let out = exec.run("quick", Command::Add, None, b"{}").unwrap();
        assert_eq!(out, Some(json!({"ok": 1})));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let child = std::fs::read_to_string(&pids).unwrap();
        std::process::Command::new("kill")
            .arg(child.trim())
            .status()
            .unwrap();
    }

    #[test]
    fn cache_round_trips_and_is_listed_per_network() {
        let dir = tempfile::tempdir().unwrap();
        let client = CniConfig::new(vec![], dir.path());
        let rt = RuntimeConf {
            container_id: "c1".into(),
            ifname: "eth0".into(),
            ..RuntimeConf::default()
        };
        let l = list();
        client
            .cache_put(
                &l,
                &rt,
                json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}]}),
            )
            .unwrap();
        let got = client.cached_result("web", &rt).unwrap().unwrap();
        assert_eq!(got.interfaces[0].name, "eth0");
        assert_eq!(client.cached_attachments("web").unwrap().len(), 1);
        assert!(client.cached_attachments("web2").unwrap().is_empty());
        client.cache_remove("web", &rt).unwrap();
        assert!(client.cached_result("web", &rt).unwrap().is_none());
    }
}
