//! Which system calls a container's processes may make. By default Docker's profile: an
//! allow-list (everything else fails with EPERM) with its argument filters (`personality`
//! only with harmless personas, `clone` without namespace flags) and its groups that a
//! capability opens (`mount`, `unshare`, `setns` ... with CAP_SYS_ADMIN); keyring calls,
//! `perf_event_open`, io_uring and new user namespaces are not in it. `--security-opt
//! seccomp=FILE` takes a profile in Docker's JSON format instead, `seccomp=unconfined`
//! none. Profiles are compiled to BPF by seccompiler (rust-vmm's, Firecracker's), which also
//! knows the system calls' numbers; a name this architecture lacks is skipped, as Docker
//! does. The default profile lists x86-64's calls only (the others' names would be looked up
//! one by one at every container start).

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, TargetArch};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// What a container runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seccomp {
    /// Docker's default profile.
    #[default]
    Default,
    /// No filter (`--security-opt seccomp=unconfined`).
    Unconfined,
    /// A profile in Docker's JSON format (`--security-opt seccomp=FILE`: the file's content).
    Profile(String),
}

/// A profile in Docker's format (moby's `types.Seccomp`), what netctl reads of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    default_action: Action,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

/// One entry of a profile: names, an action, argument conditions, when it applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: Action,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Arg>,
    #[serde(default)]
    includes: Scope,
    #[serde(default)]
    excludes: Scope,
}

/// A condition on one argument; all of a rule's must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u8,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: Op,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

/// When a rule applies: every capability listed held (includes) or none held (excludes),
/// this architecture, this kernel.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Scope {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
enum Action {
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_KILL", alias = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
}

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// seccompiler's form of an action (`errno`: what an errno action returns).
fn action_json(a: Action, errno: u32) -> Value {
    match a {
        Action::Allow => json!("allow"),
        Action::Errno => json!({ "errno": errno }),
        Action::KillThread => json!("kill_thread"),
        Action::KillProcess => json!("kill_process"),
        Action::Trap => json!("trap"),
        Action::Log => json!("log"),
    }
}

impl Profile {
    /// A profile from Docker's JSON; a clear error for one that is not.
    pub fn parse(text: &str) -> Result<Profile> {
        serde_json::from_str(text).map_err(|e| {
            Error::Invalid(format!(
                "the seccomp profile is not one in Docker's format: {e}"
            ))
        })
    }

    /// The BPF filters for a process holding capabilities `caps` (`CAP_...` names), in the
    /// order to install them: the kernel takes the strictest answer of all, so the rules of
    /// each action become a filter of their own (the allow-list first, with the profile's
    /// default for every other call).
    pub fn compile(&self, caps: &[&str]) -> Result<Vec<BpfProgram>> {
        let mut groups = self.groups(caps);
        let default_errno = self.default_errno_ret.unwrap_or(EPERM);
        let default = action_json(self.default_action, default_errno);
        let mut out = Vec::new();
        if self.default_action != Action::Allow {
            let mut allowed = groups.remove(&(Action::Allow, 0)).unwrap_or_default();
            let matched = if allowed.is_empty() {
                allowed.insert("getpid".into(), None); // allows nothing: every call the default
                default.clone()
            } else {
                json!("allow")
            };
            out.extend(compile_group(default, matched, allowed)?);
        }
        for ((action, errno), calls) in groups {
            let same = action == self.default_action
                && (action != Action::Errno || errno == default_errno);
            if !same {
                out.extend(compile_group(
                    json!("allow"),
                    action_json(action, errno),
                    calls,
                )?);
            }
        }
        Ok(out)
    }

    /// The calls of the rules that apply, per action (and errno), each with its argument
    /// conditions (None: unconditional, which wins over any condition).
    fn groups(&self, caps: &[&str]) -> BTreeMap<(Action, u32), Calls> {
        let mut groups: BTreeMap<(Action, u32), Calls> = BTreeMap::new();
        for rule in self.syscalls.iter().filter(|r| applies(r, caps)) {
            let errno = match rule.action {
                Action::Errno => rule.errno_ret.unwrap_or(EPERM),
                _ => 0,
            };
            let group = groups.entry((rule.action, errno)).or_default();
            for name in rule.names.iter().chain(&rule.name) {
                let slot = group
                    .entry(name.clone())
                    .or_insert_with(|| Some(Vec::new()));
                match slot {
                    Some(sets) if !rule.args.is_empty() => sets.push(rule.args.clone()),
                    _ => *slot = None,
                }
            }
        }
        groups
    }
}

