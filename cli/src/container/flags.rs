//! From `create`/`run` flags to the engine's [`ContainerSpec`]: each value through the
//! engine's own parser, errors in Docker's words.

use netctl_engine::container::{Attach, NetworkRequest, Sharing};
use netctl_engine::runtime::kernel;
use netctl_engine::runtime::privileges::Privileges;
use netctl_engine::runtime::resources::{
    check_device_rule, parse_bytes, parse_cpus, parse_swap, Resources,
};
use netctl_engine::runtime::seccomp::Seccomp;
use netctl_engine::spec::{self, ContainerSpec};
use netctl_engine::Error;

use super::args::{CreateArgs, LimitArgs};

/// `KEY` alone takes the value from this process's environment, as Docker does.
pub(super) fn expand_env(e: &str) -> String {
    if e.contains('=') {
        e.to_string()
    } else {
        format!("{e}={}", std::env::var(e).unwrap_or_default())
    }
}

pub(super) fn env_of(a: &CreateArgs) -> Result<Vec<String>, Error> {
    let mut env = Vec::new();
    for file in &a.env_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::io(format!("open env file {}", file.display()), e))?;
        env.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(expand_env),
        );
    }
    env.extend(a.env.iter().map(|e| expand_env(e)));
    Ok(env)
}

pub(super) fn ip(s: &str) -> Result<std::net::IpAddr, Error> {
    s.parse()
        .map_err(|_| Error::Invalid(format!("invalid IP address: {s:?}")))
}

