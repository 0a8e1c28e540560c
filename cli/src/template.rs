//! Docker's `--format` / `-f`: Go's text/template syntax (the `gotmpl` crate) over what the
//! command would print as JSON, with Docker's helper functions `json`, `upper`, `lower`,
//! `join` and `title`. `\t` and `\n` in the template stand for a tab and a newline, as in
//! Docker's CLI.

use std::sync::Arc;

use anyhow::Context;
use gotmpl::{Template, Value};

/// A parsed `--format` template.
pub struct Format(Template);

impl Format {
    /// Parses `src`; the error names what is wrong in it.
    pub fn parse(src: &str) -> anyhow::Result<Self> {
        let src = src.replace("\\t", "\t").replace("\\n", "\n");
        Template::new("format")
            .func("json", |args| {
                let v = args.first().map(to_json).unwrap_or_default();
                Ok(Value::String(Arc::from(v.to_string())))
            })
            .func("upper", |args| Ok(map_str(args, |s| s.to_uppercase())))
            .func("lower", |args| Ok(map_str(args, |s| s.to_lowercase())))
            .func("title", |args| Ok(map_str(args, title)))
            .func("join", |args| {
                let sep = args.get(1).and_then(Value::as_str).unwrap_or(" ");
                let words: Vec<String> = match args.first() {
                    Some(Value::List(items)) => items.iter().map(ToString::to_string).collect(),
                    Some(v) => vec![v.to_string()],
                    None => Vec::new(),
                };
                Ok(Value::String(Arc::from(words.join(sep))))
            })
            .parse(&src)
            .map(Format)
            .with_context(|| format!("template parsing error: {src:?}"))
    }

    /// Renders the template over `data` as Docker would (its JSON field names).
    pub fn render(&self, data: &impl serde::Serialize) -> anyhow::Result<String> {
        let value = gotmpl::to_value(data).context("template data")?;
        self.0
            .execute_to_string(&value)
            .context("template: executing \"format\"")
    }
}

fn map_str(args: &[Value], f: impl Fn(&str) -> String) -> Value {
    let s = args.first().map(ToString::to_string).unwrap_or_default();
    Value::String(Arc::from(f(&s)))
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c.is_whitespace();
    }
    out
}

/// The JSON of a template value (`{{json .NetworkSettings}}`).
fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil | Value::Function(_) => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Uint(u) => J::from(*u),
        Value::Float(f) => J::from(*f),
        Value::String(s) => J::String(s.to_string()),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn render(tpl: &str, data: serde_json::Value) -> String {
        Format::parse(tpl).unwrap().render(&data).unwrap()
    }

    #[test]
    fn templates_users_script_against_render_like_dockers() {
        let c = json!({"State": {"Pid": 4242, "Status": "running"},
            "NetworkSettings": {"Networks": {"app": {"IPAddress": "172.18.0.2"}, "db": {"IPAddress": "172.19.0.2"}}},
            "Config": {"Env": ["A=1", "B=2"], "Labels": {"tier": "web"}}, "Name": "/web1"});
        assert_eq!(render("{{.State.Pid}}", c.clone()), "4242");
        assert_eq!(
            render(
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                c.clone()
            ),
            "172.18.0.2 172.19.0.2 "
        );
        assert_eq!(
            render("{{index .Config.Labels \"tier\"}}", c.clone()),
            "web"
        );
        assert_eq!(
            render("{{json .State}}", c.clone()),
            r#"{"Pid":4242,"Status":"running"}"#
        );
        assert_eq!(render("{{join .Config.Env \",\"}}", c.clone()), "A=1,B=2");
        assert_eq!(
            render("{{upper .State.Status}}\\t{{.Name}}", c.clone()),
            "RUNNING\t/web1"
        );
        assert_eq!(
            render("{{if eq .State.Status \"running\"}}up{{end}}", c),
            "up"
        );
    }

    #[test]
    fn a_broken_template_says_so() {
        assert!(Format::parse("{{.State.Pid").is_err());
        let unknown =
            Format::parse("{{nosuchfunc .X}}").and_then(|f| f.render(&serde_json::json!({"X": 1})));
        assert!(unknown.is_err());
    }
}
