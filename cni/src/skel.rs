//! The plugin skeleton: reads `CNI_*` and stdin, validates them for the command, calls the
//! plugin, and prints its Result or Error on stdout. Only this module writes to stdout.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, ErrorCode};
use crate::types::{Attachment, NetConf, Success};
use crate::validate;
use crate::version::SpecVersion;

/// A CNI command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a container.
    Add,
    /// Detach a container.
    Del,
    /// Verify an attachment.
    Check,
    /// Report supported versions.
    Version,
    /// Release what no valid attachment uses.
    Gc,
    /// Report whether the plugin can serve ADD.
    Status,
}

impl Command {
    /// The command as `CNI_COMMAND` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Gc => "GC",
            Command::Status => "STATUS",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Command::Add,
            Command::Del,
            Command::Check,
            Command::Version,
            Command::Gc,
            Command::Status,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// Whether the command acts on one container's attachment.
    fn per_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

/// The validated `CNI_*` environment of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (empty for GC, STATUS).
    pub container_id: String,
    /// `CNI_NETNS`, when given.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (empty for GC, STATUS).
    pub ifname: String,
    /// `CNI_ARGS`, split into pairs.
    pub cni_args: Vec<(String, String)>,
    /// `CNI_PATH`, split.
    pub cni_path: Vec<PathBuf>,
    /// This call was made by another plugin delegating to this one ([`DELEGATED_ENV`] set):
    /// it may not delegate again, so no configuration can make plugins exec each other
    /// without end.
    pub delegated: bool,
}

/// Set by [`crate::invoke::delegate`] in the environment of the plugin it runs.
pub const DELEGATED_ENV: &str = "NETCTL_CNI_DELEGATED";

/// Everything a plugin gets besides its own typed configuration.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The environment.
    pub args: Args,
    /// The version to answer in.
    pub version: SpecVersion,
    /// The common part of the configuration.
    pub conf: NetConf,
    /// The configuration bytes as received (passed on to delegates).
    pub stdin: Vec<u8>,
}

impl Ctx {
    /// The value of a `CNI_ARGS` key.
    pub fn cni_arg(&self, key: &str) -> Option<&str> {
        self.args
            .cni_args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// This call's attachment (container ID + interface).
    pub fn attachment(&self) -> Attachment {
        Attachment {
            container_id: self.args.container_id.clone(),
            ifname: self.args.ifname.clone(),
        }
    }

    /// The previous result of the chain, if the runtime passed one.
    pub fn prev_result(&self) -> Result<Option<Success>, Error> {
        self.conf
            .prev_result
            .as_ref()
            .map(Success::from_json)
            .transpose()
    }

    /// Whether this STATUS makes the network's host side ([`crate::types::PREPARE_NETWORK`]).
    pub fn preparing_network(&self) -> bool {
        self.args.command == Command::Status
            && self.conf.extra.get(crate::types::PREPARE_NETWORK) == Some(&Value::Bool(true))
    }

    /// Whether this CHECK first brings the attachment up to date
    /// ([`crate::types::REFRESH`]).
    pub fn refreshing(&self) -> bool {
        self.args.command == Command::Check
            && self.conf.extra.get(crate::types::REFRESH) == Some(&Value::Bool(true))
    }

    /// Whether this GC removes the network from the host ([`crate::types::REMOVE_NETWORK`]).
    pub fn removing_network(&self) -> bool {
        self.args.command == Command::Gc
            && self.conf.extra.get(crate::types::REMOVE_NETWORK) == Some(&Value::Bool(true))
    }

    /// GC's list of attachments still in use (`cni.dev/valid-attachments`, or the older
    /// `cni.dev/attachments`); each container ID and interface name is validated.
    pub fn valid_attachments(&self) -> Result<Vec<Attachment>, Error> {
        let raw = self
            .conf
            .extra
            .get("cni.dev/valid-attachments")
            .or_else(|| self.conf.extra.get("cni.dev/attachments"));
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        let list: Vec<Attachment> = serde_json::from_value(raw.clone()).map_err(|e| {
            Error::decoding("cni.dev/valid-attachments is not a list of attachments", &e)
        })?;
        for a in &list {
            validate::container_id(&a.container_id)?;
            validate::ifname(&a.ifname)?;
        }
        Ok(list)
    }
}

/// A CNI plugin: one method per command, each given the context and the typed config.
pub trait Plugin {
    /// The plugin's configuration, read from stdin.
    type Config: DeserializeOwned;

