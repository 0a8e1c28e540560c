//! Registry credentials where Docker keeps them: `auths` of `~/.docker/config.json` (or
//! `$DOCKER_CONFIG/config.json`), `"auth": base64("user:password")` per registry — or, when
//! the file names one (`credHelpers` for the registry, else `credsStore`) or Docker would
//! pick one by default, a credential helper ([`crate::helper`]).

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{io, Error, Result};
use crate::helper::{self, Helper};

/// The key Docker files Docker Hub's credentials under.
const HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, <password>)", self.username)
    }
}

/// The key a registry's credentials are stored under: Docker Hub's URL, else `host[:port]`.
pub fn server_key(domain: &str) -> String {
    if domain == crate::reference::DEFAULT_DOMAIN || domain == "index.docker.io" {
        HUB_KEY.into()
    } else {
        domain.into()
    }
}

/// The registry a login names (`docker login SERVER`: a URL or `host[:port]`), Docker Hub's
/// names and none being `docker.io`.
pub fn server_domain(server: &str) -> String {
    match host_of(server) {
        "" | "index.docker.io" | "registry-1.docker.io" => crate::reference::DEFAULT_DOMAIN.into(),
        h => h.into(),
    }
}

/// `https://host:port/path` or `host:port` -> `host:port` (how stored keys are matched).
fn host_of(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// A Docker client config file.
pub struct CredentialStore {
    path: PathBuf,
}

impl CredentialStore {
    /// Docker's file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> PathBuf {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return PathBuf::from(dir).join("config.json");
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
        home.join(".docker").join("config.json")
    }

    /// The store in `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn read(&self) -> Result<Map<String, Value>> {
        match fs::read(&self.path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::Refused(format!(
                    "{} is not a Docker config file: {e}",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
            Err(e) => Err(io(format!("read {}", self.path.display()))(e)),
        }
    }

    /// The helper that keeps `domain`'s credentials: the file's `credHelpers` entry for it,
    /// else its `credsStore`, else Docker's default helper when installed (and whether it
    /// came by default); none for the file.
    fn helper_for(doc: &Map<String, Value>, domain: &str) -> Result<Option<(Helper, bool)>> {
        let host = host_of(&server_key(domain)).to_string();
        let named = doc
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|h| h.iter().find(|(k, _)| host_of(k) == host))
            .and_then(|(_, v)| v.as_str())
            .or_else(|| doc.get("credsStore").and_then(Value::as_str))
            .filter(|n| !n.is_empty());
        match named {
            Some(name) => Helper::named(name).map(|h| Some((h, false))),
            None => Ok(helper::platform_default().map(|h| (h, true))),
        }
    }

    /// The credentials stored for the registry of `domain`, if any.
    pub fn get(&self, domain: &str) -> Result<Option<Credentials>> {
        let doc = self.read()?;
        if let Some((helper, _)) = Self::helper_for(&doc, domain)? {
            return helper.get(&server_key(domain));
        }
        let Some(Value::Object(auths)) = doc.get("auths") else {
            return Ok(None);
        };
        let want = host_of(&server_key(domain)).to_string();
        let Some(entry) = auths
            .iter()
            .find(|(k, _)| host_of(k) == want)
            .map(|(_, v)| v)
        else {
            return Ok(None);
        };
        let Some(auth) = entry.get("auth").and_then(Value::as_str) else {
            return Ok(None);
        };
        decode_auth(auth).map(Some).map_err(|why| {
            Error::Refused(format!("the credentials for {domain} in {} are malformed: {why}; run `netctl login {domain}` again", self.path.display()))
        })
    }

    /// Stores credentials for the registry of `domain`, keeping the rest of the file: in
    /// its helper (the file then names the registry with no secret, and a helper Docker
    /// picked by default becomes its `credsStore`, as Docker's login leaves it), else in
    /// the file.
    pub fn store(&self, domain: &str, creds: &Credentials) -> Result<()> {
        let mut doc = self.read()?;
        let entry = match Self::helper_for(&doc, domain)? {
            Some((h, by_default)) => {
                h.store(&server_key(domain), creds)?;
                if by_default {
                    doc.insert("credsStore".into(), Value::String(h.name().into()));
                }
                serde_json::json!({})
            }
            None => {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", creds.username, creds.password));
                serde_json::json!({ "auth": token })
            }
        };
        let auths = doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Value::Object(m) = auths {
            m.insert(server_key(domain), entry);
        }
        self.write(&doc)
    }

    /// Forgets the registry's credentials (in its helper too); whether the file named the
    /// registry (as Docker's logout, which otherwise says it was not logged in).
    pub fn erase(&self, domain: &str) -> Result<bool> {
        let mut doc = self.read()?;
        let want = host_of(&server_key(domain)).to_string();
        let Some(Value::Object(auths)) = doc.get_mut("auths") else {
            return Ok(false);
        };
        let before = auths.len();
        auths.retain(|k, _| host_of(k) != want);
        if auths.len() == before {
            return Ok(false);
        }
        self.write(&doc)?;
        if let Some((helper, _)) = Self::helper_for(&doc, domain)? {
            helper.erase(&server_key(domain))?;
        }
        Ok(true)
    }

    /// Writes the file whole, readable by its owner only.
    fn write(&self, doc: &Map<String, Value>) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let bytes = serde_json::to_vec_pretty(doc)
            .map_err(|e| Error::Refused(format!("encode the config file: {e}")))?;
        let tmp = dir.join(format!(".config.json.{}", std::process::id()));
        let written = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&tmp, &self.path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(io(format!("write {}", self.path.display())))
    }
}

/// `base64("user:password")`.
pub fn decode_auth(auth: &str) -> std::result::Result<Credentials, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let (user, pass) = text
        .split_once(':')
        .ok_or_else(|| "no ':' between user and password".to_string())?;
    Ok(Credentials {
        username: user.into(),
        password: pass.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_servers_are_registries_and_docker_hub_has_one_name() {
        assert_eq!(server_domain(""), "docker.io");
        assert_eq!(server_domain("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(server_domain("reg.example:5000"), "reg.example:5000");
        assert_eq!(
            server_domain("https://reg.example:5000/v2/"),
            "reg.example:5000"
        );
        assert_eq!(
            crate::reference::registry_host("docker.io"),
            "registry-1.docker.io"
        );
    }

    #[test]
    fn stored_credentials_are_read_back_and_other_keys_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"auths":{"https://other.example/v1/":{"auth":"eDp5"}},"psFormat":"table"}"#,
        )
        .unwrap();
        let store = CredentialStore::at(&path);
        let alice = Credentials {
            username: "alice".into(),
            password: "s:cret".into(),
        };
        store.store("reg.example:5000", &alice).unwrap();
        store.store("docker.io", &alice).unwrap();
        assert_eq!(store.get("reg.example:5000").unwrap(), Some(alice.clone()));
        assert_eq!(store.get("other.example").unwrap().unwrap().username, "x");
        let doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["psFormat"], "table");
        assert_eq!(doc["auths"][HUB_KEY]["auth"], "YWxpY2U6czpjcmV0");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(store.erase("reg.example:5000").unwrap());
        assert!(!store.erase("reg.example:5000").unwrap());
        assert_eq!(store.get("reg.example:5000").unwrap(), None);
    }
}
