//! Lifecycle, attach, rollback and repair through the seams ([`crate::seam`]), without
//! root: a recording CNI client that fails where a test says, and recording system calls.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netctl_cni::invoke::RuntimeConf;
use netctl_cni::{Attachment, ErrorCode, NetConfList, Success};
use nix::sys::signal::Signal;

use crate::container::{Config, Container, NetMode, NetworkRequest, Status};
use crate::engine::{Engine, EngineConfig};
use crate::routes::DefaultRoute;
use crate::seam::{Cni, Syscalls};

type CniResult<T> = std::result::Result<T, netctl_cni::Error>;

/// What the fakes saw, in order, and where they fail.
#[derive(Default)]
struct Log {
    calls: Mutex<Vec<String>>,
    failing_add: Mutex<BTreeSet<String>>,
    failing_del: Mutex<BTreeSet<String>>,
    /// What `wait_gone` answers: whether the process ended in time.
    ends_in_time: Mutex<bool>,
}

impl Log {
    fn note(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn fails(set: &Mutex<BTreeSet<String>>, network: &str, what: &str) -> CniResult<()> {
        if set.lock().unwrap().contains(network) {
            return Err(netctl_cni::Error::new(
                ErrorCode::Plugin(11),
                format!("{what} on {network} failed"),
            ));
        }
        Ok(())
    }
}

struct FakeCni(Arc<Log>);

impl Cni for FakeCni {
    fn add(&self, list: &NetConfList, rt: &RuntimeConf) -> CniResult<Success> {
        self.0.note(format!("ADD {} {}", list.name, rt.ifname));
        Log::fails(&self.0.failing_add, &list.name, "ADD")?;
        let n = self.0.calls().len();
        Success::from_json(&serde_json::json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": rt.ifname, "mac": "02:42:0a:00:00:02", "sandbox": "/x"}],
            "ips": [{"address": format!("10.{n}.0.2/24"), "gateway": format!("10.{n}.0.1"), "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0"}]
        }))
    }
    fn del(&self, list: &NetConfList, rt: &RuntimeConf) -> CniResult<()> {
        self.0.note(format!("DEL {} {}", list.name, rt.ifname));
        Log::fails(&self.0.failing_del, &list.name, "DEL")
    }
    fn refresh(&self, list: &NetConfList, rt: &RuntimeConf) -> CniResult<()> {
        let name = rt.args.iter().find(|(k, _)| k == "K8S_POD_NAME");
        self.0.note(format!(
            "REFRESH {} {} {}",
            list.name,
            rt.ifname,
            name.map_or("", |(_, v)| v.as_str())
        ));
        Ok(())
    }
    fn gc(&self, list: &NetConfList, valid: &[Attachment]) -> CniResult<()> {
        self.0
            .note(format!("GC {} keeps {}", list.name, valid.len()));
        Ok(())
    }
    fn status(&self, _: &NetConfList) -> CniResult<()> {
        Ok(())
    }
    fn prepare_network(&self, _: &NetConfList) -> CniResult<()> {
        Ok(())
    }
    fn remove_network(&self, _: &NetConfList) -> CniResult<()> {
        Ok(())
    }
    fn cached_result(&self, _: &str, _: &RuntimeConf) -> CniResult<Option<Success>> {
        Ok(None)
    }
    fn cached_attachments(&self, _: &str) -> CniResult<Vec<RuntimeConf>> {
        Ok(Vec::new())
    }
}

struct FakeSyscalls(Arc<Log>);

impl Syscalls for FakeSyscalls {
    fn create_netns(&self, _: &Path) -> crate::Result<()> {
        self.0.note("NETNS create".into());
        Ok(())
    }
    fn remove_netns(&self, _: &Path) {
        self.0.note("NETNS remove".into());
    }
    fn loopback_up(&self, _: &Path) -> crate::Result<()> {
        Ok(())
    }
    fn set_default_routes(&self, _: &Path, routes: &[DefaultRoute]) -> crate::Result<()> {
        let r: Vec<String> = routes
            .iter()
            .map(|r| format!("{} via {}", r.ifname, r.gateway))
            .collect();
        self.0.note(format!("ROUTES {}", r.join(",")));
        Ok(())
    }
    fn add_addresses(&self, _: &Path, ifname: &str, addrs: &[ipnet::IpNet]) -> crate::Result<()> {
        let a: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        self.0.note(format!("ADDRS {ifname} {}", a.join(",")));
        Ok(())
    }
    fn kill(&self, pid: u32, sig: Signal) -> crate::Result<()> {
        self.0.note(format!("KILL {pid} {sig}"));
        Ok(())
    }
    fn wait_gone(&self, _: u32, _: Duration) -> bool {
        *self.0.ends_in_time.lock().unwrap()
    }
}