    /// ADD: attach the container and describe what was made.
    fn add(&self, ctx: &Ctx, conf: Self::Config) -> Result<Success, Error>;
    /// DEL: undo ADD; succeed when things are already gone.
    fn del(&self, ctx: &Ctx, conf: Self::Config) -> Result<(), Error>;
    /// CHECK: verify that the attachment still matches `prevResult`.
    fn check(&self, ctx: &Ctx, conf: Self::Config) -> Result<(), Error>;
    /// GC: release everything not used by one of `valid`.
    fn gc(&self, ctx: &Ctx, conf: Self::Config, valid: &[Attachment]) -> Result<(), Error>;
    /// STATUS: whether ADD can be served.
    fn status(&self, ctx: &Ctx, conf: Self::Config) -> Result<(), Error>;
    /// Versions the plugin speaks.
    fn supported_versions(&self) -> &[SpecVersion] {
        &SpecVersion::ALL
    }
}

/// Where the skeleton reads its environment from.
pub trait Env {
    /// The variable's value, if set.
    fn var(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var_os(key).map(|v| v.to_string_lossy().into_owned())
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

/// Runs the plugin for this process and exits: 0 on success, 1 after printing an Error.
pub fn run<P: Plugin>(plugin: &P) -> ! {
    crate::fsutil::cloexec_inherited();
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let code = run_with(plugin, &ProcessEnv, &mut stdin.lock(), &mut stdout.lock());
    std::process::exit(code)
}

/// Runs one call with the given environment and streams; returns the exit code.
pub fn run_with<P: Plugin>(
    plugin: &P,
    env: &dyn Env,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> i32 {
    let mut input = Vec::new();
    let outcome = match stdin.read_to_end(&mut input) {
        Ok(_) => dispatch(plugin, env, input.clone()),
        Err(e) => Err(Error::io(
            "failed to read the network configuration from stdin",
            &e,
        )),
    };
    // Only an error needs the version looked up again: a result already carries it.
    let (json, code) = match outcome {
        Ok(Some(v)) => (Some(v), 0),
        Ok(None) => (None, 0),
        Err(e) => (Some(e.to_json(answer_version(plugin, &input).as_str())), 1),
    };
    if let Some(json) = json {
        let written = serde_json::to_writer(&mut *stdout, &json)
            .map_err(std::io::Error::from)
            .and_then(|()| stdout.write_all(b"\n"))
            .and_then(|()| stdout.flush());
        if written.is_err() {
            return 1;
        }
    }
    code
}

/// The version to answer in: the one the config asks for when supported, else the latest.
fn answer_version<P: Plugin>(plugin: &P, input: &[u8]) -> SpecVersion {
    serde_json::from_slice::<Value>(input)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str()?.parse().ok())
        .filter(|v| plugin.supported_versions().contains(v))
        .unwrap_or(SpecVersion::LATEST)
}

fn dispatch<P: Plugin>(plugin: &P, env: &dyn Env, stdin: Vec<u8>) -> Result<Option<Value>, Error> {
    let command = read_command(env)?;
    if command == Command::Version {
        return Ok(Some(version_info(plugin, &stdin)));
    }
    let args = read_args(env, command)?;
    let conf: NetConf = serde_json::from_slice(&stdin)
        .map_err(|e| Error::decoding("the network configuration is not valid JSON", &e))?;
    let version = negotiate(plugin, &conf.cni_version, command)?;
    validate::network_name(&conf.name)?;
    let typed: P::Config = serde_json::from_slice(&stdin).map_err(|e| {
        Error::invalid_config(format!("invalid configuration for network {}", conf.name))
            .with_details(e.to_string())
    })?;
    let ctx = Ctx {
        args,
        version,
        conf,
        stdin,
    };
    match command {
        Command::Add => plugin.add(&ctx, typed).map(|s| Some(s.to_json(version))),
        Command::Del => plugin.del(&ctx, typed).map(|()| None),
        Command::Check => plugin.check(&ctx, typed).map(|()| None),
        Command::Gc => {
            let valid = ctx.valid_attachments()?;
            plugin.gc(&ctx, typed, &valid).map(|()| None)
        }
        Command::Status => plugin.status(&ctx, typed).map(|()| None),
        Command::Version => Ok(Some(version_info(plugin, &ctx.stdin))),
    }
}

fn read_command(env: &dyn Env) -> Result<Command, Error> {
    let raw = env
        .var("CNI_COMMAND")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid_env("CNI_COMMAND is not set"))?;
    Command::parse(&raw).ok_or_else(|| {
        Error::invalid_env(format!("unknown CNI_COMMAND {raw:?}"))
            .with_details("expected ADD, DEL, CHECK, VERSION, GC or STATUS")
    })
}

/// Reads and validates the variables each command needs (ADD and CHECK need a netns; DEL
/// does not; GC and STATUS need only `CNI_PATH`).
fn read_args(env: &dyn Env, command: Command) -> Result<Args, Error> {
    let get = |k: &str| env.var(k).filter(|v| !v.is_empty());
    let require = |k: &str| {
        get(k)
            .ok_or_else(|| Error::invalid_env(format!("{k} is required for {}", command.as_str())))
    };
    let (container_id, ifname) = if command.per_attachment() {
        let id = require("CNI_CONTAINERID")?;
        validate::container_id(&id)?;
        let ifname = require("CNI_IFNAME")?;
        validate::ifname(&ifname)?;
        (id, ifname)
    } else {
        (String::new(), String::new())
    };
    let netns = match command {
        Command::Add | Command::Check => Some(require("CNI_NETNS")?),
        _ => get("CNI_NETNS"),
    };
    let cni_path = require("CNI_PATH")?;
    Ok(Args {
        command,
        container_id,
        netns: netns.map(PathBuf::from),
        ifname,
        cni_args: parse_cni_args(&get("CNI_ARGS").unwrap_or_default())?,
        cni_path: std::env::split_paths(&cni_path).collect(),
        delegated: get(DELEGATED_ENV).is_some(),
    })
}

/// Splits `CNI_ARGS` (`K1=V1;K2=V2`).
pub fn parse_cni_args(raw: &str) -> Result<Vec<(String, String)>, Error> {
    raw.split(';')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    Error::invalid_env(format!("CNI_ARGS entry {pair:?} is not KEY=VALUE"))
                })
        })
        .collect()
}

