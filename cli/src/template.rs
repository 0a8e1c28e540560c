//! Docker's `--format` / `-f`: Go's text/template syntax (the `gotmpl` crate) over what the
//! command would print as JSON, with Docker's helper functions `json`, `upper`, `lower`,
//! `join` and `title`. `\t` and `\n` in the template stand for a tab and a newline, as in
//! Docker's CLI.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use gotmpl::{Template, Value};

/// A parsed `--format` template.
pub struct Format {
    template: Template,
    orders: KeyOrders,
}

/// The key order of every map of the data being rendered, by the address of its shared
/// map: the template engine keeps maps sorted, but `json` prints a Docker struct's fields in
/// their declared order, as Go does.
#[derive(Clone, Default)]
struct KeyOrders(Arc<Mutex<HashMap<usize, Vec<Arc<str>>>>>);

impl KeyOrders {
    /// `v` as a template value, each map's key order noted.
    fn value(&self, v: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match v {
            J::Null => Value::Nil,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => n.as_i64().map_or_else(
                || {
                    n.as_u64()
                        .map_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0)), Value::Uint)
                },
                Value::Int,
            ),
            J::String(s) => Value::String(Arc::from(s.as_str())),
            J::Array(items) => Value::List(items.iter().map(|i| self.value(i)).collect()),
            J::Object(m) => {
                let keys: Vec<Arc<str>> = m.keys().map(|k| Arc::from(k.as_str())).collect();
                let map: BTreeMap<Arc<str>, Value> = keys
                    .iter()
                    .cloned()
                    .zip(m.values().map(|v| self.value(v)))
                    .collect();
                let map = Arc::new(map);
                if let Ok(mut orders) = self.0.lock() {
                    orders.insert(Arc::as_ptr(&map) as usize, keys);
                }
                Value::Map(map)
            }
        }
    }

    /// The JSON of a template value, maps in their noted key order.
    fn json(&self, v: &Value) -> serde_json::Value {
        use serde_json::Value as J;
        match v {
            Value::Nil | Value::Function(_) => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Uint(u) => J::from(*u),
            Value::Float(f) => J::from(*f),
            Value::String(s) => J::String(s.to_string()),
            Value::List(items) => J::Array(items.iter().map(|i| self.json(i)).collect()),
            Value::Map(m) => {
                let noted = self
                    .0
                    .lock()
                    .ok()
                    .and_then(|o| o.get(&(Arc::as_ptr(m) as usize)).cloned());
                let keys = noted.unwrap_or_else(|| m.keys().cloned().collect());
                J::Object(
                    keys.iter()
                        .filter_map(|k| Some((k.to_string(), self.json(m.get(k)?))))
                        .collect(),
                )
            }
        }
    }
}

impl Format {
    /// Parses `src`; the error names what is wrong in it.
    pub fn parse(src: &str) -> anyhow::Result<Self> {
        let src = src.replace("\\t", "\t").replace("\\n", "\n");
        let orders = KeyOrders::default();
        let seen = orders.clone();
        let template = Template::new("format")
            .func("json", move |args| {
                let v = args.first().map(|v| seen.json(v)).unwrap_or_default();
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
            .with_context(|| format!("template parsing error: {src:?}"))?;
        Ok(Format { template, orders })
    }

    /// Renders the template over `data` as Docker would (its JSON field names).
    pub fn render(&self, data: &impl serde::Serialize) -> anyhow::Result<String> {
        let json = serde_json::to_value(data).context("template data")?;
        let value = self.orders.value(&json);
        let out = self
            .template
            .execute_to_string(&value)
            .context("template: executing \"format\"");
        if let Ok(mut orders) = self.orders.0.lock() {
            orders.clear();
        }
        out
    }
}

/// A listing through a `--format` as Docker prints it: one rendering per row; with a
/// leading `table`, a header row (the fields' column names from `header`) first and the
/// cells aligned by Docker's tab writer.
pub fn render_list<T: serde::Serialize>(
    src: &str,
    header: &impl serde::Serialize,
    rows: &[T],
) -> anyhow::Result<String> {
    let (table, tpl) = match src.strip_prefix("table") {
        Some(rest) => (true, rest.trim_start()),
        None => (false, src),
    };
    let format = Format::parse(tpl)?;
    let mut out = String::new();
    if table {
        out.push_str(&format.render(header)?);
        out.push('\n');
    }
    for r in rows {
        out.push_str(&format.render(r)?);
        out.push('\n');
    }
    Ok(if table {
        crate::output::tabwrite(&out)
    } else {
        out
    })
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
    fn json_prints_a_structs_fields_in_their_order_as_go_does() {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Policy {
            name: &'static str,
            maximum_retry_count: u32,
        }
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Host {
            restart_policy: Policy,
        }
        let data = Host {
            restart_policy: Policy {
                name: "on-failure",
                maximum_retry_count: 2,
            },
        };
        let f = Format::parse("{{json .RestartPolicy}} {{json .}}").unwrap();
        assert_eq!(
            f.render(&data).unwrap(),
            r#"{"Name":"on-failure","MaximumRetryCount":2} {"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":2}}"#
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
