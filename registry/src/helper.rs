//! Docker's credential helpers: `docker-credential-NAME get|store|erase` on the `PATH`,
//! named by `credsStore` (every registry) or `credHelpers` (one registry) in the Docker
//! config file, speaking JSON on stdin and stdout. Each call runs under a deadline.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use netctl_cni::process::{wait_with_deadline, CleanSignals, Finished};
use serde::{Deserialize, Serialize};

use crate::credentials::Credentials;
use crate::error::{Error, Result};

/// How long a helper may take (it may ask a keyring or a cloud's metadata service).
const DEADLINE: Duration = Duration::from_secs(30);
/// What helpers print when they hold nothing for a server.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// One helper, `docker-credential-NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    name: String,
}

/// What a helper stores and gives back.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    #[serde(rename = "ServerURL")]
    server_url: String,
    username: String,
    secret: String,
}

impl Helper {
    /// The helper called `name` (`pass`, `secretservice`, `ecr-login` ...).
    pub fn named(name: &str) -> Result<Self> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(Error::Refused(format!(
                "the credential helper name {name:?} is not a program name; fix credsStore or credHelpers in the Docker config file"
            )));
        }
        Ok(Self { name: name.into() })
    }

    /// Its name (`pass`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The program's name.
    pub fn program(&self) -> String {
        format!("docker-credential-{}", self.name)
    }

    /// Whether the program is on the `PATH`.
    pub fn installed(&self) -> bool {
        on_path(&self.program()).is_some()
    }

    /// The credentials it holds for `server`, if any.
    pub fn get(&self, server: &str) -> Result<Option<Credentials>> {
        let Some(out) = self.call("get", server.as_bytes(), true)? else {
            return Ok(None);
        };
        let e: Entry = serde_json::from_slice(&out).map_err(|e| {
            Error::Refused(format!(
                "{} get answered something else than credentials: {e}",
                self.program()
            ))
        })?;
        // Some helpers (pass) answer an empty entry for a server they do not know.
        if e.username.is_empty() && e.secret.is_empty() {
            return Ok(None);
        }
        if e.username == "<token>" {
            return Err(Error::Refused(format!(
                "{} holds an identity token for {server}, which netctl cannot use; run `netctl login {server}` with a password",
                self.program()
            )));
        }
        Ok(Some(Credentials {
            username: e.username,
            password: e.secret,
        }))
    }

    /// Stores credentials for `server`.
    pub fn store(&self, server: &str, creds: &Credentials) -> Result<()> {
        let entry = Entry {
            server_url: server.into(),
            username: creds.username.clone(),
            secret: creds.password.clone(),
        };
        let json = serde_json::to_vec(&entry)
            .map_err(|e| Error::Refused(format!("encode credentials: {e}")))?;
        self.call("store", &json, false).map(drop)
    }

    /// Forgets `server`'s credentials.
    pub fn erase(&self, server: &str) -> Result<()> {
        self.call("erase", server.as_bytes(), true).map(drop)
    }

    /// Runs `docker-credential-NAME ACTION` with `input` on stdin; its stdout, or none when
    /// `missing_ok` and it holds nothing for the server.
    fn call(&self, action: &str, input: &[u8], missing_ok: bool) -> Result<Option<Vec<u8>>> {
        use std::os::unix::process::CommandExt;
        let program = self.program();
        let path = on_path(&program).ok_or_else(|| {
            Error::Refused(format!(
                "the Docker config file names the credential helper {program}, which is not on the PATH: install it, or remove credsStore/credHelpers"
            ))
        })?;
        let mut child = Command::new(&path)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .clean_signals()
            .spawn()
            .map_err(|e| Error::Io {
                what: format!("start {}", path.display()),
                source: e,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading is judged by its answer.
            let _ = stdin.write_all(input);
        }
        let out = match wait_with_deadline(child, DEADLINE).map_err(|e| Error::Io {
            what: format!("wait for {program}"),
            source: e,
        })? {
            Finished::Exited(out) => out,
            Finished::TimedOut => {
                return Err(Error::Unreachable(format!(
                    "{program} {action} did not answer within {} s and was killed",
                    DEADLINE.as_secs()
                )))
            }
        };
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match out.status.success() {
            true => Ok(Some(out.stdout)),
            false if missing_ok && text == NOT_FOUND => Ok(None),
            false => Err(Error::Refused(format!("{program} {action} failed: {text}"))),
        }
    }
}

/// Where `program` is on the `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The helper Docker's CLI uses when the config file names none (its `DetectDefaultStore`
/// on Linux): `pass` when `pass` is installed, else `secretservice` — and only when that
/// helper's program is on the `PATH`.
pub fn platform_default() -> Option<Helper> {
    let name = if on_path("pass").is_some() {
        "pass"
    } else {
        "secretservice"
    };
    Helper::named(name).ok().filter(Helper::installed)
}