/// System calls by name, each with the sets of conditions under which it matches (None:
/// always).
type Calls = BTreeMap<String, Option<Vec<Vec<Arg>>>>;

/// Whether `rule` applies to a process with `caps`, on this architecture and kernel.
fn applies(rule: &Rule, caps: &[&str]) -> bool {
    let held = |c: &String| caps.contains(&c.as_str());
    let arch_ok = |arches: &[String]| {
        arches.is_empty()
            || arches
                .iter()
                .any(|a| ["amd64", "x86_64", "SCMP_ARCH_X86_64"].contains(&a.as_str()))
    };
    rule.includes.caps.iter().all(held)
        && !rule.excludes.caps.iter().any(held)
        && arch_ok(&rule.includes.arches)
        && (rule.excludes.arches.is_empty() || !arch_ok(&rule.excludes.arches))
        && rule
            .includes
            .min_kernel
            .as_deref()
            .is_none_or(kernel_at_least)
}

/// Whether the running kernel is at least `min` (`5.8`).
fn kernel_at_least(min: &str) -> bool {
    let parse = |s: &str| -> Vec<u32> {
        s.split(|c: char| !c.is_ascii_digit())
            .take(2)
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let running = rustix::system::uname();
    let release = running.release().to_string_lossy().into_owned();
    parse(&release) >= parse(min)
}

/// One filter: calls in `calls` get `matched`, the others `mismatch`; None when no call of
/// `calls` exists on this architecture (a profile may name other architectures' calls: they
/// are left out, as Docker does).
fn compile_group(mismatch: Value, matched: Value, mut calls: Calls) -> Result<Option<BpfProgram>> {
    if compile(&mismatch, &matched, &calls).is_err() {
        calls.retain(|name, _| known(name));
    }
    if calls.is_empty() {
        return Ok(None);
    }
    compile(&mismatch, &matched, &calls)
        .map(Some)
        .map_err(|e| Error::Invalid(format!("the seccomp profile cannot be compiled: {e}")))
}

/// Whether this architecture has a call of that name (seccompiler knows its number).
fn known(name: &str) -> bool {
    let one = Calls::from([(name.to_string(), None)]);
    compile(&json!("allow"), &json!("log"), &one).is_ok()
}

fn compile(mismatch: &Value, matched: &Value, calls: &Calls) -> seccompiler::Result<BpfProgram> {
    let rules: Vec<Value> = calls
        .iter()
        .flat_map(|(name, conds)| match conds {
            None => vec![json!({ "syscall": name })],
            Some(sets) => sets
                .iter()
                .map(|set| {
                    let args: Vec<Value> = set.iter().map(condition).collect();
                    json!({ "syscall": name, "args": args })
                })
                .collect(),
        })
        .collect();
    let doc = json!({ "filter": { "mismatch_action": mismatch, "match_action": matched, "filter": rules } });
    let mut map = seccompiler::compile_from_json(doc.to_string().as_bytes(), TargetArch::x86_64)?;
    map.remove("filter").ok_or(seccompiler::Error::EmptyFilter)
}

/// seccompiler's form of an argument condition.
fn condition(a: &Arg) -> Value {
    let (op, val) = match a.op {
        Op::Ne => (json!("ne"), a.value),
        Op::Lt => (json!("lt"), a.value),
        Op::Le => (json!("le"), a.value),
        Op::Eq => (json!("eq"), a.value),
        Op::Ge => (json!("ge"), a.value),
        Op::Gt => (json!("gt"), a.value),
        Op::MaskedEq => (json!({ "masked_eq": a.value }), a.value_two),
    };
    json!({ "index": a.index, "type": "qword", "op": op, "val": val })
}

/// Installs `filters` on the calling thread (in a child between fork and exec, for what it
/// runs next). Allocates nothing.
pub fn apply(filters: &[BpfProgram]) -> std::io::Result<()> {
    for f in filters {
        seccompiler::apply_filter(f).map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// The filters for `setting`, for a process holding `caps`.
pub fn filters(setting: &Seccomp, caps: &[&str]) -> Result<Vec<BpfProgram>> {
    match setting {
        Seccomp::Unconfined => Ok(Vec::new()),
        Seccomp::Default => docker_default().compile(caps),
        Seccomp::Profile(text) => Profile::parse(text)?.compile(caps),
    }
}

/// Docker's default profile: its allow-list, argument filters and capability groups.
pub fn docker_default() -> Profile {
    let rule = |names: &[&str], action: Action, args: Vec<Arg>, caps: (&[&str], &[&str])| Rule {
        names: names.iter().map(|s| s.to_string()).collect(),
        name: None,
        action,
        errno_ret: None,
        args,
        includes: Scope {
            caps: caps.0.iter().map(|s| s.to_string()).collect(),
            ..Scope::default()
        },
        excludes: Scope {
            caps: caps.1.iter().map(|s| s.to_string()).collect(),
            ..Scope::default()
        },
    };
    let allow = |names: &[&str]| rule(names, Action::Allow, Vec::new(), (&[], &[]));
    let mut syscalls = vec![allow(ALLOWED), allow(X86_64_ALLOWED)];
    // A persona only of Linux's own kinds (and the query).
    for persona in [0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff] {
        syscalls.push(rule(
            &["personality"],
            Action::Allow,
            vec![Arg {
                index: 0,
                value: persona,
                value_two: 0,
                op: Op::Eq,
            }],
            (&[], &[]),
        ));
    }
    // clone without namespace flags, unless CAP_SYS_ADMIN (then it is allowed whole).
    const NAMESPACE_FLAGS: u64 = 0x7E02_0000;
    syscalls.push(rule(
        &["clone"],
        Action::Allow,
        vec![Arg {
            index: 0,
            value: NAMESPACE_FLAGS,
            value_two: 0,
            op: Op::MaskedEq,
        }],
        (&[], &["CAP_SYS_ADMIN"]),
    ));
    // clone3's flags live in memory a filter cannot read: ENOSYS makes libc fall back to
    // clone, which is checked.
    let mut clone3 = rule(
        &["clone3"],
        Action::Errno,
        Vec::new(),
        (&[], &["CAP_SYS_ADMIN"]),
    );
    clone3.errno_ret = Some(ENOSYS);
    syscalls.push(clone3);
    for (cap, names) in CAPABILITY_GROUPS {
        syscalls.push(rule(names, Action::Allow, Vec::new(), (&[cap], &[])));
    }
    Profile {
        default_action: Action::Errno,
        default_errno_ret: Some(EPERM),
        syscalls,
    }
}

/// The calls every container may make.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_requeue",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "ptrace",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd4",
    "socket",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// x86-64's own.
const X86_64_ALLOWED: &[&str] = &["arch_prctl", "modify_ldt"];

/// What a capability adds (Docker's groups).
const CAPABILITY_GROUPS: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "clock_settime"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every call the default profile names is one of x86-64's (no lookup one by one), and it
    /// compiles to the allow-list and clone3's ENOSYS filter; with CAP_SYS_ADMIN clone3 is in.
    #[test]
    fn the_default_profile_names_only_this_architectures_calls() {
        let p = docker_default();
        let all: Vec<&str> = CAPABILITY_GROUPS.iter().map(|(c, _)| *c).collect();
        let unknown: Vec<String> = p
            .groups(&all)
            .into_values()
            .flat_map(|calls| calls.into_keys())
            .filter(|name| !known(name))
            .collect();
        assert!(unknown.is_empty(), "not x86-64 calls: {unknown:?}");
        assert_eq!(p.compile(&["CAP_CHOWN"]).unwrap().len(), 2);
        assert_eq!(p.compile(&["CAP_SYS_ADMIN"]).unwrap().len(), 1);
    }

    /// A profile in Docker's format: a default, an errno rule with its own errno, a rule for
    /// a capability, a name of another architecture (left out), arguments.
    #[test]
    fn a_docker_profile_compiles_with_its_scopes() {
        let text = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["mkdir", "socketcall"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 4, "op": "SCMP_CMP_NE"}]}]}"#;
        let p = Profile::parse(text).unwrap();
        assert_eq!(p.compile(&[]).unwrap().len(), 2, "ENOSYS, EPERM");
        assert!(Profile::parse(r#"{"defaultAction": "SCMP_ACT_NOPE"}"#).is_err());
    }
}
