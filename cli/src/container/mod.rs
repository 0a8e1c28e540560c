//! The container commands, with Docker's flags, output and exit codes: arguments in
//! [`args`], their translation into the engine's spec in [`flags`], dispatch here.

use std::time::Duration;

use netctl_engine::container::Container;
use netctl_engine::lifecycle;
use netctl_engine::logs::LogOptions;
use netctl_engine::runtime::exec::ExecRequest;
use netctl_engine::spec;
use netctl_engine::{Engine, EngineConfig, Error};

use crate::outcome::{start_failure, Outcome};
use crate::output::{self, table};
use crate::template::Format;

mod args;
mod flags;

pub use args::*;
use flags::{check_cidfile, spec_of};

/// Runs a container command.
pub fn run(config: &EngineConfig, cmd: ContainerCommands) -> Outcome {
    let engine = Engine::open(config).map_err(start_failure)?;
    match cmd {
        ContainerCommands::Verb(v) => verb(&engine, *v),
        ContainerCommands::Container(ContainerCommand::Verb(v)) => verb(&engine, *v),
        ContainerCommands::Ps(a) | ContainerCommands::Container(ContainerCommand::Ls(a)) => {
            ps(&engine, &a)
        }
        ContainerCommands::Inspect {
            kind,
            format,
            targets,
        } => inspect(&engine, &targets, kind, format.as_deref()),
        ContainerCommands::Container(ContainerCommand::Inspect { format, containers }) => inspect(
            &engine,
            &containers,
            Some(ObjectKind::Container),
            format.as_deref(),
        ),
        ContainerCommands::Container(ContainerCommand::Prune { force }) => prune(&engine, force),
        ContainerCommands::Events(a) => crate::events::run(&engine, &a),
    }
}