fn negotiate<P: Plugin>(
    plugin: &P,
    requested: &str,
    command: Command,
) -> Result<SpecVersion, Error> {
    let version: SpecVersion = requested.parse()?;
    if !plugin.supported_versions().contains(&version) {
        return Err(Error::new(
            ErrorCode::IncompatibleVersion,
            format!("this plugin does not support CNI version {version}"),
        ));
    }
    let allowed = match command {
        Command::Check => version.has_check(),
        Command::Gc | Command::Status => version.has_gc_and_status(),
        _ => true,
    };
    if !allowed {
        return Err(Error::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "configuration version {version} does not allow the {} command",
                command.as_str()
            ),
        ));
    }
    Ok(version)
}

fn version_info<P: Plugin>(plugin: &P, stdin: &[u8]) -> Value {
    serde_json::json!({
        "cniVersion": answer_version(plugin, stdin).as_str(),
        "supportedVersions": plugin.supported_versions().iter().map(|v| v.as_str()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Interface;
    use serde::Deserialize;
    use serde_json::json;

    /// A plugin that records nothing and answers with one interface named by its config.
    struct Echo;

    #[derive(Deserialize)]
    struct EchoConf {
        #[serde(default)]
        ifprefix: String,
    }

    impl Plugin for Echo {
        type Config = EchoConf;
        fn add(&self, ctx: &Ctx, conf: EchoConf) -> Result<Success, Error> {
            Ok(Success {
                interfaces: vec![Interface {
                    name: format!("{}{}", conf.ifprefix, ctx.args.ifname),
                    ..Interface::default()
                }],
                ..Success::default()
            })
        }
        fn del(&self, _: &Ctx, _: EchoConf) -> Result<(), Error> {
            Ok(())
        }
        fn check(&self, ctx: &Ctx, _: EchoConf) -> Result<(), Error> {
            ctx.prev_result()?
                .map(|_| ())
                .ok_or_else(|| Error::invalid_config("no prevResult"))
        }
        fn gc(&self, _: &Ctx, _: EchoConf, valid: &[Attachment]) -> Result<(), Error> {
            if valid.len() == 1 {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorCode::Plugin(100),
                    "expected one attachment",
                ))
            }
        }
        fn status(&self, _: &Ctx, _: EchoConf) -> Result<(), Error> {
            Ok(())
        }
    }

    fn call(env: &[(&str, &str)], stdin: &str) -> (i32, Value) {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut out = Vec::new();
        let code = run_with(&Echo, &env, &mut stdin.as_bytes(), &mut out);
        let v = if out.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&out).expect("stdout is JSON")
        };
        (code, v)
    }

    const ADD_ENV: [(&str, &str); 5] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ];

    fn with(
        env: &[(&'static str, &'static str)],
        k: &'static str,
        v: &'static str,
    ) -> Vec<(&'static str, &'static str)> {
        let mut e: Vec<_> = env.iter().filter(|(key, _)| *key != k).copied().collect();
        if !v.is_empty() {
            e.push((k, v));
        }
        e
    }

    #[test]
    fn add_answers_in_the_requested_version() {
        let (code, v) = call(
            &ADD_ENV,
            r#"{"cniVersion":"0.4.0","name":"n","type":"echo","ifprefix":"x-"}"#,
        );
        assert_eq!(code, 0);
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["interfaces"][0]["name"], "x-eth0");
    }

    #[test]
    fn malformed_json_is_error_6() {
        let (code, v) = call(&ADD_ENV, "{not json");
        assert_eq!(code, 1);
        assert_eq!(v["code"], 6);
    }

    #[test]
    fn missing_command_or_netns_for_add_is_error_4() {
        let conf = r#"{"cniVersion":"1.0.0","name":"n","type":"echo"}"#;
        let (code, v) = call(&with(&ADD_ENV, "CNI_COMMAND", ""), conf);
        assert_eq!((code, v["code"].clone()), (1, json!(4)));
        let (code, v) = call(&with(&ADD_ENV, "CNI_NETNS", ""), conf);
        assert_eq!((code, v["code"].clone()), (1, json!(4)));
        assert!(v["msg"].as_str().unwrap_or("").contains("CNI_NETNS"));
        let (code, v) = call(&with(&ADD_ENV, "CNI_COMMAND", "FROB"), conf);
        assert_eq!((code, v["code"].clone()), (1, json!(4)));
    }

    #[test]
    fn del_needs_no_netns() {
        let env = with(&with(&ADD_ENV, "CNI_COMMAND", "DEL"), "CNI_NETNS", "");
        let (code, v) = call(&env, r#"{"cniVersion":"1.0.0","name":"n","type":"echo"}"#);
        assert_eq!((code, v), (0, Value::Null));
    }

    #[test]
    fn unsupported_version_is_error_1_answered_in_the_latest_version() {
        let (code, v) = call(
            &ADD_ENV,
            r#"{"cniVersion":"0.2.0","name":"n","type":"echo"}"#,
        );
        assert_eq!(code, 1);
        assert_eq!(v["code"], 1);
        assert_eq!(v["cniVersion"], "1.1.0");
    }

    #[test]
    fn path_escaping_container_id_is_rejected() {
        let env = with(&ADD_ENV, "CNI_CONTAINERID", "../../etc");
        let (code, v) = call(&env, r#"{"cniVersion":"1.0.0","name":"n","type":"echo"}"#);
        assert_eq!((code, v["code"].clone()), (1, json!(4)));
    }

    #[test]
    fn check_before_0_4_0_and_gc_before_1_1_0_are_refused() {
        let check = with(&ADD_ENV, "CNI_COMMAND", "CHECK");
        let (code, v) = call(&check, r#"{"cniVersion":"0.3.1","name":"n","type":"echo"}"#);
        assert_eq!((code, v["code"].clone()), (1, json!(1)));
        let gc = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")];
        let (code, v) = call(&gc, r#"{"cniVersion":"1.0.0","name":"n","type":"echo"}"#);
        assert_eq!((code, v["code"].clone()), (1, json!(1)));
    }

    #[test]
    fn gc_reads_valid_attachments_in_either_spelling() {
        let gc = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")];
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            let conf = json!({"cniVersion":"1.1.0","name":"n","type":"echo",
                key: [{"containerID":"c1","ifname":"eth0"}]});
            let (code, _) = call(&gc, &conf.to_string());
            assert_eq!(code, 0, "{key}");
        }
        let bad = json!({"cniVersion":"1.1.0","name":"n","type":"echo",
            "cni.dev/valid-attachments": [{"containerID":"../x","ifname":"eth0"}]});
        assert_eq!(call(&gc, &bad.to_string()).0, 1);
    }

    #[test]
    fn version_lists_every_supported_version() {
        let (code, v) = call(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.4.0"}"#);
        assert_eq!(code, 0);
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(
            v["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    }

    #[test]
    fn cni_args_split_into_pairs_and_bad_pairs_are_error_4() {
        let pairs = parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=web").unwrap();
        assert_eq!(pairs[1], ("K8S_POD_NAME".into(), "web".into()));
        assert_eq!(
            parse_cni_args("novalue").unwrap_err().code,
            ErrorCode::InvalidEnvironment
        );
    }

    #[test]
    fn a_config_of_the_wrong_shape_is_error_7() {
        let (code, v) = call(
            &ADD_ENV,
            r#"{"cniVersion":"1.0.0","name":"n","type":"echo","ifprefix":5}"#,
        );
        assert_eq!((code, v["code"].clone()), (1, json!(7)));
    }
}
