//! `stoke accounts create|list|show|delete|set-limits` and `stoke keys create|list|revoke`:
//! clients of the admin API (`/stoke/admin/...`), which only the admin account (the key the
//! server's first start wrote to its `credentials` file) may call. A secret is printed once,
//! when its key is made, and never again.

use anyhow::Context as _;
use serde_json::{Value, json};

use super::ClientArgs;

/// Flags and subcommands of `stoke accounts`.
#[derive(Debug, clap::Args)]
pub struct AccountsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: AccountsCommand,
}

/// What `stoke accounts` does.
#[derive(Debug, clap::Subcommand)]
pub enum AccountsCommand {
    /// Create an account and its first access key; prints the account id and the key (the
    /// secret is shown only now).
    Create {
        /// A unique name: letters, digits, '-', '_' or '.', not only digits.
        name: String,
        /// Print one JSON object {"AccountId", "AccessKeyId", "SecretAccessKey"} (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// List the accounts: id, name, concurrency limit.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one account (by id or name) as JSON: its keys, limits and usage.
    Show {
        /// The account's id or name.
        account: String,
    },
    /// Delete an account and its keys (refused while it owns functions).
    Delete {
        /// The account's id or name.
        account: String,
    },
    /// Set an account's limits.
    SetLimits {
        /// The account's id or name.
        account: String,
        /// Calls of the account's functions that may run at once; `default` for the server's.
        #[arg(long, value_name = "N|default")]
        concurrency: String,
    },
}

/// Flags and subcommands of `stoke keys`.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// What `stoke keys` does.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create an access key for an account (at most 2 each); the secret is shown only now.
    Create {
        /// The account's id or name.
        account: String,
        /// Print one JSON object {"AccountId", "AccessKeyId", "SecretAccessKey"}.
        #[arg(long)]
        json: bool,
    },
    /// List an account's access keys (no secrets).
    List {
        /// The account's id or name.
        account: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an access key: the next request signed with it is refused.
    Revoke {
        /// The account's id or name.
        account: String,
        /// The access key id (AKIA…).
        access_key_id: String,
    },
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or("")
}

/// Prints a new key: one JSON object, or lines for a person.
fn print_key(account: &str, key: &Value, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let out = json!({
            "AccountId": account,
            "AccessKeyId": text(key, "AccessKeyId"),
            "SecretAccessKey": text(key, "SecretAccessKey"),
        });
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("account        {account}");
        println!("access key id  {}", text(key, "AccessKeyId"));
        println!("secret key     {}", text(key, "SecretAccessKey"));
        eprintln!("the secret key is shown only now: keep it");
    }
    Ok(())
}

/// Runs `stoke accounts …`.
pub async fn run(args: AccountsArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    match args.command {
        AccountsCommand::Create { name, json } => {
            let made = client
                .create_account(&name)
                .await
                .with_context(|| format!("cannot create account {name}"))?;
            print_key(
                text(&made["Account"], "AccountId"),
                &made["AccessKey"],
                json,
            )?;
        }
        AccountsCommand::List { json } => {
            let all = client
                .list_accounts()
                .await
                .context("cannot list the accounts")?;
            let items = all["Accounts"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                println!("{:<14} {:<32} {:>11}", "ACCOUNT", "NAME", "CONCURRENCY");
                for a in &items {
                    let admin = if a["Admin"].as_bool() == Some(true) {
                        "  (admin)"
                    } else {
                        ""
                    };
                    println!(
                        "{:<14} {:<32} {:>11}{admin}",
                        text(a, "AccountId"),
                        text(a, "AccountName"),
                        a["ConcurrentExecutions"],
                    );
                }
            }
        }
        AccountsCommand::Show { account } => {
            let a = client
                .get_account(&account)
                .await
                .with_context(|| format!("cannot read account {account}"))?;
            println!("{}", serde_json::to_string_pretty(&a)?);
        }
        AccountsCommand::Delete { account } => {
            client
                .delete_account(&account)
                .await
                .with_context(|| format!("cannot delete account {account}"))?;
            eprintln!("account {account} deleted, with its access keys");
        }
        AccountsCommand::SetLimits {
            account,
            concurrency,
        } => {
            let limit = match concurrency.as_str() {
                "default" => None,
                n => Some(n.parse::<u32>().with_context(|| {
                    format!("--concurrency {n:?} is neither a number nor `default`")
                })?),
            };
            let a = client
                .set_account_limits(&account, limit)
                .await
                .with_context(|| format!("cannot set the limits of account {account}"))?;
            println!("{}", serde_json::to_string_pretty(&a["Account"])?);
        }
    }
    Ok(())
}

/// Runs `stoke keys …`.
pub async fn run_keys(args: KeysArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    match args.command {
        KeysCommand::Create { account, json } => {
            let made = client
                .create_access_key(&account)
                .await
                .with_context(|| format!("cannot create an access key for account {account}"))?;
            let key = &made["AccessKey"];
            print_key(text(key, "AccountId"), key, json)?;
        }
        KeysCommand::List { account, json } => {
            let all = client
                .list_access_keys(&account)
                .await
                .with_context(|| format!("cannot list the access keys of account {account}"))?;
            let items = all["AccessKeys"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                println!("{:<22} {:<8} CREATED", "ACCESS KEY ID", "STATUS");
                for k in &items {
                    println!(
                        "{:<22} {:<8} {}",
                        text(k, "AccessKeyId"),
                        text(k, "Status"),
                        text(k, "CreateDate")
                    );
                }
            }
        }
        KeysCommand::Revoke {
            account,
            access_key_id,
        } => {
            client
                .delete_access_key(&account, &access_key_id)
                .await
                .with_context(|| format!("cannot revoke access key {access_key_id}"))?;
            eprintln!("access key {access_key_id} revoked");
        }
    }
    Ok(())
}
