//! `login`, `logout`, `pull`, `push`, and the pull before `run`/`create` (`--pull`):
//! credentials in Docker's config file, progress lines as Docker prints them.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;

use clap::{Args, ValueEnum};
use netctl_engine::image::ImageStore;
use netctl_engine::pull::{Progress, PullRequest};
use netctl_engine::push::PushRequest;
use netctl_engine::Engine;
use netctl_registry::{CredentialStore, Credentials, Reference, Registry};

use crate::outcome::Outcome;
use crate::output::human_size;

/// `login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry (`host[:port]`; Docker Hub when left out).
    pub server: Option<String>,
    /// User name.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin).
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
}

/// `pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// Download every tagged image of the repository.
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// `os/arch[/variant]` of the image to pick from a multi-platform index.
    #[arg(long)]
    pub platform: Option<String>,
    /// Print no progress.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST].
    pub reference: String,
}

/// `push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push every tagged image of the repository.
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Print no progress.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// NAME[:TAG].
    pub reference: String,
}

/// When `run` and `create` pull their image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum PullPolicy {
    /// When it is not stored.
    #[default]
    Missing,
    /// Every time.
    Always,
    /// Never (a missing image is an error).
    Never,
}

/// The registry of a `login`/`logout` argument (Docker Hub when none).
fn server_domain(server: Option<&str>) -> String {
    netctl_registry::credentials::server_domain(server.unwrap_or(""))
}

/// `login`: checks the credentials with the registry, then stores them.
pub fn login(engine: &Engine, a: &LoginArgs) -> Outcome {
    let domain = server_domain(a.server.as_deref());
    let stdin = std::io::stdin();
    let username = match &a.username {
        Some(u) => u.clone(),
        None => prompt("Username: ")?,
    };
    let password = match (&a.password, a.password_stdin) {
        (Some(_), true) => {
            return Err(
                anyhow::anyhow!("--password and --password-stdin are mutually exclusive").into(),
            )
        }
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p.clone()
        }
        (None, true) => {
            let mut line = String::new();
            stdin
                .lock()
                .read_line(&mut line)
                .map_err(|e| anyhow::anyhow!("read the password: {e}"))?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => prompt_hidden("Password: ")?,
    };
    if username.is_empty() {
        return Err(anyhow::anyhow!("Error: Non-null Username Required").into());
    }
    if password.is_empty() {
        return Err(anyhow::anyhow!("Error: Non-null Password Required").into());
    }
    let creds = Credentials { username, password };
    let registry = Registry::connect(
        &engine.config.registry,
        netctl_registry::reference::registry_host(&domain),
        Some(creds.clone()),
    )
    .map_err(|e| anyhow::anyhow!("Error response from daemon: {e}"))?;
    registry
        .login()
        .map_err(|e| anyhow::anyhow!("Error response from daemon: {e}"))?;
    let store = CredentialStore::at(CredentialStore::default_path());
    store.store(&domain, &creds)?;
    println!("Login Succeeded");
    Ok(0)
}

/// `logout`.
pub fn logout(server: Option<&str>) -> Outcome {
    let domain = server_domain(server);
    let store = CredentialStore::at(CredentialStore::default_path());
    if store.erase(&domain)? {
        println!(
            "Removing login credentials for {}",
            netctl_registry::credentials::server_key(&domain)
        );
    } else {
        println!("Not logged in to {domain}");
    }
    Ok(0)
}

fn prompt(text: &str) -> anyhow::Result<String> {
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// Reads a line with the terminal's echo off (when stdin is one).
fn prompt_hidden(text: &str) -> anyhow::Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let Ok(saved) = tcgetattr(&stdin) else {
        return prompt(text);
    };
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
    let line = prompt(text);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    line
}

/// The stored credentials for the registry a reference names.
fn credentials_for(reference: &str) -> anyhow::Result<Option<Credentials>> {
    let Ok(r) = Reference::parse(reference) else {
        return Ok(None);
    };
    Ok(CredentialStore::at(CredentialStore::default_path()).get(r.domain())?)
}

/// `pull`: progress on stdout, then Docker's closing lines.
pub fn pull(engine: &Engine, a: &PullArgs) -> Outcome {
    let lines = Lines::new(std::io::stdout().is_terminal(), a.quiet);
    if a.all_tags {
        let req = pull_request(&a.reference, a.platform.as_deref())?;
        let pulled = netctl_engine::image::pull_all_tags(engine, &req, &|p| lines.show(&p))?;
        if !a.quiet {
            println!("Status: {}", pulled.status());
        }
        println!("{}", full_name(&pulled.repository));
        return Ok(0);
    }
    if Reference::parse(&a.reference).is_ok_and(|r| r.tag().is_none() && r.digest().is_none())
        && !a.quiet
    {
        println!("Using default tag: latest");
    }
    let pulled = pull_image(engine, &a.reference, a.platform.as_deref(), &lines)?;
    if !a.quiet {
        println!("Digest: {}\nStatus: {}", pulled.digest, pulled.status());
    }
    println!("{}", full_name(&pulled.reference));
    Ok(0)
}

fn pull_image(
    engine: &Engine,
    reference: &str,
    platform: Option<&str>,
    lines: &Lines,
) -> Result<netctl_engine::pull::Pulled, netctl_engine::Error> {
    let req = pull_request(reference, platform)?;
    netctl_engine::image::pull(engine, &req, &|p| lines.show(&p))
}

