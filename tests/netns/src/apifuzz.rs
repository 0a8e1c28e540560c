//! Requests for any operation of the Docker Engine API, drawn from Docker's own description
//! of it (swagger 2.0, `target/docker-api/swagger.json` from `scripts/deps test`): parameters
//! and bodies follow the operation's schemas most of the time, and are otherwise the wrong
//! type, out of range, huge, empty or strange — as a careless or hostile client sends them.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// Docker's API description, as `scripts/deps test` unpacks it.
pub fn swagger_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/docker-api/swagger.json")
}

/// A small deterministic generator (xorshift64*): a failing run is replayed from its seed.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value: it is mixed, so near seeds draw apart).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.bits() % n.max(1) as u64) as usize
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One operation of the API.
pub struct Operation {
    /// `GET`, `POST` ...
    pub method: String,
    /// The templated path, `/containers/{id}/json`.
    pub path: String,
    parameters: Vec<Value>,
}

/// One request made for an operation.
pub struct Request {
    /// `GET`, `POST` ...
    pub method: String,
    /// Path and query, percent-encoded, under `/v1.41`.
    pub target: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Vec<u8>,
}

impl Request {
    /// The request as bytes on a connection the server closes after answering.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.method,
            self.target,
            self.body.len()
        );
        for (k, v) in &self.headers {
            head += &format!("{k}: {v}\r\n");
        }
        head += "\r\n";
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// A line that says what was sent (the body cut short).
    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let cut: String = body
            .chars()
            .take(300)
            .flat_map(char::escape_debug)
            .collect();
        format!(
            "{} {} {cut}",
            self.method,
            self.target.chars().take(300).collect::<String>()
        )
    }
}

/// The API description.
pub struct Spec {
    doc: Value,
}

