//! `stoke dead-letters list|show|redrive`: the async events that failed for good (retries
//! exhausted, too old, function gone) and had no on-failure destination, through Stoke's own
//! signed API under `/stoke/2026-11-01/dead-letters`.

use anyhow::Context as _;
use reqwest::Method;
use serde_json::Value;

use super::ClientArgs;

const BASE: &str = "/stoke/2026-11-01/dead-letters";

/// Flags and subcommands of `stoke dead-letters`.
#[derive(Debug, clap::Args)]
pub struct DeadLettersArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: DeadLettersCommand,
}

/// What `stoke dead-letters` does.
#[derive(Debug, clap::Subcommand)]
pub enum DeadLettersCommand {
    /// List the dead letters, oldest first: id, function, condition, runs, request id.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one dead letter as JSON, with its payload and the last response.
    Show {
        /// The dead letter's id (from `list`).
        id: i64,
    },
    /// Put a dead letter back in the queue for another run (same request id).
    Redrive {
        /// The dead letter's id (from `list`).
        id: i64,
    },
}

/// Runs `stoke dead-letters …`.
pub async fn run(args: DeadLettersArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    match args.command {
        DeadLettersCommand::List { json } => {
            let mut all: Vec<Value> = Vec::new();
            let mut after = 0i64;
            loop {
                let page = client
                    .stoke_call(
                        Method::GET,
                        &format!("{BASE}?After={after}&MaxItems=1000"),
                        None,
                    )
                    .await
                    .context("cannot list the dead letters")?;
                let items = page["DeadLetters"].as_array().cloned().unwrap_or_default();
                let n = items.len();
                after = items.last().and_then(|d| d["Id"].as_i64()).unwrap_or(after);
                all.extend(items);
                if n < 1000 {
                    break;
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                eprintln!("no dead letters");
            } else {
                println!(
                    "{:<8} {:<32} {:<18} {:>5}  REQUEST ID",
                    "ID", "FUNCTION", "CONDITION", "RUNS"
                );
                for d in &all {
                    println!(
                        "{:<8} {:<32} {:<18} {:>5}  {}",
                        d["Id"],
                        d["FunctionName"].as_str().unwrap_or(""),
                        d["Condition"].as_str().unwrap_or(""),
                        d["ApproximateInvokeCount"],
                        d["RequestId"].as_str().unwrap_or(""),
                    );
                }
            }
        }
        DeadLettersCommand::Show { id } => {
            let d = client
                .stoke_call(Method::GET, &format!("{BASE}/{id}"), None)
                .await
                .with_context(|| format!("cannot read dead letter {id}"))?;
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
        DeadLettersCommand::Redrive { id } => {
            let d = client
                .stoke_call(Method::POST, &format!("{BASE}/{id}/redrive"), None)
                .await
                .with_context(|| format!("cannot redrive dead letter {id}"))?;
            println!("{}", d["RequestId"].as_str().unwrap_or(""));
            eprintln!("dead letter {id} is back in the queue");
        }
    }
    Ok(())
}
