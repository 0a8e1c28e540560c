//! Healthchecks (`--health-*`, an image's HEALTHCHECK): Docker's configuration and its
//! rules for turning probe results into `starting`, `healthy` and `unhealthy`, and the
//! monitor's prober, which runs the check inside the container through the exec helper.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clock::now_rfc3339;
use crate::engine::{Engine, EngineConfig};
use crate::error::{invalid, Error, Result};

/// Docker's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
/// Probe results kept in `State.Health.Log`.
const LOG_KEPT: usize = 5;

/// Docker's `Config.Healthcheck` (durations in nanoseconds; zero means the default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["CMD", prog, args...]`, `["CMD-SHELL", "command"]` or `["NONE"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Between probes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// How long one probe may take.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// Failures during this time after the start do not count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// Consecutive failures that make the container unhealthy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn duration(ns: i64, default: Duration) -> Duration {
    u64::try_from(ns)
        .ok()
        .filter(|&n| n > 0)
        .map_or(default, Duration::from_nanos)
}

/// The `--health-*` flags as given.
#[derive(Debug, Clone, Default)]
pub struct HealthFlags {
    /// `--health-cmd`.
    pub cmd: Option<String>,
    /// `--health-interval`.
    pub interval: Option<String>,
    /// `--health-timeout`.
    pub timeout: Option<String>,
    /// `--health-start-period`.
    pub start_period: Option<String>,
    /// `--health-retries`.
    pub retries: Option<i64>,
    /// `--no-healthcheck`.
    pub disabled: bool,
}

impl HealthFlags {
    /// The healthcheck the flags ask for over the image's (None: the image's stands), with
    /// Docker's checks and words.
    pub fn healthcheck(&self, image: Option<&Healthcheck>) -> Result<Option<Healthcheck>> {
        let any = self.cmd.is_some()
            || self.interval.is_some()
            || self.timeout.is_some()
            || self.start_period.is_some()
            || self.retries.is_some();
        if self.disabled {
            if any {
                invalid!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(Healthcheck {
                test: vec!["NONE".into()],
                ..Healthcheck::default()
            }));
        }
        if !any {
            return Ok(None);
        }
        let mut h = image.cloned().unwrap_or_default();
        if let Some(cmd) = &self.cmd {
            h.test = vec!["CMD-SHELL".into(), cmd.clone()];
        }
        let positive = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
            let Some(v) = v else { return Ok(None) };
            let d = parse_duration(v).map_err(|e| {
                Error::Invalid(format!("invalid argument {v:?} for \"--{flag}\" flag: {e}"))
            })?;
            if d < Duration::from_millis(1) && !d.is_zero() {
                invalid!("{} in Healthcheck cannot be less than 1ms", title(flag));
            }
            Ok(Some(nanos(d)))
        };
        if let Some(n) = positive("health-interval", &self.interval)? {
            h.interval = n;
        }
        if let Some(n) = positive("health-timeout", &self.timeout)? {
            h.timeout = n;
        }
        if let Some(n) = positive("health-start-period", &self.start_period)? {
            h.start_period = n;
        }
        if let Some(r) = self.retries {
            if r < 0 {
                invalid!("--health-retries cannot be negative");
            }
            h.retries = r;
        }
        Ok(Some(h))
    }
}

/// "health-start-period" → "StartPeriod", as Docker names it in errors.
fn title(flag: &str) -> String {
    flag.trim_start_matches("health-")
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// Parses a duration as Go's `time.ParseDuration`: `1m30s`, `500ms`, `1.5h`, `0`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || Error::Invalid(format!("time: invalid duration {s:?}"));
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| Error::Invalid(format!("time: missing unit in duration {s:?}")))?;
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => {
                return Err(Error::Invalid(format!(
                    "time: unknown unit {u:?} in duration {s:?}"
                )))
            }
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

impl Healthcheck {
    /// The command a probe runs; None when there is no check (`NONE`, or none at all).
    pub fn command(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            Some((kind, [cmd])) if kind == "CMD-SHELL" => {
                Some(vec!["/bin/sh".into(), "-c".into(), cmd.clone()])
            }
            _ => None,
        }
    }

    fn interval(&self) -> Duration {
        duration(self.interval, DEFAULT_INTERVAL)
    }

    fn timeout(&self) -> Duration {
        duration(self.timeout, DEFAULT_TIMEOUT)
    }

    fn retries(&self) -> u32 {
        u32::try_from(self.retries)
            .ok()
            .filter(|&r| r > 0)
            .unwrap_or(DEFAULT_RETRIES)
    }
}

/// Docker's health states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// No verdict yet.
    #[default]
    Starting,
    /// The last probe passed.
    Healthy,
    /// `retries` probes in a row failed.
    Unhealthy,
}

impl HealthStatus {
    /// Docker's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339.
    pub end: String,
    /// The check's exit code; -1 when it timed out or could not run.
    pub exit_code: i32,
    /// The start of what it printed.
    pub output: String,
}

/// Docker's `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// starting, healthy, unhealthy.
    pub status: HealthStatus,
    /// Consecutive failures.
    pub failing_streak: u32,
    /// The last probes, oldest first.
    pub log: Vec<Probe>,
}