/// Runs a verb on containers.
fn verb(engine: &Engine, cmd: Verb) -> Outcome {
    use Verb as C;
    match cmd {
        C::Run(a) => run_container(engine, &a),
        C::Create(a) => {
            // As Docker's: 125 for a bad flag, 1 for what the engine refuses.
            spec_of(&a).map_err(start_failure)?;
            check_cidfile(&a)?;
            let c = create(engine, &a, false)?;
            println!("{}", c.config.id);
            Ok(0)
        }
        C::Start { attach, containers } => start(engine, &containers, attach),
        C::Stop { time, containers } => each(engine, &containers, |e, c| {
            lifecycle::stop(e, c, time.map(Duration::from_secs))
        }),
        C::Restart { time, containers } => each(engine, &containers, |e, c| {
            lifecycle::restart(e, c, time.map(Duration::from_secs))
        }),
        C::Kill { signal, containers } => {
            let sig = spec::parse_signal(&signal)?;
            each(engine, &containers, |e, c| lifecycle::kill(e, c, sig))
        }
        C::Rm {
            link: true,
            containers,
            ..
        } => remove_links(engine, &containers),
        C::Rm {
            force,
            volumes,
            link: false,
            containers,
        } => each_of(engine, &containers, force, |e, c| {
            lifecycle::remove(e, c, force, volumes)
        }),
        C::Logs(a) => logs(engine, &a),
        C::Exec(a) => exec(engine, &a),
        C::Attach { container } => {
            let c = engine.containers.find(&container)?;
            if !c.is_running() {
                return Err(anyhow::anyhow!(
                    "You cannot attach to a stopped container, start it first"
                )
                .into());
            }
            Ok(exit_code(crate::attach::attach(engine, &c)?.unwrap_or(0)))
        }
        C::Pause { containers } => each(engine, &containers, |e, c| {
            netctl_engine::manage::pause(e, c, true)
        }),
        C::Unpause { containers } => each(engine, &containers, |e, c| {
            netctl_engine::manage::pause(e, c, false)
        }),
        C::Top { container, ps_args } => {
            let top = netctl_engine::manage::top(&engine.containers.find(&container)?, &ps_args)?;
            // Docker's table: cells of at least 20 columns, 3 spaces apart.
            let mut text = top.titles.join("\t") + "\n";
            for row in &top.processes {
                text.push_str(&row.join("\t"));
                text.push('\n');
            }
            print!("{}", output::tabwrite_min(&text, 20));
            Ok(0)
        }
        C::Port { container, port } => {
            let c = engine.containers.find(&container)?;
            for p in netctl_engine::manage::port(&c, port.as_deref())? {
                let ip = p
                    .host_ip
                    .map_or_else(|| "0.0.0.0".to_string(), |i| i.to_string());
                let host = format!("{ip}:{}", p.host_port);
                // Docker's: `HOST:PORT` alone when a port was asked for.
                match port {
                    Some(_) => println!("{host}"),
                    None => println!("{}/{} -> {host}", p.container_port, p.protocol),
                }
            }
            Ok(0)
        }
        C::Cp(a) => crate::copy::run(engine, &a),
        C::Commit {
            author,
            message,
            pause,
            changes,
            container,
            reference,
        } => {
            let c = engine.containers.find(&container)?;
            let req = netctl_engine::commit::CommitRequest {
                reference,
                comment: message.unwrap_or_default(),
                author: author.unwrap_or_default(),
                pause,
                changes,
            };
            let image = netctl_engine::commit::commit(engine, &c, &req)?;
            println!("sha256:{}", image.id);
            Ok(0)
        }
        C::Diff { container } => {
            let c = engine.containers.find(&container)?;
            for ch in netctl_engine::changes::changes(engine, &c)? {
                println!("{} {}", ch.kind.letter(), ch.path);
            }
            Ok(0)
        }
        C::Export { output, container } => {
            let c = engine.containers.find(&container)?;
            export(engine, &c, output.as_deref())
        }
        C::Stats(a) => crate::stats::run(engine, &a),
        C::Update {
            limits,
            restart,
            containers,
        } => {
            let req = netctl_engine::manage::UpdateRequest {
                resources: flags::resources_of(&limits)?,
                restart: restart
                    .map(|r| netctl_engine::restart::RestartRequest::parse(&r))
                    .transpose()?,
            };
            for key in &containers {
                let c = engine.containers.find(key)?;
                for w in netctl_engine::manage::update(engine, &c, &req)? {
                    eprintln!("WARNING: {w}");
                }
                println!("{key}");
            }
            Ok(0)
        }
        C::Rename { container, name } => {
            netctl_engine::manage::rename(engine, &engine.containers.find(&container)?, &name)?;
            Ok(0)
        }
        C::Wait { containers } => {
            for key in &containers {
                println!(
                    "{}",
                    netctl_engine::manage::wait(
                        engine,
                        &engine.containers.find(key)?,
                        Default::default(),
                        netctl_engine::when::now(),
                        None
                    )?
                );
            }
            Ok(0)
        }
    }
}

/// `export`: to the file, or to stdout unless it is a terminal.
fn export(engine: &Engine, c: &Container, output: Option<&std::path::Path>) -> Outcome {
    match output {
        Some(path) => {
            let mut f = std::fs::File::create(path)
                .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
            netctl_engine::copy::export(engine, c, &mut f)?;
        }
        None => {
            if rustix::termios::isatty(std::io::stdout()) {
                return Err(anyhow::anyhow!(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                )
                .into());
            }
            let mut out = std::io::stdout().lock();
            netctl_engine::copy::export(engine, c, &mut out)?;
        }
    }
    Ok(0)
}

/// An exit status as a process exit code (Docker's 0-255).
fn exit_code(code: i32) -> u8 {
    u8::try_from(code.rem_euclid(256)).unwrap_or(255)
}

