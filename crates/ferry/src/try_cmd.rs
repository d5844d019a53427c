//! `ferry try`: a route's transformers, step by step, on a sample entity (or a stored
//! task's), and what its publisher would send; nothing is stored or sent.

use crate::serve::{load_config, open_store, prepare};
use anyhow::{Context, Result, bail};
use ferry_engine::{TryInput, TryReport, TryStep};
use std::io::Read;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The configuration file.
    #[arg(long, short, env = "FERRY_CONFIG", default_value = "ferry.toml")]
    pub config: PathBuf,
    /// The route to try.
    #[arg(long)]
    pub route: String,
    /// A JSON file with the entity, as an incoming configuration would receive it
    /// (`-` reads standard input).
    #[arg(long, required_unless_present = "task", conflicts_with = "task")]
    pub entity: Option<PathBuf>,
    /// Which of the route's incoming configurations receives it (default: its first).
    #[arg(long, conflicts_with = "task")]
    pub incoming: Option<String>,
    /// A stored task's identifier: its entity goes through the outgoing side.
    #[arg(long)]
    pub task: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args) -> Result<()> {
    let config = load_config(&args.config)?;
    let prepared = prepare(config, &args.config)?;
    let (input, store) = match (&args.entity, &args.task) {
        (Some(file), _) => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read the entity file {}", file.display()))?
            };
            let entity: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            // Nothing is stored: an empty store in memory stands in for the real one.
            let store = ferry_store::open("sqlite::memory:").await?;
            (
                TryInput::Entity {
                    entity,
                    incoming: args.incoming.clone(),
                },
                store,
            )
        }
        (None, Some(id)) => {
            let id = ferry_core::TaskId::parse(id)
                .map_err(|e| anyhow::anyhow!("'{id}' is not a task identifier: {e}"))?;
            let store = open_store(&prepared.config().storage, false).await?;
            (TryInput::Task(id), store)
        }
        (None, None) => bail!("give --entity FILE or --task ID"),
    };
    let engine = prepared.with_store(store);
    let report = engine.try_route(&args.route, input).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(())
}

fn step_lines(out: &mut String, n: &mut usize, steps: &[TryStep], indent: &str) {
    for s in steps {
        *n += 1;
        match &s.error {
            Some(e) => out.push_str(&format!(
                "{indent}{n}. {} {}: error: {e}\n",
                s.side, s.transformer
            )),
            None => {
                let note = s.note.as_deref().unwrap_or(&s.transformer);
                out.push_str(&format!("{indent}{n}. {}: {note}\n", s.side));
                for v in &s.outputs {
                    out.push_str(&format!("{indent}   {v}\n"));
                }
            }
        }
    }
}

/// The report as a person reads it.
pub fn text(r: &TryReport) -> String {
    let mut out = format!("route {}", r.route);
    if let Some(i) = &r.incoming {
        out.push_str(&format!(", through incoming {i}"));
    }
    out.push_str(" (nothing is stored or sent)\n");
    let mut n = 0;
    step_lines(&mut out, &mut n, &r.steps, "");
    if let Some(o) = &r.outcome {
        out.push_str(&format!("{o}\n"));
    }
    for (i, t) in r.tasks.iter().enumerate() {
        out.push_str(&format!(
            "task {} of {}: entity identifier {}\n",
            i + 1,
            r.tasks.len(),
            t.entity_identifier.as_deref().unwrap_or("(none)")
        ));
        let mut m = n;
        step_lines(&mut out, &mut m, &t.steps, "  ");
        out.push_str(&format!("  {}\n", t.outcome));
        if let Some(p) = &t.request {
            out.push_str(&format!("    {} {}\n", p.method, p.target));
            for h in &p.headers {
                out.push_str(&format!("    {}: {}\n", h.name, h.value));
            }
            out.push('\n');
            for line in p.body.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}