impl Health {
    /// Takes a probe's result as Docker does: a pass makes it healthy; a failure counts
    /// (unless it is still starting within the start period), and `retries` of them in a
    /// row make it unhealthy.
    pub fn record(&mut self, probe: Probe, retries: u32, in_start_period: bool) {
        let passed = probe.exit_code == 0;
        self.log.push(probe);
        if self.log.len() > LOG_KEPT {
            self.log.drain(..self.log.len() - LOG_KEPT);
        }
        if passed {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if !(self.status == HealthStatus::Starting && in_start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = HealthStatus::Unhealthy;
            }
        }
    }
}

/// Runs a container's healthcheck while its process runs (one prober per run).
pub struct Prober {
    stop: Arc<(Mutex<bool>, Condvar)>,
}

impl Prober {
    /// Starts probing container `id` with `check` every interval, recording the results in
    /// its state; None when it has no check.
    pub fn start(config: &EngineConfig, id: &str, check: &Healthcheck) -> Option<Prober> {
        let command = check.command()?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (config, id, check, told) =
            (config.clone(), id.to_string(), check.clone(), stop.clone());
        std::thread::spawn(move || {
            let Ok(engine) = Engine::open(&config) else {
                return;
            };
            let began = Instant::now();
            while wait(&told, check.interval()) {
                let in_start = began.elapsed() < duration(check.start_period, Duration::ZERO);
                let probe = probe(&engine, &id, &command, check.timeout());
                if record(&engine, &id, probe, check.retries(), in_start).is_err() {
                    return;
                }
            }
        });
        Some(Prober { stop })
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
            wake.notify_all();
        }
    }
}

/// Waits `interval`; false once told to stop.
fn wait(stop: &(Mutex<bool>, Condvar), interval: Duration) -> bool {
    let (lock, wake) = stop;
    let Ok(stopped) = lock.lock() else {
        return false;
    };
    match wake.wait_timeout_while(stopped, interval, |s| !*s) {
        Ok((stopped, _)) => !*stopped,
        Err(_) => false,
    }
}

/// One probe through the exec helper.
fn probe(engine: &Engine, id: &str, command: &[String], timeout: Duration) -> Probe {
    let start = now_rfc3339();
    let req = crate::runtime::exec::ExecRequest {
        resize: None,
        command,
        env: &[],
        workdir: None,
        interactive: false,
        user: None,
        tty: None,
    };
    let ran = engine
        .containers
        .find(id)
        .and_then(|c| crate::runtime::exec::run_captured(engine, &c, &req, timeout));
    let (exit_code, output) = match ran {
        Ok(c) => match c.code {
            Some(code) => (code, c.output),
            None => (
                -1,
                format!("Health check exceeded timeout ({})", go_duration(timeout)),
            ),
        },
        Err(e) => (-1, e.report()),
    };
    Probe {
        start,
        end: now_rfc3339(),
        exit_code,
        output,
    }
}

/// Records a probe in the container's state, under its lock; an error once it is gone.
fn record(engine: &Engine, id: &str, probe: Probe, retries: u32, in_start: bool) -> Result<()> {
    let mut c = engine.containers.find(id)?;
    let _lock = c.lock()?;
    c.reload()?;
    if !c.is_running() || c.state.restarting {
        return Ok(());
    }
    let health = c.state.health.get_or_insert_with(Health::default);
    let before = health.status;
    health.record(probe, retries, in_start);
    let after = health.status;
    c.save_state()?;
    if after != before {
        let action = format!("health_status: {}", after.as_str());
        crate::events::container(engine, &c, &action, &[]);
    }
    Ok(())
}

/// A duration as Go prints it for whole units (`30s`, `1m30s`, `500ms`).
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(code: i32) -> Probe {
        Probe {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn results_make_the_status_as_dockers_do() {
        let mut h = Health::default();
        h.record(probe(1), 2, true);
        assert_eq!(
            (h.status, h.failing_streak),
            (HealthStatus::Starting, 0),
            "start period"
        );
        h.record(probe(1), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 1));
        h.record(probe(1), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Unhealthy, 2));
        h.record(probe(0), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 0));
        for _ in 0..10 {
            h.record(probe(0), 2, false);
        }
        assert_eq!(h.log.len(), LOG_KEPT);
    }

    #[test]
    fn durations_parse_as_gos() {
        for (s, ms) in [
            ("30s", 30_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1.5h", 5_400_000),
            ("0", 0),
        ] {
            assert_eq!(parse_duration(s).unwrap().as_millis(), ms, "{s}");
        }
        for bad in ["", "10", "1x", "s", "-"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
    }

    #[test]
    fn flags_make_dockers_healthcheck() {
        let flags = HealthFlags {
            cmd: Some("wget -q localhost".into()),
            interval: Some("5s".into()),
            retries: Some(2),
            ..HealthFlags::default()
        };
        let h = flags.healthcheck(None).unwrap().unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "wget -q localhost"]);
        assert_eq!((h.interval, h.retries, h.timeout), (5_000_000_000, 2, 0));
        assert_eq!(h.command().unwrap(), ["/bin/sh", "-c", "wget -q localhost"]);
        let none = HealthFlags {
            disabled: true,
            ..HealthFlags::default()
        };
        assert_eq!(none.healthcheck(None).unwrap().unwrap().command(), None);
        let both = HealthFlags {
            disabled: true,
            retries: Some(1),
            ..HealthFlags::default()
        };
        assert!(both.healthcheck(None).is_err());
        let negative = HealthFlags {
            retries: Some(-1),
            ..HealthFlags::default()
        };
        assert!(negative.healthcheck(None).is_err());
    }
}