/// `create`: the container's record, not started.
/// `detached` (`run -d`): no stream is attached.
fn create(engine: &Engine, a: &CreateArgs, detached: bool) -> Result<Container, Error> {
    crate::registry::ensure_image(engine, a.image(), a.pull, a.platform.as_deref())?;
    let mut spec = spec_of(a)?;
    if detached {
        spec.attach = Default::default();
    }
    let (c, warnings) = lifecycle::create(engine, &spec)?;
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
    if let Some(f) = &a.cidfile {
        if let Err(e) = std::fs::write(f, &c.config.id) {
            let _ = lifecycle::remove(engine, &c, true, true);
            return Err(Error::io(
                format!("write the container ID file {}", f.display()),
                e,
            ));
        }
    }
    Ok(c)
}

/// `run`: an error leaves no container behind.
fn run_container(engine: &Engine, a: &RunArgs) -> Outcome {
    if a.create.interactive
        && a.create.tty
        && !a.detach
        && !rustix::termios::isatty(std::io::stdin())
    {
        return Err(anyhow::anyhow!("the input device is not a TTY").into());
    }
    check_cidfile(&a.create).map_err(start_failure)?;
    let c = create(engine, &a.create, a.detach).map_err(start_failure)?;
    let tty = crate::attach::terminal_size();
    if let Err(e) = lifecycle::start(engine, &c, !a.detach, tty) {
        if let Ok(lock) = engine.containers.lock_one(&c) {
            let mut c = c;
            let _ = lifecycle::remove_stopped(engine, &mut c, &lock, true);
        }
        return Err(start_failure(e));
    }
    if a.detach {
        println!("{}", c.config.id);
        return Ok(0);
    }
    Ok(exit_code(attach_started(engine, c)?))
}

/// Attaches to a container `start` just started: its exit code (0 when detached). An
/// `--rm` container may already have ended and been removed; its monitor still holds the
/// output and the exit code for this first client.
fn attach_started(engine: &Engine, mut c: Container) -> anyhow::Result<i32> {
    match c.reload() {
        Ok(()) => {}
        Err(e) if matches!(e, Error::NotFound { .. }) && c.config.auto_remove => {}
        Err(e) => return Err(e.into()),
    }
    Ok(crate::attach::attach(engine, &c)?.unwrap_or(0))
}

/// `start [-a] CONTAINER...`.
fn start(engine: &Engine, keys: &[String], attach: bool) -> Outcome {
    let mut code = 0;
    for key in keys {
        let c = engine.containers.find(key)?;
        let tty = attach.then(crate::attach::terminal_size).flatten();
        lifecycle::start(engine, &c, attach, tty).map_err(start_failure)?;
        if attach {
            code = exit_code(attach_started(engine, c)?);
        } else {
            println!("{key}");
        }
    }
    Ok(code)
}

/// Runs `f` for each container named, up to 50 at once (as Docker does: `stop` of many
/// containers takes one timeout, not one per container), then prints each name in the
/// order given, or its error; a failure does not stop the others.
fn each(
    engine: &Engine,
    keys: &[String],
    f: impl Fn(&Engine, &Container) -> Result<(), Error> + Sync,
) -> Outcome {
    each_of(engine, keys, false, f)
}

/// [`each`]; with `missing_ok`, a container that does not exist is told but is no failure
/// (`rm -f`, as Docker 20.10).
fn each_of(
    engine: &Engine,
    keys: &[String],
    missing_ok: bool,
    f: impl Fn(&Engine, &Container) -> Result<(), Error> + Sync,
) -> Outcome {
    let mut failed = false;
    for batch in keys.chunks(50) {
        let results: Vec<Result<(), Error>> = std::thread::scope(|s| {
            let running: Vec<_> = batch
                .iter()
                .map(|key| s.spawn(|| engine.containers.find(key).and_then(|c| f(engine, &c))))
                .collect();
            running
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::State("the operation panicked".into())))
                })
                .collect()
        });
        for (key, result) in batch.iter().zip(results) {
            match result {
                Ok(()) => println!("{key}"),
                Err(e @ Error::NotFound { .. }) if missing_ok => eprintln!("Error: {e}"),
                Err(e) => {
                    eprintln!("Error response from daemon: {}", e.report());
                    failed = true;
                }
            }
        }
    }
    Ok(u8::from(failed))
}

