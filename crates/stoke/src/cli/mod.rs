//! The command-line client of the `stoke` binary: the commands that talk to a Stoke server over
//! the same Lambda HTTP API that boto3 uses, so they work against a remote server as well.
//!
//! # Layout
//! - [`package`] — folder zipping (deterministic) and default handlers.
//! - [`deploy`] — `stoke deploy`, create or update then wait until Active.
//! - [`functions`] — `stoke functions list|get|delete`.
//! - [`versions`] — `stoke versions` (a function's versions) and `stoke publish`.
//! - [`alias`] — `stoke alias set|list|delete` and `stoke rollback`.
//! - [`invoke`] — `stoke invoke`, one synchronous call.
//! - [`dead_letters`] — `stoke dead-letters list|show|redrive`, the async events that failed.
//! - [`accounts`] — `stoke accounts …` and `stoke keys …`, the admin API (admin account only).
//! - [`nodes`] — `stoke nodes`, the cluster's nodes (admin account only).
//! - [`logs`] — `stoke logs`, a function's log lines through the CloudWatch Logs API.
//! - [`bench`] — `stoke bench`'s flags; the benchmark itself is the `stoke-bench` crate.
//!
//! The API client and the credential chain are the `stoke-client` crate.
//!
//! Every command that calls the server flattens [`ClientArgs`], so `--endpoint-url` and
//! `--region` are spelled the same everywhere (they are not top-level flags because
//! `stoke serve` has a `--region` of its own, for the ARNs it makes).

pub mod accounts;
pub mod alias;
pub mod bench;
pub mod dead_letters;
pub mod deploy;
pub mod functions;
pub mod invoke;
pub mod logs;
pub mod nodes;
pub mod package;
pub mod versions;

use std::path::PathBuf;

use anyhow::Context as _;
use reqwest::Url;
use stoke_client::LambdaClient;
use stoke_client::credentials::{self, Env, ProcessEnv};

/// Endpoint variables the AWS SDKs and CLI read, consulted after `STOKE_ENDPOINT` so that the two
/// lines `stoke serve` prints work for this CLI too (the Lambda-specific one first).
const ENV_ENDPOINTS: [&str; 2] = ["AWS_ENDPOINT_URL_LAMBDA", "AWS_ENDPOINT_URL"];
/// Region variable of the AWS CLI, consulted after `AWS_REGION`.
const ENV_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// The endpoint when nothing names one: `stoke serve`'s default listen address.
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9000";
/// The region when nothing names one: `stoke serve`'s default.
const DEFAULT_REGION: &str = "us-east-1";

/// Where the server is and which region requests are signed for.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// URL of the Stoke server (http only) [default: $AWS_ENDPOINT_URL_LAMBDA, $AWS_ENDPOINT_URL,
    /// or http://127.0.0.1:9000]
    #[arg(long, env = "STOKE_ENDPOINT", global = true, value_name = "URL")]
    pub endpoint_url: Option<Url>,
    /// Region the requests are signed for; must match the server's --region [default:
    /// $AWS_DEFAULT_REGION, or us-east-1]
    #[arg(long, env = "AWS_REGION", global = true)]
    pub region: Option<String>,
}

impl ClientArgs {
    /// The endpoint and region: the flags (or `STOKE_ENDPOINT`/`AWS_REGION`), else the AWS
    /// variables read through `env`, else `stoke serve`'s defaults.
    pub fn endpoint_and_region(&self, env: &impl Env) -> anyhow::Result<(Url, String)> {
        let endpoint = match &self.endpoint_url {
            Some(url) => url.clone(),
            None => {
                let (name, value) = ENV_ENDPOINTS
                    .iter()
                    .find_map(|name| env.var(name).map(|v| (*name, v)))
                    .unwrap_or(("the default endpoint", DEFAULT_ENDPOINT.to_owned()));
                Url::parse(&value).with_context(|| format!("{name} {value:?} is not a URL"))?
            }
        };
        let region = self
            .region
            .clone()
            .or_else(|| env.var(ENV_DEFAULT_REGION))
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        Ok((endpoint, region))
    }

    /// A client for the endpoint, with credentials from the chain in [`credentials`].
    pub fn client(&self) -> anyhow::Result<LambdaClient> {
        let (endpoint, region) = self.endpoint_and_region(&ProcessEnv)?;
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let credentials = credentials::resolve(&ProcessEnv, &cwd)?;
        tracing::debug!(
            %endpoint,
            %region,
            access_key_id = %credentials.access_key_id,
            source = %credentials.source,
            "client"
        );
        LambdaClient::new(endpoint, region, credentials).context("cannot use the endpoint")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn args(endpoint: Option<&str>, region: Option<&str>) -> ClientArgs {
        ClientArgs {
            endpoint_url: endpoint.map(|e| Url::parse(e).expect("url")),
            region: region.map(str::to_owned),
        }
    }

    #[test]
    fn flags_win_over_the_aws_variables() {
        let env = BTreeMap::from([
            ("AWS_ENDPOINT_URL", "http://aws:1"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        let (url, region) = args(Some("http://flag:2"), Some("ap-south-1"))
            .endpoint_and_region(&env)
            .expect("ok");
        assert_eq!(
            (url.as_str(), region.as_str()),
            ("http://flag:2/", "ap-south-1")
        );
    }

    #[test]
    fn aws_variables_fill_in_what_the_flags_leave_out() {
        let env = BTreeMap::from([
            ("AWS_ENDPOINT_URL", "http://aws:1"),
            ("AWS_ENDPOINT_URL_LAMBDA", "http://lambda:3"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        let (url, region) = args(None, None).endpoint_and_region(&env).expect("ok");
        assert_eq!(
            (url.as_str(), region.as_str()),
            ("http://lambda:3/", "eu-west-1")
        );
    }

    #[test]
    fn defaults_are_those_of_stoke_serve() {
        let env = BTreeMap::<&str, &str>::new();
        let (url, region) = args(None, None).endpoint_and_region(&env).expect("ok");
        assert_eq!(
            (url.as_str(), region.as_str()),
            ("http://127.0.0.1:9000/", "us-east-1")
        );
    }

    #[test]
    fn a_bad_endpoint_variable_is_named_in_the_error() {
        let env = BTreeMap::from([("AWS_ENDPOINT_URL", "not a url")]);
        let err = args(None, None).endpoint_and_region(&env).expect_err("bad");
        assert!(err.to_string().contains("AWS_ENDPOINT_URL"), "{err}");
    }
}
