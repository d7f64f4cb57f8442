//! `stoke`, the one binary: `stoke serve` runs the server; the other commands are a client of a
//! server's Lambda HTTP API (see [`cli`]).
//!
//! # Layout
//! - `main.rs`: the command line, logging set-up, and the one place errors become an exit code.
//! - [`serve`] — `stoke serve` ([`node`]: its flags as a node of a cluster; [`units`]: the
//!   durations and sizes its flags take); [`keys`], the master key that seals secrets at rest and the
//!   admin's credentials file.
//! - [`cli`] — `stoke deploy`, `stoke functions …`, `stoke versions`, `stoke publish`,
//!   `stoke alias …`, `stoke rollback`, `stoke invoke`, `stoke logs`, `stoke accounts …`,
//!   `stoke keys …`, `stoke nodes` (clients of the HTTP API)
//!   and `stoke bench`.

mod cli;
mod forward;
mod keys;
mod node;
mod serve;
mod store;
mod units;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Environment variable with the log filter (tracing's `EnvFilter` syntax).
const ENV_LOG: &str = "STOKE_LOG";

/// Stoke: a self-hostable platform that runs functions and speaks the AWS Lambda API.
#[derive(Debug, Parser)]
#[command(name = "stoke", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<serve::ServeArgs>),
    /// Create or update a function from a folder or a .zip, and wait until it is Active.
    Deploy(cli::deploy::DeployArgs),
    /// List, show or delete functions.
    Functions(cli::functions::FunctionsArgs),
    /// List a function's versions: $LATEST, then each published version.
    Versions(cli::versions::VersionsArgs),
    /// Publish a version of a function's $LATEST code and configuration.
    Publish(cli::versions::PublishArgs),
    /// Create, move, list or delete a function's aliases.
    Alias(cli::alias::AliasArgs),
    /// Move an alias back to the version it pointed at before its last change.
    Rollback(cli::alias::RollbackArgs),
    /// Invoke a function synchronously and print its output.
    Invoke(cli::invoke::InvokeArgs),
    /// Print a function's log lines, oldest first; --follow keeps printing new ones.
    Logs(cli::logs::LogsArgs),
    /// List, show or redrive the async events that failed for good.
    DeadLetters(cli::dead_letters::DeadLettersArgs),
    /// Create, list, show or delete accounts, or set their limits (the admin account only).
    Accounts(cli::accounts::AccountsArgs),
    /// Create, list or revoke an account's access keys (the admin account only).
    Keys(cli::accounts::KeysArgs),
    /// List the nodes of the server's cluster: id, alive or dead, warm sandboxes, load (the
    /// admin account only).
    Nodes(cli::nodes::NodesArgs),
    /// Start a server of its own and measure warm calls, cold starts and code updates.
    Bench(cli::bench::BenchArgs),
}