/// `rm --link PARENT/ALIAS...`: each link removed is printed, each failure said.
fn remove_links(engine: &Engine, names: &[String]) -> Outcome {
    let mut failed = false;
    for name in names {
        match netctl_engine::manage::remove_link(engine, name) {
            Ok(()) => println!("{name}"),
            Err(e @ Error::NotFound { .. }) => {
                eprintln!("Error: {e}");
                failed = true;
            }
            Err(e) => {
                eprintln!("Error response from daemon: {}", e.report());
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}

/// `ps`.
fn ps(engine: &Engine, a: &PsArgs) -> Outcome {
    output::repair(engine);
    let images = netctl_engine::image::ImageStore::open(engine.root())?;
    let listing = netctl_engine::summary::list(
        engine,
        &netctl_engine::summary::ListOptions {
            all: a.all,
            limit: if a.latest { Some(1) } else { a.last },
            filters: a.filter.clone(),
        },
    )?;
    let shown = &listing.shown;
    let names: Vec<Vec<String>> = shown.iter().map(|c| listing.names.names(c)).collect();
    if a.quiet {
        shown.iter().for_each(|c| {
            println!(
                "{}",
                if a.no_trunc {
                    c.config.id.as_str()
                } else {
                    c.config.short_id()
                }
            )
        });
        return Ok(0);
    }
    let show_of = |i: usize, c: &Container| output::PsShow {
        full: a.no_trunc,
        image_size: a
            .size
            .then(|| images.find(&c.config.image).map_or(0, |i| i.size)),
        names: names.get(i).map_or(&[], Vec::as_slice),
    };
    if let Some(tpl) = a.format.as_deref() {
        let rows: Vec<_> = shown
            .iter()
            .enumerate()
            .map(|(i, c)| output::ps_map(c, show_of(i, c)))
            .collect();
        print!(
            "{}",
            crate::template::render_list(tpl, &output::ps_headers(), &rows)?
        );
        return Ok(0);
    }
    let mut shown_fields = vec![
        "ID",
        "Image",
        "Command",
        "RunningFor",
        "Status",
        "Ports",
        "Names",
    ];
    let mut header = vec![
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];
    if a.size {
        shown_fields.push("Size");
        header.push("SIZE");
    }
    let rows: Vec<Vec<String>> = shown
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let fields = output::ps_map(c, show_of(i, c));
            shown_fields.iter().map(|k| fields[k].clone()).collect()
        })
        .collect();
    print!("{}", table(&header, &rows));
    Ok(0)
}

/// `inspect [--type ...]`: without a type, the first kind that has the name, in that order.
fn inspect(
    engine: &Engine,
    keys: &[String],
    kind: Option<ObjectKind>,
    format: Option<&str>,
) -> Outcome {
    let format = format.map(Format::parse).transpose()?;
    use netctl_engine::view;
    let images = netctl_engine::image::ImageStore::open(engine.root())?;
    let volumes = netctl_engine::volume::VolumeStore::open(engine.root())?;
    let networks = engine.networks()?;
    let wants = |k: ObjectKind| kind.is_none_or(|t| t == k);
    let one = |key: &str| -> anyhow::Result<serde_json::Value> {
        if wants(ObjectKind::Container) {
            if let Ok(c) = engine.containers.find(key) {
                return Ok(serde_json::to_value(view::inspect(engine, &c))?);
            }
        }
        if wants(ObjectKind::Image) {
            if let Ok(i) = images.find(key) {
                return Ok(serde_json::to_value(view::inspect_image(&images, &i))?);
            }
        }
        if wants(ObjectKind::Volume) {
            if let Ok(v) = volumes.get(key) {
                return Ok(serde_json::to_value(view::inspect_volume(&volumes, &v))?);
            }
        }
        if wants(ObjectKind::Network) {
            if let Ok(n) = networks.find(key) {
                return Ok(serde_json::to_value(view::inspect_network(engine, &n))?);
            }
        }
        anyhow::bail!("No such object: {key}")
    };
    let out = keys
        .iter()
        .map(|k| one(k))
        .collect::<anyhow::Result<Vec<_>>>()?;
    match format {
        Some(f) => {
            for v in &out {
                println!("{}", f.render(v)?);
            }
        }
        None => output::json(&out)?,
    }
    Ok(0)
}

/// `logs`: stdout lines to stdout, stderr lines to stderr.
fn logs(engine: &Engine, a: &LogsArgs) -> Outcome {
    use std::io::Write;
    let c = engine.containers.find(&a.container)?;
    let tail = match a.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse::<usize>()
                .map_err(|_| anyhow::anyhow!("--tail {n:?} is not a number"))?,
        ),
    };
    let now = netctl_engine::when::now();
    let at = |t: &Option<String>| {
        t.as_deref()
            .map(|t| netctl_engine::when::parse(t, now))
            .transpose()
    };
    let opts = LogOptions {
        follow: a.follow,
        tail,
        since: at(&a.since)?,
        until: at(&a.until)?,
        cancel: None,
    };
    netctl_engine::logs::read(&c, opts, |rec| {
        let prefix = if a.timestamps {
            format!("{} ", rec.time)
        } else {
            String::new()
        };
        let written = if rec.is_stderr() {
            write!(std::io::stderr(), "{prefix}{}", rec.log)
        } else {
            let mut o = std::io::stdout().lock();
            write!(o, "{prefix}{}", rec.log).and_then(|()| o.flush())
        };
        written.map_err(|e| Error::io("write the log", e))
    })?;
    Ok(0)
}

