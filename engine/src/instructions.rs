//! Dockerfile instructions applied to an image's config, as `docker commit --change` and
//! `docker import --change` apply them: `CMD`, `ENTRYPOINT`, `ENV`, `EXPOSE`, `LABEL`,
//! `ONBUILD`, `USER`, `VOLUME`, `WORKDIR`. Anything else is refused in Docker's words.

use serde_json::{json, Map, Value};

use crate::error::{invalid, Error, Result};

/// Applies each instruction of `changes` in turn to `config` (an image config's `config`
/// object).
pub fn apply(config: &mut Value, changes: &[String]) -> Result<()> {
    if !config.is_object() {
        *config = json!({});
    }
    for change in changes {
        apply_one(config, change.trim())?;
    }
    Ok(())
}

fn apply_one(config: &mut Value, change: &str) -> Result<()> {
    let (word, rest) = change
        .split_once(char::is_whitespace)
        .map_or((change, ""), |(w, r)| (w, r.trim()));
    let word = word.to_ascii_uppercase();
    if rest.is_empty() {
        invalid!("{word} requires at least one argument");
    }
    match word.as_str() {
        "CMD" => config["Cmd"] = json!(command(rest)?),
        "ENTRYPOINT" => config["Entrypoint"] = json!(command(rest)?),
        "ENV" => {
            let mut env: Vec<String> = strings(&config["Env"]);
            for (k, v) in pairs(rest, true)? {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != k);
                env.push(format!("{k}={v}"));
            }
            config["Env"] = json!(env);
        }
        "LABEL" => {
            let labels = pairs(rest, false)?.into_iter().map(|(k, v)| (k, json!(v)));
            extend(config, "Labels", labels);
        }
        "EXPOSE" => {
            let ports = rest
                .split_whitespace()
                .map(|p| Ok((port(p)?, json!({}))))
                .collect::<Result<Vec<_>>>()?;
            extend(config, "ExposedPorts", ports);
        }
        "VOLUME" => {
            let list = match rest.starts_with('[') {
                true => json_list(rest)?,
                false => rest.split_whitespace().map(str::to_string).collect(),
            };
            extend(config, "Volumes", list.into_iter().map(|v| (v, json!({}))));
        }
        "USER" => config["User"] = json!(rest),
        "WORKDIR" => {
            let now = config["WorkingDir"].as_str().unwrap_or("/").to_string();
            config["WorkingDir"] = json!(match rest.starts_with('/') {
                true => rest.to_string(),
                false => format!("{}/{rest}", now.trim_end_matches('/')),
            });
        }
        "ONBUILD" => {
            let mut triggers = strings(&config["OnBuild"]);
            triggers.push(rest.to_string());
            config["OnBuild"] = json!(triggers);
        }
        _ => invalid!("{word} is not a valid change command"),
    }
    Ok(())
}

/// `["a", "b"]` as it is, or the shell form run by `/bin/sh -c`.
fn command(rest: &str) -> Result<Vec<String>> {
    match rest.starts_with('[') {
        true => json_list(rest),
        false => Ok(vec!["/bin/sh".into(), "-c".into(), rest.into()]),
    }
}

/// A JSON list of strings.
fn json_list(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text)
        .map_err(|e| Error::Invalid(format!("{text}: not a JSON list of strings: {e}")))
}

/// The strings of a JSON list (none for anything else).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Adds `entries` to the object at `config[key]` (made if missing).
fn extend(config: &mut Value, key: &str, entries: impl IntoIterator<Item = (String, Value)>) {
    let mut map = match config[key].take() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    map.extend(entries);
    config[key] = Value::Object(map);
}

/// `KEY=VALUE ...` (values may be double-quoted), or for `ENV` the older `KEY VALUE`.
fn pairs(rest: &str, legacy: bool) -> Result<Vec<(String, String)>> {
    let words = words(rest)?;
    let first_has_eq = words.first().is_some_and(|w| w.contains('='));
    if legacy && !first_has_eq {
        let (key, value) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| Error::Invalid(format!("ENV {rest}: give KEY=VALUE")))?;
        return Ok(vec![(key.to_string(), value.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::Invalid(format!("{w}: give KEY=VALUE"))),
        })
        .collect()
}

/// Splits at white space outside double quotes, dropping the quotes.
fn words(text: &str) -> Result<Vec<String>> {
    let (mut out, mut word, mut quoted) = (Vec::new(), String::new(), false);
    let mut started = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if quoted {
        invalid!("{text}: a quote is not closed");
    }
    if started {
        out.push(word);
    }
    Ok(out)
}

/// `8000` or `53/udp` as `8000/tcp`, `53/udp`.
fn port(p: &str) -> Result<String> {
    let (number, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if number.parse::<u16>().is_err() || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        invalid!("invalid port {p:?} in EXPOSE: use PORT[/tcp|udp|sctp]");
    }
    Ok(format!("{number}/{proto}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Result<Value> {
        let mut config = json!({"Env": ["PATH=/bin", "A=old"], "WorkingDir": "/srv"});
        let changes: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        apply(&mut config, &changes)?;
        Ok(config)
    }

    #[test]
    fn dockers_change_commands_set_the_config() {
        let c = applied(&[
            "EXPOSE 8000 53/udp",
            r#"CMD ["bash"]"#,
            "ENTRYPOINT echo hi",
            r#"ENV A=new B="two words""#,
            "ENV C legacy value",
            "LABEL team=net",
            "USER nobody",
            "WORKDIR app",
            "VOLUME /data /logs",
        ])
        .unwrap();
        assert_eq!(c["ExposedPorts"], json!({"8000/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Cmd"], json!(["bash"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(
            c["Env"],
            json!(["PATH=/bin", "A=new", "B=two words", "C=legacy value"])
        );
        assert_eq!(c["Labels"], json!({"team": "net"}));
        assert_eq!(
            (c["User"].as_str(), c["WorkingDir"].as_str()),
            (Some("nobody"), Some("/srv/app"))
        );
        assert_eq!(c["Volumes"], json!({"/data": {}, "/logs": {}}));
    }

    #[test]
    fn other_instructions_and_bad_arguments_are_refused() {
        let e = applied(&["RUN rm -rf /"]).unwrap_err().to_string();
        assert!(e.contains("RUN is not a valid change command"), "{e}");
        assert!(applied(&["EXPOSE http"]).is_err());
        assert!(applied(&[r#"CMD ["unclosed"#]).is_err());
        assert!(applied(&["ENV"]).is_err());
        assert!(applied(&[r#"LABEL a="b"#]).is_err());
    }
}
