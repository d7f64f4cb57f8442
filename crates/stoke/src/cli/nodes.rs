//! `stoke nodes`: the nodes of the cluster the server belongs to, one line each (id, `alive`
//! or `dead`, warm sandboxes, calls in flight, address, last heartbeat), through the admin
//! API's ListNodes (the admin account only). `--json` prints the server's list as it is.

use anyhow::Context as _;
use serde_json::Value;

use super::ClientArgs;

/// Flags of `stoke nodes`.
#[derive(Debug, clap::Args)]
pub struct NodesArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print JSON (the list of nodes) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One line of the table.
fn line(n: &Value) -> String {
    let me = if n["Self"].as_bool() == Some(true) {
        "  (this node)"
    } else {
        ""
    };
    let age = n["HeartbeatAgeMs"].as_i64().unwrap_or(0) as f64 / 1000.0;
    format!(
        "{:<36} {:<5} {:>5} {:>5}  {:<22} {age:>6.1}s ago{me}",
        n["NodeId"].as_str().unwrap_or(""),
        n["State"].as_str().unwrap_or(""),
        n["Warm"],
        n["Load"],
        n["Address"].as_str().unwrap_or(""),
    )
}

/// Runs `stoke nodes`.
pub async fn run(args: NodesArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    let all = client.list_nodes().await.context("cannot list the nodes")?;
    let nodes = all["Nodes"].as_array().cloned().unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(());
    }
    println!(
        "{:<36} {:<5} {:>5} {:>5}  {:<22} HEARTBEAT",
        "NODE", "STATE", "WARM", "LOAD", "ADDRESS"
    );
    for n in &nodes {
        println!("{}", line(n));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_line_says_the_id_the_state_warm_and_load_first() {
        let l = super::line(&json!({
            "NodeId": "node-a", "State": "dead", "Warm": 3, "Load": 1,
            "Address": "127.0.0.1:9000", "HeartbeatAgeMs": 12_500, "Self": false,
        }));
        let words: Vec<_> = l.split_whitespace().collect();
        assert_eq!(
            words,
            ["node-a", "dead", "3", "1", "127.0.0.1:9000", "12.5s", "ago"]
        );
    }
}