/// `exec`: the command's exit code; 127/126 when it cannot be run, as Docker's.
fn exec(engine: &Engine, a: &ExecArgs) -> Outcome {
    let c = engine.containers.find(&a.container)?;
    let tty = a.tty && !a.detach;
    if tty && a.interactive && !rustix::termios::isatty(std::io::stdin()) {
        return Err(anyhow::anyhow!("the input device is not a TTY").into());
    }
    let req = ExecRequest {
        command: &a.command,
        env: &a.env,
        workdir: a.workdir.as_deref(),
        interactive: a.interactive,
        user: a.user.as_deref(),
        tty: tty.then(|| crate::attach::terminal_size().unwrap_or((24, 80))),
        resize: None,
    };
    // Our terminal passes keys through raw while the command has its own.
    let _raw = (tty && a.interactive)
        .then(crate::attach::RawTerminal::enter)
        .flatten();
    let ran = if a.detach {
        netctl_engine::runtime::exec::exec_detached(engine, &c, &req).map(|()| 0)
    } else {
        netctl_engine::runtime::exec::exec(engine, &c, &req)
    };
    match ran {
        Ok(code) => Ok(exit_code(code)),
        Err(e @ (Error::CommandNotFound(_) | Error::CommandNotRunnable { .. })) => {
            eprintln!("OCI runtime exec failed: {e}");
            Ok(if matches!(e, Error::CommandNotFound(_)) {
                127
            } else {
                126
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// `container prune`.
fn prune(engine: &Engine, force: bool) -> Outcome {
    if !force && !crate::input::confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(0);
    }
    let pruned = netctl_engine::system::prune_containers(engine)?;
    crate::system::print_pruned("Deleted Containers", &pruned);
    println!(
        "Total reclaimed space: {}",
        output::human_size(pruned.reclaimed)
    );
    Ok(0)
}