/// An engine in a scratch folder over the fakes, with networks `app` and `db`.
fn engine(dir: &Path) -> (Engine, Arc<Log>) {
    let config = EngineConfig::new(&dir.join("root"), &dir.join("run"), Path::new("/x"));
    let log = Arc::new(Log::default());
    let engine = Engine::with_seams(
        &config,
        Box::new(FakeCni(log.clone())),
        Box::new(FakeSyscalls(log.clone())),
    )
    .unwrap();
    std::fs::create_dir_all(engine.run_dir()).unwrap();
    let store = engine.networks().unwrap();
    for name in ["app", "db"] {
        let list = NetConfList::from_slice(
            serde_json::json!({
                "cniVersion": "1.1.0", "name": name,
                "plugins": [{"type": "netctl-bridge"},
                            {"type": "netctl-dns", "capabilities": {"aliases": true}}]
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        store.write(&list).unwrap();
    }
    (engine, log)
}

fn container(engine: &Engine, name: &str, networks: &[&str]) -> Container {
    let lock = engine.containers.lock().unwrap();
    let id = format!("{:0>64}", format!("{:x}", name.len() * 7919 + 17));
    let config = Config {
        id,
        name: name.into(),
        net_mode: NetMode::Private,
        networks: networks.iter().map(|n| NetworkRequest::plain(n)).collect(),
        ..Config::default()
    };
    engine.containers.create(config, &lock).unwrap()
}

/// A PID that no process has: a child that has been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn a_failed_second_attach_undoes_the_first_in_reverse_and_leaves_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, log) = engine(dir.path());
    let mut c = container(&engine, "web", &["app", "db"]);
    log.failing_add.lock().unwrap().insert("db".into());
    let lock = engine.containers.lock_one(&c).unwrap();
    let err = crate::netattach::setup(&engine, &mut c, &lock).unwrap_err();
    assert!(
        err.report().contains("ADD on db failed"),
        "{}",
        err.report()
    );
    assert_eq!(
        log.calls(),
        [
            "NETNS create",
            "ADD app eth0",
            "ADD db eth1",
            "DEL db eth1",
            "DEL app eth0",
            "NETNS remove"
        ]
    );
    // The caller (the monitor's undo) saves what is left: nothing.
    assert!(c.state.endpoints.is_empty(), "{:?}", c.state.endpoints);
}

#[test]
fn an_attach_whose_undo_fails_stays_pending_until_repair_detaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, log) = engine(dir.path());
    let mut c = container(&engine, "web", &["app"]);
    log.failing_add.lock().unwrap().insert("app".into());
    log.failing_del.lock().unwrap().insert("app".into());
    let lock = engine.containers.lock_one(&c).unwrap();
    let req = NetworkRequest::plain("app");
    let err =
        crate::netattach::attach_recorded(&engine, &mut c, &lock, &req, "eth0", &[]).unwrap_err();
    assert!(err.report().contains("undoing the attachment failed too"));
    drop(lock);
    c.reload().unwrap();
    assert_eq!(c.state.endpoints.len(), 1);
    assert!(c.state.endpoints[0].pending);

    // The plugin heals; the next repair finds the pending endpoint and detaches it.
    log.failing_del.lock().unwrap().clear();
    let failed = crate::lifecycle::repair(&engine).unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    c.reload().unwrap();
    assert!(c.state.endpoints.is_empty());
    let calls = log.calls();
    assert_eq!(
        calls[calls.len() - 3..],
        ["DEL app eth0", "NETNS remove", "GC app keeps 0"]
    );
}

