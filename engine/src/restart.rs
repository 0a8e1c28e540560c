//! Restart policies (`--restart`): which exits the monitor answers with a new run of the
//! container's process, after Docker's back-off, and which containers come back when the
//! host has rebooted.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Error, Result};

/// Docker's restart policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restarted (Docker's default).
    #[default]
    No,
    /// Restarted whatever the exit, and after a reboot even when stopped by hand.
    Always,
    /// Restarted on a non-zero exit, at most `max` times (0: no limit).
    OnFailure {
        /// Docker's MaximumRetryCount.
        max: u32,
    },
    /// As `Always`, except that a container stopped by hand stays stopped.
    UnlessStopped,
}

/// `--restart` as asked (Docker's `HostConfig.RestartPolicy`): its name and count, which
/// the engine checks when it makes the container ([`RestartRequest::policy`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartRequest {
    /// no, always, on-failure, unless-stopped (empty: no).
    pub name: String,
    /// MaximumRetryCount.
    pub max_retries: i64,
}

impl RestartRequest {
    /// Reads `NAME[:N]` as Docker's command line does (only the format is checked here).
    pub fn parse(s: &str) -> Result<Self> {
        let mut parts = s.split(':');
        let name = parts.next().unwrap_or_default().to_string();
        let count = parts.next();
        if parts.next().is_some() {
            invalid!("invalid restart policy format: {s:?} (use no, always, unless-stopped or on-failure[:N])");
        }
        let max_retries = match count {
            None => 0,
            Some(n) => n.parse::<i64>().map_err(|_| {
                Error::Invalid(format!(
                    "maximum retry count must be an integer: {s:?} (use on-failure:N)"
                ))
            })?,
        };
        Ok(Self { name, max_retries })
    }

    /// The policy, with Docker's checks and words.
    pub fn policy(&self) -> Result<RestartPolicy> {
        let count = self.max_retries;
        let policy = match self.name.as_str() {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => {
                let max = u32::try_from(count).map_err(|_| {
                    Error::Invalid("maximum retry count cannot be negative".into())
                })?;
                return Ok(RestartPolicy::OnFailure { max });
            }
            other => invalid!(
                "invalid restart policy '{other}' (use no, always, unless-stopped or on-failure[:N])"
            ),
        };
        if count != 0 {
            invalid!(
                "maximum retry count cannot be used with restart policy '{}'",
                self.name
            );
        }
        Ok(policy)
    }
}

impl std::str::FromStr for RestartPolicy {
    type Err = Error;

    /// `no`, `always`, `unless-stopped`, `on-failure[:N]`, in Docker's words when wrong.
    fn from_str(s: &str) -> Result<Self> {
        RestartRequest::parse(s)?.policy()
    }
}

impl RestartPolicy {
    /// Docker's name of it (`no` is shown as Docker shows an unset policy).
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    /// Docker's MaximumRetryCount.
    pub fn max_retries(self) -> u32 {
        match self {
            RestartPolicy::OnFailure { max } => max,
            _ => 0,
        }
    }

    /// Whether an exit with `code` is answered with a restart, given the restarts made so
    /// far and whether the user stopped or killed the container.
    pub fn restarts_after(self, code: i32, stopped_by_hand: bool, restarts: u32) -> bool {
        match self {
            _ if stopped_by_hand => false,
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure { max } => code != 0 && (max == 0 || restarts < max),
        }
    }

    /// Whether a container is started again when the engine first runs after a reboot:
    /// `always` even when stopped by hand, `unless-stopped` unless it was, `on-failure` when
    /// its last exit (a reboot's included) was a failure within its retries.
    pub fn restarts_after_boot(
        self,
        code: i32,
        stopped_by_hand: bool,
        was_running: bool,
        restarts: u32,
    ) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::UnlessStopped => !stopped_by_hand,
            RestartPolicy::OnFailure { .. } => {
                was_running && self.restarts_after(code, stopped_by_hand, restarts)
            }
            RestartPolicy::No => false,
        }
    }
}

/// Docker's back-off between restarts: 100 ms, doubled each time up to a minute, and back
/// to 100 ms after a run of ten seconds or more.
#[derive(Debug, Default)]
pub struct Backoff {
    delay: Duration,
}

/// The first delay.
const FIRST: Duration = Duration::from_millis(100);
/// The longest delay.
const LONGEST: Duration = Duration::from_secs(60);
/// A run this long resets the delay.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

impl Backoff {
    /// The delay before the next restart, after a run that lasted `ran`.
    pub fn next(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_RUN || self.delay.is_zero() {
            self.delay = FIRST;
        } else {
            self.delay = (self.delay * 2).min(LONGEST);
        }
        self.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_as_docker_reads_them() {
        for (s, p) in [
            ("no", RestartPolicy::No),
            ("", RestartPolicy::No),
            ("always", RestartPolicy::Always),
            ("unless-stopped", RestartPolicy::UnlessStopped),
            ("on-failure", RestartPolicy::OnFailure { max: 0 }),
            ("on-failure:3", RestartPolicy::OnFailure { max: 3 }),
            ("always:0", RestartPolicy::Always),
        ] {
            assert_eq!(s.parse::<RestartPolicy>().unwrap(), p, "{s}");
        }
        for (s, says) in [
            ("sometimes", "invalid restart policy 'sometimes'"),
            ("always:2", "cannot be used with restart policy 'always'"),
            ("on-failure:x", "must be an integer"),
            ("on-failure:-1", "cannot be negative"),
            ("on-failure:1:2", "invalid restart policy format"),
        ] {
            let e = s.parse::<RestartPolicy>().unwrap_err().to_string();
            assert!(e.contains(says), "{s}: {e}");
        }
    }

    #[test]
    fn exits_are_answered_as_docker_answers_them() {
        let on_failure = RestartPolicy::OnFailure { max: 2 };
        assert!(on_failure.restarts_after(1, false, 1));
        assert!(!on_failure.restarts_after(1, false, 2));
        assert!(!on_failure.restarts_after(0, false, 0));
        assert!(RestartPolicy::OnFailure { max: 0 }.restarts_after(3, false, 1000));
        assert!(RestartPolicy::Always.restarts_after(0, false, 9));
        assert!(!RestartPolicy::Always.restarts_after(1, true, 0));
        assert!(!RestartPolicy::No.restarts_after(1, false, 0));
        assert!(RestartPolicy::Always.restarts_after_boot(0, true, false, 0));
        assert!(!RestartPolicy::UnlessStopped.restarts_after_boot(0, true, true, 0));
        assert!(RestartPolicy::UnlessStopped.restarts_after_boot(0, false, false, 0));
        assert!(on_failure.restarts_after_boot(255, false, true, 0));
        assert!(!on_failure.restarts_after_boot(1, false, false, 0));
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_resets_after_a_long_run() {
        let mut b = Backoff::default();
        let short = Duration::from_secs(1);
        let delays: Vec<u128> = (0..4).map(|_| b.next(short).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800]);
        for _ in 0..20 {
            b.next(short);
        }
        assert_eq!(b.next(short), LONGEST);
        assert_eq!(b.next(Duration::from_secs(10)), FIRST);
    }
}