impl Spec {
    /// Reads the description at `path`.
    pub fn load(path: &Path) -> Spec {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; `scripts/deps test` unpacks Docker's API description there",
                path.display()
            )
        });
        Spec {
            doc: serde_json::from_str(&text).expect("the API description is JSON"),
        }
    }

    /// Every operation, in the description's order.
    pub fn operations(&self) -> Vec<Operation> {
        let mut ops = Vec::new();
        let Some(paths) = self.doc["paths"].as_object() else {
            return ops;
        };
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                if !["get", "post", "put", "delete", "head"].contains(&method.as_str()) {
                    continue;
                }
                ops.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    parameters: op["parameters"].as_array().cloned().unwrap_or_default(),
                });
            }
        }
        ops
    }

    /// A request for `op`; path parameters are often one of the `known` objects (that
    /// exist) of the path's kind, by its first segment (`containers`, `networks` ...).
    /// Half the requests are well formed (values of the right type, plausible for their
    /// field), so that they get past the parsers into the engine; the rest are wild.
    pub fn request(&self, op: &Operation, rng: &mut Rng, known: &[(&str, &[&str])]) -> Request {
        let segment = op.path.split('/').nth(1).unwrap_or_default();
        let known: &[&str] = known
            .iter()
            .find(|(s, _)| *s == segment)
            .map_or(&[], |(_, names)| names);
        let clean = rng.one_in(2);
        let mut path = op.path.clone();
        let mut query = Vec::new();
        let mut headers = Vec::new();
        let mut body = Vec::new();
        for p in &op.parameters {
            let name = p["name"].as_str().unwrap_or_default();
            match p["in"].as_str() {
                Some("path") => {
                    let v = match known.is_empty() || (!clean && rng.one_in(3)) {
                        true => strange_string(rng),
                        false => rng.pick(known).to_string(),
                    };
                    path = path.replace(&format!("{{{name}}}"), &encode(&v));
                }
                Some("query") if rng.one_in(2) => {
                    let mut d = Draw { rng, clean };
                    let v = scalar_text(&self.value(p, &mut d, 0, name));
                    query.push(format!("{}={}", encode(name), encode(&v)));
                }
                Some("header") if rng.one_in(2) => {
                    let v: String = strange_string(rng)
                        .chars()
                        .filter(|c| c.is_ascii_graphic())
                        .collect();
                    headers.push((name.to_string(), v));
                }
                Some("body") => body = self.body(&p["schema"], &mut Draw { rng, clean }),
                _ => {}
            }
        }
        let mut target = format!("/v1.41{path}");
        if !query.is_empty() {
            target += &format!("?{}", query.join("&"));
        }
        Request {
            method: op.method.clone(),
            target,
            headers,
            body,
        }
    }

    /// A body for `schema`: bytes for a binary stream, JSON otherwise (one time in ten not
    /// JSON at all).
    fn body(&self, schema: &Value, d: &mut Draw) -> Vec<u8> {
        if schema["format"] == "binary" || (!d.clean && d.rng.one_in(10)) {
            let len = d.rng.below(2048);
            return (0..len).map(|_| d.rng.bits() as u8).collect();
        }
        serde_json::to_vec(&self.value(schema, d, 0, "")).unwrap_or_default()
    }

    /// The schema `$ref` names, or `schema` itself.
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.trim_start_matches("#/definitions/");
                &self.doc["definitions"][name]
            }
            None => schema,
        }
    }

    /// A value for `schema` (of the field `name`): of its type (its example, one of its
    /// enum, or drawn), or in a wild request sometimes of another type.
    fn value(&self, schema: &Value, d: &mut Draw, depth: usize, name: &str) -> Value {
        let schema = self.resolve(schema);
        if depth > 6 || (!d.clean && d.rng.one_in(12)) {
            return wrong_value(d.rng);
        }
        if let Some(parts) = schema["allOf"].as_array() {
            let mut merged = Map::new();
            for part in parts {
                if let Value::Object(m) = self.value(part, d, depth + 1, name) {
                    merged.extend(m);
                }
            }
            return Value::Object(merged);
        }
        if !schema["example"].is_null() && d.rng.one_in(3) {
            return schema["example"].clone();
        }
        if let Some(choices) = schema["enum"].as_array().filter(|c| !c.is_empty()) {
            if d.clean || !d.rng.one_in(5) {
                return d.rng.pick(choices).clone();
            }
        }
        match schema["type"].as_str() {
            Some("object") | None if schema["properties"].is_object() => {
                self.object(schema, d, depth)
            }
            Some("object") => self.map(schema, d, depth),
            Some("array") => {
                let n = d.rng.below(4);
                Value::Array(
                    (0..n)
                        .map(|_| self.value(&schema["items"], d, depth + 1, name))
                        .collect(),
                )
            }
            Some("integer") => number(d, false),
            Some("number") => number(d, true),
            Some("boolean") => Value::Bool(d.rng.one_in(2)),
            Some("string") => Value::String(string(d, name)),
            _ => wrong_value(d.rng),
        }
    }

    /// An object with its required properties and about half of the others (a third in
    /// a well-formed request, which keeps it plausible).
    fn object(&self, schema: &Value, d: &mut Draw, depth: usize) -> Value {
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = Map::new();
        if let Some(props) = schema["properties"].as_object() {
            for (name, prop) in props {
                let drawn = match d.clean {
                    true => d.rng.one_in(3) || PLAUSIBLE.iter().any(|(f, _)| f == name),
                    false => d.rng.one_in(2),
                };
                if required.contains(&name.as_str()) || drawn {
                    out.insert(name.clone(), self.value(prop, d, depth + 1, name));
                }
            }
        }
        Value::Object(out)
    }

    /// A map (`additionalProperties`) of up to three entries.
    fn map(&self, schema: &Value, d: &mut Draw, depth: usize) -> Value {
        let values = &schema["additionalProperties"];
        let mut out = Map::new();
        for _ in 0..d.rng.below(4) {
            let v = match values.is_object() {
                true => self.value(values, d, depth + 1, ""),
                false => Value::String(string(d, "")),
            };
            out.insert(string(d, ""), v);
        }
        Value::Object(out)
    }
}

/// How one request draws its values.
struct Draw<'a> {
    rng: &'a mut Rng,
    /// Well formed: right types, plausible values, nothing strange.
    clean: bool,
}