/// What to pull: the reference, the platform, the stored credentials for its registry.
fn pull_request(
    reference: &str,
    platform: Option<&str>,
) -> Result<PullRequest, netctl_engine::Error> {
    Ok(PullRequest {
        reference: reference.to_string(),
        platform: platform.map(str::to_string),
        credentials: credentials_for(reference)
            .map_err(|e| netctl_engine::Error::Invalid(e.to_string()))?,
    })
}

/// `docker.io/library/busybox:latest` for `busybox:latest`, as `docker pull` ends.
fn full_name(familiar: &str) -> String {
    Reference::parse(familiar).map_or_else(|_| familiar.to_string(), |r| r.to_string())
}

/// `push`.
pub fn push(engine: &Engine, a: &PushArgs) -> Outcome {
    let lines = Lines::new(std::io::stdout().is_terminal(), a.quiet);
    let req = PushRequest {
        reference: a.reference.clone(),
        credentials: credentials_for(&a.reference)?,
    };
    if a.all_tags {
        netctl_engine::image::push_all_tags(engine, &req, &|p| lines.show(&p))?;
        if a.quiet {
            println!("{}", full_name(&a.reference));
        }
        return Ok(0);
    }
    if !a.quiet
        && Reference::parse(&a.reference).is_ok_and(|r| r.tag().is_none() && r.digest().is_none())
    {
        println!("Using default tag: latest");
    }
    netctl_engine::image::push(engine, &req, &|p| lines.show(&p))?;
    if a.quiet {
        println!("{}", full_name(&a.reference));
    }
    Ok(0)
}

/// Makes sure `run`/`create` have their image, pulling as the policy says; progress on
/// stderr, as Docker's `run` prints it.
pub fn ensure_image(
    engine: &Engine,
    image: &str,
    policy: PullPolicy,
    platform: Option<&str>,
) -> Result<(), netctl_engine::Error> {
    let stored = ImageStore::open(engine.root())?.find(image);
    let pull = match (policy, &stored) {
        (PullPolicy::Always, _) => true,
        (PullPolicy::Missing, Err(netctl_engine::Error::NotFound { .. })) => {
            Reference::parse(image).is_ok() && {
                eprintln!(
                    "Unable to find image '{}' locally",
                    netctl_engine::image::normalize(image)?
                );
                true
            }
        }
        _ => false,
    };
    if pull {
        let lines = Lines::new(false, false).on_stderr();
        let pulled = pull_image(engine, image, platform, &lines)?;
        eprintln!("Digest: {}\nStatus: {}", pulled.digest, pulled.status());
    }
    Ok(())
}

/// Progress lines: on a terminal one line per layer, redrawn in place with a bar; else a
/// line per change of status (no byte counts), as Docker prints them.
pub struct Lines {
    terminal: bool,
    quiet: bool,
    stderr: bool,
    shown: Mutex<Vec<(String, String)>>,
}

impl Lines {
    fn new(terminal: bool, quiet: bool) -> Self {
        Self {
            terminal,
            quiet,
            stderr: false,
            shown: Mutex::new(Vec::new()),
        }
    }

    fn on_stderr(mut self) -> Self {
        self.stderr = true;
        self
    }

    fn show(&self, p: &Progress) {
        if self.quiet || (!self.terminal && p.bytes.is_some()) {
            return;
        }
        let text = match p.bytes {
            Some((done, total)) => format!("{} {}", p.status, bar(done, total)),
            None => p.status.clone(),
        };
        let line = if p.id.is_empty() {
            text.clone()
        } else {
            format!("{}: {text}", p.id)
        };
        let Ok(mut shown) = self.shown.lock() else {
            return;
        };
        let mut out: Box<dyn Write> = if self.stderr {
            Box::new(std::io::stderr().lock())
        } else {
            Box::new(std::io::stdout().lock())
        };
        let layer = !p.id.is_empty();
        match shown.iter().position(|(id, _)| layer && *id == p.id) {
            Some(i) if self.terminal => {
                let up = shown.len() - i;
                let _ = write!(out, "\x1b[{up}A\r\x1b[2K{line}\x1b[{up}B\r");
                if let Some(slot) = shown.get_mut(i) {
                    slot.1 = line;
                }
            }
            _ => {
                let _ = writeln!(out, "{line}");
                if layer {
                    shown.push((p.id.clone(), line));
                }
            }
        }
        let _ = out.flush();
    }
}

/// `[=====>      ]  12.5MB/40MB`, as Docker draws it.
fn bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (done.min(total) * WIDTH).checked_div(total).unwrap_or(0);
    let mut s = String::from("[");
    s.push_str(&"=".repeat(filled.saturating_sub(1) as usize));
    if filled > 0 {
        s.push('>');
    }
    s.push_str(&" ".repeat((WIDTH - filled) as usize));
    format!("{s}]  {}/{}", human_size(done), human_size(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_with_the_bytes_done() {
        assert_eq!(bar(0, 100), format!("[{}]  0B/100B", " ".repeat(50)));
        assert_eq!(
            bar(50, 100),
            format!("[{}>{}]  50B/100B", "=".repeat(24), " ".repeat(25))
        );
        assert_eq!(bar(7, 0), format!("[{}]  7B/0B", " ".repeat(50)));
    }
}