/// The engine's spec of the container the flags ask for (each value through the engine's
/// own parser).
pub(super) fn spec_of(a: &CreateArgs) -> Result<ContainerSpec, Error> {
    // What comes before the image is a flag: one clap did not know is not an image.
    if let Some(flag) = a.image().strip_prefix('-') {
        return Err(Error::Invalid(format!(
            "unknown flag: -{flag}\nSee 'netctl run --help'."
        )));
    }
    let mut mounts = Vec::new();
    for v in &a.volume {
        mounts.push(netctl_engine::volume::parse_volume(v)?);
    }
    for m in &a.mount {
        mounts.push(netctl_engine::volume::parse_mount(m)?);
    }
    for t in &a.tmpfs {
        mounts.push(netctl_engine::volume::parse_tmpfs(t)?);
    }
    let publish: Vec<_> = a
        .publish
        .iter()
        .map(|p| spec::parse_publish(p))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    // As Docker's CLI: a published port is an exposed one too.
    let mut expose: Vec<_> = publish
        .iter()
        .map(|p| (p.container_port, p.protocol))
        .collect();
    for e in &a.expose {
        expose.extend(spec::parse_expose(e)?);
    }
    Ok(ContainerSpec {
        // As the docker CLI's `create` (an attached `run` asks the same, `run -d` nothing).
        attach: Attach {
            stdin: a.interactive,
            stdout: true,
            stderr: true,
        },
        cidfile: a.cidfile.as_ref().map(|f| f.display().to_string()),
        image: a.image().to_string(),
        name: a.name.clone(),
        command: a.command().to_vec(),
        entrypoint: a.entrypoint.clone(),
        env: env_of(a)?,
        workdir: a.workdir.clone(),
        hostname: a.hostname.clone(),
        networks: networks_of(a)?,
        publish,
        expose,
        publish_all: a.publish_all,
        links: a.link.iter().map(|l| spec::parse_link(l)).collect(),
        add_hosts: a
            .add_host
            .iter()
            .map(|h| spec::parse_add_host(h))
            .collect::<Result<_, _>>()?,
        dns: a.dns.iter().map(|d| ip(d)).collect::<Result<_, _>>()?,
        dns_search: a.dns_search.clone(),
        dns_options: a.dns_option.clone(),
        log_driver: a.log_driver.into(),
        mounts,
        volumes_from: a
            .volumes_from
            .iter()
            .map(|v| spec::parse_volumes_from(v))
            .collect::<Result<_, _>>()?,
        interactive: a.interactive,
        tty: a.tty,
        auto_remove: a.rm,
        seccomp: seccomp_of(&a.security_opt)?,
        privileges: Privileges {
            user: a.user.clone().unwrap_or_default(),
            group_add: a.group_add.clone(),
            cap_add: a.cap_add.clone(),
            cap_drop: a.cap_drop.clone(),
            privileged: a.privileged,
        },
        restart: netctl_engine::restart::RestartRequest::parse(&a.restart)?,
        labels: labels_of(a)?,
        read_only: a.read_only,
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        domainname: a.domainname.clone(),
        init: a.init,
        resources: Resources {
            device_cgroup_rules: each_flag(&a.device_cgroup_rule, "--device-cgroup-rule", |r| {
                check_device_rule(r).map(|()| r.to_string())
            })?,
            ..resources_of(&a.limits)?
        },
        pid_mode: Sharing::parse(a.pid.as_deref().unwrap_or(""), false)?,
        ipc_mode: Sharing::parse(a.ipc.as_deref().unwrap_or(""), true)?,
        host_uts: match a.uts.as_deref() {
            None | Some("") => false,
            Some("host") => true,
            Some(other) => {
                return Err(netctl_engine::Error::Invalid(format!(
                    "--uts: invalid UTS mode {other:?}: use host"
                )))
            }
        },
        isolation: a.isolation.clone().unwrap_or_default(),
        runtime: a.runtime.clone().unwrap_or_default(),
        shm_size: flag(&a.shm_size, "--shm-size", parse_bytes)?,
        ulimits: each_flag(&a.ulimit, "--ulimit", kernel::parse_ulimit)?,
        sysctls: each_flag(&a.sysctl, "--sysctl", kernel::parse_sysctl)?,
        devices: each_flag(&a.device, "--device", kernel::parse_device)?,
        log_opts: a
            .log_opt
            .iter()
            .map(|o| {
                o.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "invalid argument {o:?} for \"--log-opt\" flag: use KEY=VALUE"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?,
        health: netctl_engine::health::HealthFlags {
            cmd: a.health_cmd.clone(),
            interval: a.health_interval.clone(),
            timeout: a.health_timeout.clone(),
            start_period: a.health_start_period.clone(),
            retries: a.health_retries,
            disabled: a.no_healthcheck,
        },
    })
}

/// Each value of a repeated flag through an engine parser, errors as [`flag`]'s.
pub(super) fn each_flag<T>(
    values: &[String],
    name: &str,
    parse: impl Fn(&str) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    values
        .iter()
        .map(|v| {
            parse(v).map_err(|e| {
                Error::Invalid(format!("invalid argument {v:?} for {name:?} flag: {e}"))
            })
        })
        .collect()
}

/// A flag's value through an engine parser; its error in Docker's words for a bad flag.
pub(super) fn flag<T>(
    value: &Option<String>,
    name: &str,
    parse: impl Fn(&str) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    value
        .as_deref()
        .map(|v| {
            parse(v).map_err(|e| {
                Error::Invalid(format!("invalid argument {v:?} for {name:?} flag: {e}"))
            })
        })
        .transpose()
}

/// `--network` as the engine's per-network requests: `--network-alias` on each network (the
/// engine refuses it on the predefined ones), `--ip`, `--ip6` and `--mac-address` on the
/// first (the default bridge when none is named).
fn networks_of(a: &CreateArgs) -> Result<Vec<NetworkRequest>, Error> {
    let ips: Vec<std::net::IpAddr> =
        a.ip.iter()
            .chain(&a.ip6)
            .map(|s| ip(s))
            .collect::<Result<_, _>>()?;
    let mut reqs: Vec<NetworkRequest> = a
        .network
        .iter()
        .map(|n| network_request(n))
        .collect::<Result<_, _>>()?;
    let link_local: Vec<std::net::IpAddr> = a
        .link_local_ip
        .iter()
        .map(|s| {
            s.parse().map_err(|_| {
                Error::Invalid(format!(
                    "Invalid link-local IP address: [{}]",
                    a.link_local_ip.join(" ")
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let asked = !a.aliases.is_empty() || !ips.is_empty() || !link_local.is_empty();
    if reqs.is_empty() && (asked || a.mac.is_some()) {
        reqs.push(NetworkRequest::plain("bridge"));
    }
    for r in &mut reqs {
        r.aliases.extend(a.aliases.iter().cloned());
    }
    if let Some(first) = reqs.first_mut() {
        first.ips.extend(ips);
        first.link_local_ips.extend(link_local);
        if a.mac.is_some() {
            first.mac.clone_from(&a.mac);
        }
    }
    Ok(reqs)
}

/// One `--network`: a name, or Docker's long form
/// `name=NET[,alias=A][,ip=IP][,ip6=IP][,link-local-ip=IP][,mac-address=MAC][,driver-opt=K=V][,gw-priority=N]`.
fn network_request(spec: &str) -> Result<NetworkRequest, Error> {
    if !spec.contains('=') {
        return Ok(NetworkRequest::plain(spec));
    }
    let mut req = NetworkRequest::plain("");
    for field in spec.split(',') {
        let bad = || {
            Error::Invalid(format!("invalid --network field {field:?}: use name=NET[,alias=A][,ip=IP][,ip6=IP][,link-local-ip=IP][,mac-address=MAC][,driver-opt=K=V][,gw-priority=N]"))
        };
        let (key, value) = field.split_once('=').ok_or_else(bad)?;
        match key {
            "name" => req.name = value.to_string(),
            "alias" => req.aliases.push(value.to_string()),
            "ip" | "ip6" => req.ips.push(ip(value)?),
            "link-local-ip" => req.link_local_ips.push(ip(value)?),
            "mac-address" => req.mac = Some(value.to_string()),
            "driver-opt" => {
                let (k, v) = value.split_once('=').ok_or_else(bad)?;
                req.driver_opts.insert(k.to_string(), v.to_string());
            }
            "gw-priority" => req.gw_priority = value.parse().map_err(|_| bad())?,
            _ => return Err(bad()),
        }
    }
    if req.name.is_empty() {
        return Err(Error::Invalid(format!(
            "--network {spec:?} names no network: add name=NET"
        )));
    }
    Ok(req)
}

/// `-m`, `--memory-swap`, `--cpus`, `--cpu-shares`, `--cpuset-cpus`, `--pids-limit`,
/// through the engine's parsers.
pub(super) fn resources_of(a: &LimitArgs) -> Result<Resources, Error> {
    Ok(Resources {
        memory: flag(&a.memory, "-m, --memory", parse_bytes)?,
        memory_swap: flag(&a.memory_swap, "--memory-swap", parse_swap)?,
        nano_cpus: flag(&a.cpus, "--cpus", parse_cpus)?,
        cpu_shares: a.cpu_shares,
        pids_limit: a.pids_limit,
        cpuset_cpus: a.cpuset_cpus.clone(),
        memory_reservation: flag(&a.memory_reservation, "--memory-reservation", parse_bytes)?,
        cpu_rt_period: a.cpu_rt_period,
        cpu_rt_runtime: a.cpu_rt_runtime,
        ..Resources::default()
    })
}

/// `--label-file` lines (blank ones and `#` comments skipped), then `--label`s.
pub(super) fn labels_of(a: &CreateArgs) -> Result<Vec<String>, Error> {
    let mut labels = Vec::new();
    for file in &a.label_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::io(format!("open label file {}", file.display()), e))?;
        labels.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    labels.extend(a.label.iter().cloned());
    Ok(labels)
}

/// `--security-opt` as Docker reads it (`seccomp=...`, also `seccomp:...`).
pub(super) fn seccomp_of(opts: &[String]) -> Result<Seccomp, Error> {
    let mut seccomp = Seccomp::Default;
    for o in opts {
        let (key, value) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match (key, value) {
            ("seccomp", "unconfined") => seccomp = Seccomp::Unconfined,
            ("seccomp", "") => {
                return Err(Error::Invalid(
                    "--security-opt seccomp needs a value: unconfined or a profile file".into(),
                ))
            }
            ("seccomp", file) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    Error::Invalid(format!("opening seccomp profile ({file}) failed: {e}"))
                })?;
                seccomp = Seccomp::Profile(text);
            }
            ("no-new-privileges", "" | "true") => {} // netctl sets it for every container
            _ => {
                return Err(Error::Invalid(format!(
                    "invalid --security-opt: {o:?} (netctl supports seccomp=unconfined, seccomp=FILE and no-new-privileges)"
                )))
            }
        }
    }
    Ok(seccomp)
}

/// `--cidfile` names a file that must not exist yet (Docker's check, before anything is made).
pub(super) fn check_cidfile(a: &CreateArgs) -> Result<(), Error> {
    match a.cidfile.as_deref().filter(|f| f.exists()) {
        Some(f) => Err(Error::Invalid(format!(
            "container ID file found, make sure the other container isn't running or delete {}",
            f.display()
        ))),
        None => Ok(()),
    }
}