/// Values that make sense for a field of Docker's API, by field name, so that well-formed
/// requests reach the engine (a container made from an image that exists, on a network
/// that exists ...).
const PLAUSIBLE: &[(&str, &[&str])] = &[
    ("Image", &["busybox", "busybox:latest"]),
    ("image", &["busybox"]),
    ("fromImage", &["busybox"]),
    ("container", &["fz-c", "fz-run"]),
    ("Container", &["fz-c", "fz-run"]),
    (
        "NetworkMode",
        &["bridge", "fz-net", "none", "host", "container:fz-run"],
    ),
    ("Driver", &["bridge", "local", "macvlan"]),
    ("Cmd", &["true", "sh", "-c", "echo hi", "sleep 1"]),
    ("Entrypoint", &["sh", "-c"]),
    ("User", &["root", "1000", "0:0", "nobody"]),
    ("WorkingDir", &["/tmp", "/"]),
    ("Subnet", &["172.80.0.0/16", "10.99.0.0/24", "fd00:80::/64"]),
    ("IPRange", &["172.80.1.0/24"]),
    ("Gateway", &["172.80.0.1"]),
    ("IPv4Address", &["172.80.0.9", "10.99.0.9"]),
    ("Binds", &["fz-vol:/data", "/tmp:/host-tmp:ro"]),
    ("Aliases", &["web", "db"]),
    ("Name", &["fz-new", "fz-net", "fz-vol"]),
    ("name", &["fz-new", "fz-c", "fz-run"]),
    ("HostPort", &["18080", ""]),
    ("signal", &["SIGKILL", "TERM", "9", "SIGHUP"]),
    ("condition", &["not-running", "next-exit", "removed"]),
    (
        "filters",
        &[
            r#"{"label":["a=b"]}"#,
            r#"{"dangling":["true"]}"#,
            r#"{"name":["fz"]}"#,
        ],
    ),
    ("path", &["/", "/tmp", "/etc/hostname"]),
    ("repo", &["fz-image"]),
    ("tag", &["latest", "v1"]),
    ("Mountpoint", &["/data"]),
    ("Target", &["/data", "/mnt"]),
    ("Source", &["fz-vol", "/tmp"]),
    ("Type", &["volume", "bind", "tmpfs"]),
];

/// A string as a client might send one: a value plausible for the field, other Docker
/// values, random text, or (in a wild request) empty, long, unicode, control characters,
/// paths that climb.
fn string(d: &mut Draw, field: &str) -> String {
    if let Some((_, values)) = PLAUSIBLE.iter().find(|(f, _)| *f == field) {
        if d.clean || d.rng.one_in(2) {
            return d.rng.pick(values).to_string();
        }
    }
    const ANY: &[&str] = &[
        "busybox",
        "fz-c",
        "fz-net",
        "fz-vol",
        "bridge",
        "host",
        "none",
        "container:fz-c",
        "/tmp",
        "/",
        "80/tcp",
        "8080",
        "172.80.0.0/16",
        "172.80.0.1",
        "10.0.0.0/8",
        "fe80::/64",
        "json-file",
        "local",
        "sh",
        "-c",
        "true",
        "SIGKILL",
        "9",
        "always",
        "on-failure",
        "label=a=b",
        r#"{"label":["a=b"]}"#,
        r#"{"dangling":["true"]}"#,
        "0.5",
        "1g",
        "/dev/null:/dev/null",
        "fz-vol:/data",
        "/etc:/x:ro",
    ];
    match d.rng.below(3) {
        0 => d.rng.pick(ANY).to_string(),
        1 if !d.clean => strange_string(d.rng),
        _ => (0..1 + d.rng.below(15))
            .map(|_| char::from(b'a' + (d.rng.below(26) as u8)))
            .collect(),
    }
}

/// A string made to trip parsers.
fn strange_string(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => String::new(),
        1 => "a".repeat(rng.below(100_000)),
        2 => "../../../../etc/passwd".into(),
        3 => "ünïcødé-名前-🐳".into(),
        4 => "\u{0}\u{1}\n\r\t".into(),
        5 => "%s%n%x{}$(id)`id`".into(),
        6 => "-1".into(),
        7 => "99999999999999999999999".into(),
        8 => " ".into(),
        _ => format!("{:x}", rng.bits()),
    }
}

/// An integer (or, for `float`, any number): small in a well-formed request, often at a
/// boundary in a wild one.
fn number(d: &mut Draw, float: bool) -> Value {
    if d.clean {
        return json!(d.rng.below(100));
    }
    match d.rng.below(9) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(i64::MAX),
        3 => json!(i64::MIN),
        4 => json!(u64::MAX),
        5 => json!(i32::MAX),
        6 if float => json!(0.5),
        6 => json!(1e300),
        _ => json!(d.rng.below(1000)),
    }
}

/// A value of some type or another.
fn wrong_value(rng: &mut Rng) -> Value {
    let mut d = Draw { rng, clean: false };
    match d.rng.below(7) {
        0 => Value::Null,
        1 => json!(true),
        2 => number(&mut d, true),
        3 => json!(string(&mut d, "")),
        4 => json!([]),
        5 => json!({}),
        _ => json!([{"a": [null]}]),
    }
}

/// A query value as text: strings as they are, anything else as JSON.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