#[test]
fn a_container_whose_detach_fails_is_kept_dead_and_a_later_rm_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, log) = engine(dir.path());
    let mut c = container(&engine, "web", &["app"]);
    let lock = engine.containers.lock_one(&c).unwrap();
    crate::netattach::setup(&engine, &mut c, &lock).unwrap();
    c.save_state().unwrap();
    log.failing_del.lock().unwrap().insert("app".into());
    let err = crate::lifecycle::remove_stopped(&engine, &mut c, &lock, false).unwrap_err();
    assert!(err.report().contains("kept as dead"), "{}", err.report());
    drop(lock);
    let kept = engine.containers.find("web").unwrap();
    assert_eq!(kept.state.status, Status::Dead);
    assert!(kept.state.endpoints.iter().all(|e| e.pending));

    log.failing_del.lock().unwrap().clear();
    crate::lifecycle::remove(&engine, &kept, false, false).unwrap();
    assert!(engine.containers.find("web").is_err());
    assert!(!kept.dir.exists());
}

#[test]
fn repair_marks_a_container_whose_monitor_died_exited_and_detaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, log) = engine(dir.path());
    let mut c = container(&engine, "web", &["app"]);
    {
        let lock = engine.containers.lock_one(&c).unwrap();
        crate::netattach::setup(&engine, &mut c, &lock).unwrap();
    }
    c.state.status = Status::Running;
    c.state.monitor_pid = dead_pid();
    c.state.pid = dead_pid();
    c.save_state().unwrap();

    let failed = crate::lifecycle::repair(&engine).unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    c.reload().unwrap();
    assert_eq!((c.state.status, c.state.exit_code), (Status::Exited, 255));
    assert!(c.state.endpoints.is_empty());
    let calls = log.calls();
    assert!(calls.contains(&"DEL app eth0".to_string()), "{calls:?}");
    assert!(
        !calls.iter().any(|c| c.starts_with("KILL")),
        "a process that is gone is not signalled: {calls:?}"
    );
}

#[test]
fn stop_sends_the_stop_signal_then_sigkill_when_the_container_outlives_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, log) = engine(dir.path());
    let mut c = container(&engine, "web", &[]);
    c.config.stop_signal = Some("SIGUSR1".into());
    c.save_config().unwrap();
    // The monitor "runs": this test's own process stands for it.
    c.state.status = Status::Running;
    c.state.monitor_pid = std::process::id();
    c.state.pid = 4_000_000;
    c.save_state().unwrap();

    *log.ends_in_time.lock().unwrap() = true;
    crate::lifecycle::stop(&engine, &c, Some(Duration::from_secs(1))).unwrap();
    assert_eq!(log.calls(), ["KILL 4000000 SIGUSR1"]);
    assert!(engine.containers.find("web").unwrap().state.stopped_by_hand);

    log.calls.lock().unwrap().clear();
    *log.ends_in_time.lock().unwrap() = false;
    let err = crate::lifecycle::stop(&engine, &c, Some(Duration::from_secs(1))).unwrap_err();
    assert_eq!(
        log.calls(),
        ["KILL 4000000 SIGUSR1", "KILL 4000000 SIGKILL"]
    );
    assert!(err.report().contains("did not stop after SIGKILL"));
}

#[test]
fn rename_refreshes_every_attachment_through_the_plugins_with_the_new_name() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, log) = engine(dir.path());
    let mut c = container(&engine, "web", &["app", "db"]);
    {
        let lock = engine.containers.lock_one(&c).unwrap();
        crate::netattach::setup(&engine, &mut c, &lock).unwrap();
    }
    c.save_state().unwrap();
    log.calls.lock().unwrap().clear();
    crate::manage::rename(&engine, &c, "api").unwrap();
    assert_eq!(log.calls(), ["REFRESH app eth0 api", "REFRESH db eth1 api"]);
    assert_eq!(
        engine.containers.find("api").unwrap().config.id,
        c.config.id
    );
}

