//! `stoke schedules list|show`: EventBridge Scheduler's schedules through the same API boto3's
//! `scheduler` client uses, with their next runs computed from the expression, time zone and
//! dates the server answers (the rules of `stoke_core::schedule`).

use anyhow::Context as _;
use serde_json::Value;
use stoke_client::LambdaClient;
use stoke_engine::schedules::ScheduleSpec;
use stoke_engine::schedules::spec::seconds_to_ms;

use super::ClientArgs;

/// Flags and subcommands of `stoke schedules`.
#[derive(Debug, clap::Args)]
pub struct SchedulesArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: SchedulesCommand,
}

/// What `stoke schedules` does.
#[derive(Debug, clap::Subcommand)]
pub enum SchedulesCommand {
    /// List the schedules: group, name, state, expression and the next run.
    List {
        /// Only this schedule group's.
        #[arg(long)]
        group: Option<String>,
    },
    /// Show one schedule: its expression, time zone, target and next runs.
    Show {
        name: String,
        /// The schedule's group [default: default].
        #[arg(long)]
        group: Option<String>,
        /// How many next runs to print.
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
}

/// The next `n` runs of a GetSchedule answer, as printed lines; none for a schedule that is
/// disabled or has no run left.
fn next_runs(got: &Value, n: usize) -> anyhow::Result<Vec<String>> {
    let spec: ScheduleSpec =
        serde_json::from_value(got.clone()).context("the schedule's answer does not parse")?;
    let created = got["CreationDate"].as_f64().map_or(0, seconds_to_ms);
    let timing = spec
        .timing(created)
        .map_err(|e| anyhow::anyhow!("the schedule's expression: {e}"))?;
    if got["State"] == "DISABLED" {
        return Ok(Vec::new());
    }
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    Ok(timing
        .upcoming(now, n)
        .into_iter()
        .map(|t| timing.show(t))
        .collect())
}

async fn all_schedules(client: &LambdaClient, group: Option<&str>) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_schedules(group, next.as_deref())
            .await
            .context("cannot list the schedules")?;
        out.extend(page["Schedules"].as_array().cloned().unwrap_or_default());
        match page["NextToken"].as_str() {
            Some(t) => next = Some(t.to_owned()),
            None => return Ok(out),
        }
    }
}

/// Runs `stoke schedules …`.
pub async fn run(args: SchedulesArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    match args.command {
        SchedulesCommand::List { group } => {
            let all = all_schedules(&client, group.as_deref()).await?;
            if all.is_empty() {
                eprintln!("no schedules");
                return Ok(());
            }
            println!(
                "{:<16} {:<24} {:<9} {:<28} NEXT RUN",
                "GROUP", "NAME", "STATE", "EXPRESSION"
            );
            for s in &all {
                let name = s["Name"].as_str().unwrap_or_default();
                let g = s["GroupName"].as_str().unwrap_or_default();
                let got = client
                    .get_schedule(name, Some(g))
                    .await
                    .with_context(|| format!("cannot read schedule {g}/{name}"))?;
                let next = next_runs(&got, 1)?
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<16} {:<24} {:<9} {:<28} {next}",
                    g,
                    name,
                    got["State"].as_str().unwrap_or_default(),
                    got["ScheduleExpression"].as_str().unwrap_or_default(),
                );
            }
        }
        SchedulesCommand::Show { name, group, count } => {
            let got = client
                .get_schedule(&name, group.as_deref())
                .await
                .with_context(|| format!("cannot read schedule {name}"))?;
            let field = |k: &str| got[k].as_str().unwrap_or("-").to_owned();
            println!("Name:        {}/{}", field("GroupName"), field("Name"));
            println!("Arn:         {}", field("Arn"));
            println!("State:       {}", field("State"));
            println!("Expression:  {}", field("ScheduleExpression"));
            println!("Time zone:   {}", field("ScheduleExpressionTimezone"));
            println!(
                "Target:      {}",
                got["Target"]["Arn"].as_str().unwrap_or("-")
            );
            println!("Next runs:");
            let runs = next_runs(&got, count)?;
            if runs.is_empty() {
                println!("  (none)");
            }
            for r in runs {
                println!("  {r}");
            }
        }
    }
    Ok(())
}
