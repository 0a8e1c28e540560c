//! `events`: the engine's events as Docker prints them, past ones with `--since`, new ones
//! as they happen, until `--until` (or Ctrl-C).

use clap::Args;
use netctl_engine::events::{self, Event, EventFilter, EventOptions};
use netctl_engine::Engine;

use crate::outcome::Outcome;
use crate::template::Format;

/// `events`.
#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Show events created since this time (a duration, a Unix or an RFC 3339 time).
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this time.
    #[arg(long)]
    pub until: Option<String>,
    /// Filter: type=, event=, container=, image=, network=, volume=, label=.
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Go template: `{{.Type}} {{.Action}}`, `{{json .}}`.
    #[arg(long)]
    pub format: Option<String>,
}

/// Runs `events`.
pub fn run(engine: &Engine, a: &EventsArgs) -> Outcome {
    let now = netctl_engine::when::now();
    let at = |t: &Option<String>| {
        t.as_deref()
            .map(|t| netctl_engine::when::parse(t, now))
            .transpose()
    };
    let opts = EventOptions {
        since: at(&a.since)?,
        until: at(&a.until)?,
        filter: EventFilter::parse(&a.filter)?,
        cancel: None,
    };
    let format = a
        .format
        .as_deref()
        .filter(|f| *f != "{{json .}}")
        .map(Format::parse)
        .transpose()?;
    let raw = a.format.as_deref() == Some("{{json .}}");
    events::read(engine, &opts, |e| {
        let text = match (&format, raw) {
            (_, true) => serde_json::to_string(e).unwrap_or_default(),
            (Some(f), _) => f
                .render(&template_view(e))
                .map_err(|err| netctl_engine::Error::Invalid(format!("{err:#}")))?,
            (None, _) => events::line(e),
        };
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")
            .and_then(|()| out.flush())
            .map_err(|err| netctl_engine::Error::io("write an event", err))?;
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok(0)
}

/// An event by the Go field names Docker's templates use (`.Status`, `.ID`, `.TimeNano`).
fn template_view(e: &Event) -> serde_json::Value {
    serde_json::json!({
        "Status": e.status.clone().unwrap_or_default(),
        "ID": e.id.clone().unwrap_or_default(),
        "From": e.from.clone().unwrap_or_default(),
        "Type": e.kind,
        "Action": e.action,
        "Actor": {"ID": e.actor.id, "Attributes": e.actor.attributes},
        "Scope": e.scope,
        "Time": e.time,
        "TimeNano": e.time_nano.to_string(),
    })
}