#[test]
fn wait_next_exit_sleeps_until_the_exit_is_recorded_and_returns_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _log) = engine(dir.path());
    let c = container(&engine, "web", &[]);
    let engine = Arc::new(engine);
    // The instant is taken before the waiter starts, so the exit below counts however the
    // threads run.
    let since = crate::when::now();
    let waiter = std::thread::spawn({
        let (engine, c) = (engine.clone(), c.clone());
        move || {
            crate::manage::wait(
                &engine,
                &c,
                crate::manage::WaitCondition::NextExit,
                since,
                None,
            )
        }
    });
    // Not running: `not-running` answers at once, with the recorded code.
    let now =
        crate::manage::wait(&engine, &c, Default::default(), crate::when::now(), None).unwrap();
    assert_eq!(now, 0);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!waiter.is_finished(), "next-exit returned before any exit");
    crate::events::container(&engine, &c, "die", &[("exitCode", "7")]);
    assert_eq!(waiter.join().unwrap().unwrap(), 7);
}

#[test]
fn wait_removed_returns_when_the_container_is_destroyed_and_a_cancelled_wait_errs() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _log) = engine(dir.path());
    let c = container(&engine, "web", &[]);
    let engine = Arc::new(engine);
    let since = crate::when::now();
    let removed = std::thread::spawn({
        let (engine, c) = (engine.clone(), c.clone());
        move || {
            crate::manage::wait(
                &engine,
                &c,
                crate::manage::WaitCondition::Removed,
                since,
                None,
            )
        }
    });
    let cancel = crate::watch::Cancel::new().unwrap();
    let cancelled = std::thread::spawn({
        let (engine, c, cancel) = (engine.clone(), c.clone(), cancel.clone());
        move || {
            crate::manage::wait(
                &engine,
                &c,
                crate::manage::WaitCondition::NextExit,
                since,
                Some(&cancel),
            )
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    crate::events::container(&engine, &c, "die", &[("exitCode", "3")]);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!removed.is_finished(), "removed returned at the exit");
    crate::lifecycle::remove(&engine, &c, false, false).unwrap();
    assert_eq!(removed.join().unwrap().unwrap(), 3);
    // The cancelled one saw the exit too; a fresh one is cancelled before any event.
    assert_eq!(cancelled.join().unwrap().unwrap(), 3);
    let c2 = container(&engine, "db", &[]);
    cancel.cancel();
    let err = crate::manage::wait(
        &engine,
        &c2,
        crate::manage::WaitCondition::NextExit,
        crate::when::now(),
        Some(&cancel),
    )
    .unwrap_err();
    assert!(err.report().contains("cancelled"), "{}", err.report());
}

#[test]
fn logs_follow_wakes_for_each_new_record_and_stops_when_cancelled() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (engine, _log) = engine(dir.path());
    let mut c = container(&engine, "web", &[]);
    c.state.status = Status::Running;
    c.state.monitor_pid = std::process::id();
    c.save_state().unwrap();
    std::fs::write(c.log_path(), b"").unwrap();
    let cancel = crate::watch::Cancel::new().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let follower = std::thread::spawn({
        let (c, cancel) = (c.clone(), cancel.clone());
        move || {
            let opts = crate::logs::LogOptions {
                follow: true,
                cancel: Some(cancel),
                ..Default::default()
            };
            crate::logs::read(&c, opts, |r| {
                tx.send(r.log.clone()).unwrap();
                Ok(())
            })
        }
    });
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(c.log_path())
        .unwrap();
    let record = r#"{"log":"hello\n","stream":"stdout","time":"2026-12-07T00:00:00.000000000Z"}"#;
    writeln!(log, "{record}").unwrap();
    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(got, "hello\n");
    // No record comes; the client goes away.
    cancel.cancel();
    follower.join().unwrap().unwrap();
}

#[test]
fn wait_sees_an_exit_recorded_just_before_it_while_the_state_still_says_running() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _log) = engine(dir.path());
    let mut c = container(&engine, "web", &[]);
    c.state.status = Status::Running;
    c.state.monitor_pid = std::process::id();
    c.state.started_at = crate::clock::now_rfc3339();
    c.save_state().unwrap();
    // The monitor records the exit, then (a moment later) the state; the client asks between.
    crate::events::container(&engine, &c, "die", &[("exitCode", "9")]);
    let asked = crate::when::now() + Duration::from_millis(1);
    let code = crate::manage::wait(&engine, &c, Default::default(), asked, None).unwrap();
    assert_eq!(code, 9);
}