fn main() -> ExitCode {
    // A process sandbox's waiter runs this binary with a hidden first argument: it only waits
    // for the sandbox's PID 1, so it starts no runtime and parses no command line.
    if let Some(code) = stoke_sandbox::process::waiter_main() {
        return ExitCode::from(code);
    }
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        // Before the server opens anything: no descriptor it was started with (`7</`, a
        // pipe of the launching shell) may reach a sandbox or any other child.
        stoke_sandbox::process::mark_inherited_cloexec();
    }
    let filter = EnvFilter::try_from_env(ENV_LOG).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Deploy(args) => cli::deploy::run(args).await,
        Command::Functions(args) => cli::functions::run(args).await,
        Command::Versions(args) => cli::versions::run(args).await,
        Command::Publish(args) => cli::versions::publish(args).await,
        Command::Alias(args) => cli::alias::run(args).await,
        Command::Rollback(args) => cli::alias::rollback(args).await,
        Command::Invoke(args) => cli::invoke::run(args).await,
        Command::Logs(args) => cli::logs::run(args).await,
        Command::Bench(args) => cli::bench::run(args).await,
        Command::DeadLetters(args) => cli::dead_letters::run(args).await,
        Command::Accounts(args) => cli::accounts::run(args).await,
        Command::Keys(args) => cli::accounts::run_keys(args).await,
        Command::Nodes(args) => cli::nodes::run(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` joins the chain of causes with ": "; keep it on one line.
            let text = format!("{error:#}");
            eprintln!(
                "error: {}",
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn client_flags_work_before_and_after_the_functions_subcommand() {
        for argv in [
            &["stoke", "functions", "--endpoint-url", "http://h:1", "list"][..],
            &["stoke", "functions", "list", "--endpoint-url", "http://h:1"][..],
        ] {
            let cli = Cli::try_parse_from(argv).expect("parses");
            let Command::Functions(args) = cli.command else {
                panic!("not functions");
            };
            assert_eq!(
                args.client.endpoint_url.as_ref().map(|u| u.as_str()),
                Some("http://h:1/")
            );
        }
    }

    #[test]
    fn invoke_and_logs_take_their_flags() {
        let cli = Cli::try_parse_from([
            "stoke",
            "invoke",
            "hello",
            "--payload",
            "@event.json",
            "--log",
            "--qualifier",
            "$LATEST",
        ])
        .expect("parses");
        let Command::Invoke(args) = cli.command else {
            panic!("not invoke");
        };
        assert_eq!(args.payload.as_deref(), Some("@event.json"));
        assert!(args.log && !args.dry_run);

        let cli =
            Cli::try_parse_from(["stoke", "logs", "hello", "-f", "--since", "2h"]).expect("parses");
        let Command::Logs(args) = cli.command else {
            panic!("not logs");
        };
        assert!(args.follow);
        assert_eq!(
            args.since,
            Some(cli::logs::Since::Ago(std::time::Duration::from_secs(7200)))
        );
    }

    #[test]
    fn version_and_alias_commands_parse() {
        let cli = Cli::try_parse_from(["stoke", "versions", "f", "--endpoint-url", "http://h:1"])
            .expect("parses");
        let Command::Versions(args) = cli.command else {
            panic!("not versions");
        };
        assert_eq!(args.name, "f");
        let cli =
            Cli::try_parse_from(["stoke", "publish", "f", "--description", "d"]).expect("parses");
        let Command::Publish(args) = cli.command else {
            panic!("not publish");
        };
        assert_eq!(args.description.as_deref(), Some("d"));
        let cli = Cli::try_parse_from(["stoke", "alias", "list", "f"]).expect("parses");
        assert!(matches!(cli.command, Command::Alias(_)));
        let cli = Cli::try_parse_from(["stoke", "rollback", "f", "live"]).expect("parses");
        let Command::Rollback(args) = cli.command else {
            panic!("not rollback");
        };
        assert_eq!((args.name.as_str(), args.alias.as_str()), ("f", "live"));
        let cli = Cli::try_parse_from(["stoke", "deploy", "x.wasm", "--name", "f", "--publish"])
            .expect("parses");
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy");
        };
        assert!(args.publish);
    }

    #[test]
    fn bench_takes_a_list_of_client_counts() {
        let cli = Cli::try_parse_from(["stoke", "bench", "--clients", "1,4", "--duration", "2s"])
            .expect("parses");
        let Command::Bench(args) = cli.command else {
            panic!("not bench");
        };
        assert_eq!(args.clients, [1, 4]);
        assert_eq!(args.duration, std::time::Duration::from_secs(2));
        let cli = Cli::try_parse_from(["stoke", "bench"]).expect("parses");
        let Command::Bench(args) = cli.command else {
            panic!("not bench");
        };
        assert_eq!(args.clients, [1, 8, 64]);
        assert!(Cli::try_parse_from(["stoke", "bench", "--clients", "0"]).is_err());
    }

    #[test]
    fn serve_keeps_its_own_region_flag() {
        let cli = Cli::try_parse_from(["stoke", "serve", "--region", "eu-west-1"]).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.region, "eu-west-1");
    }
}
