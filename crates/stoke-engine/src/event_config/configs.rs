//! The stored event-invoke configurations: Put/Get/Update/Delete/List
//! (`PutFunctionEventInvokeConfig` and its siblings, answered with the qualified ARN they
//! apply to) and [`EventConfigs::for_event`], the read the async workers make for every event,
//! cached for a second. Every write through here forgets the cached entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stoke_core::{AccountId, LambdaError};
use stoke_store::StoreError;
use stoke_store::queue::{EventInvokeConfig, Queue};

use super::rules::{self, EventConfigInput};
use crate::error::ControlError;
use crate::invoke::Invoker;

/// How long a cached event-invoke config is used before it is read again.
const CONFIG_TTL: Duration = Duration::from_secs(1);

/// The most configurations cached; past it the cache starts again.
const CACHED: usize = 10_000;

/// (account, function, qualifier).
type Key = (String, String, String);

/// (account, function, qualifier) → when it was read, and what.
type ConfigCache = HashMap<Key, (Instant, Option<EventInvokeConfig>)>;

fn key(account: &AccountId, name: &str, qualifier: &str) -> Key {
    (
        account.as_str().to_owned(),
        name.to_owned(),
        qualifier.to_owned(),
    )
}

/// The engine's one answer to a failed store (logged there).
fn store_error(e: StoreError) -> LambdaError {
    ControlError::from(e).into()
}

/// How AWS answers an event-invoke-config operation on a function that does not exist: Put,
/// Update and List say the function is missing; Get and Delete that it has no configuration.
#[derive(Debug, Clone, Copy)]
enum Missing {
    Function,
    Config,
}

fn not_configured(arn: &str) -> LambdaError {
    LambdaError::ResourceNotFound(format!(
        "The function {arn} doesn't have an EventInvokeConfig"
    ))
}

/// Event-invoke configurations, as the API and the async workers see them.
pub struct EventConfigs {
    queue: Arc<dyn Queue>,
    invoker: Arc<Invoker>,
    region: String,
    /// Configurations read recently (for [`CONFIG_TTL`]: a deleted function takes its
    /// configuration with it in the store, which this cache does not hear about).
    cache: Mutex<ConfigCache>,
}

impl std::fmt::Debug for EventConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventConfigs")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl EventConfigs {
    pub fn new(queue: Arc<dyn Queue>, invoker: Arc<Invoker>, region: String) -> Self {
        Self {
            queue,
            invoker,
            region,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn forget(&self, account: &AccountId, name: &str, qualifier: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(&key(account, name, qualifier));
        }
    }

    /// The configuration that applies to an event of `function_name:qualifier` (cached for
    /// [`CONFIG_TTL`]); `None` (Lambda's defaults) when there is none or the store failed.
    pub async fn for_event(
        &self,
        account: &AccountId,
        function_name: &str,
        qualifier: &str,
    ) -> Option<EventInvokeConfig> {
        let k = key(account, function_name, qualifier);
        if let Some((at, c)) = self.cache.lock().ok().and_then(|c| c.get(&k).cloned())
            && at.elapsed() < CONFIG_TTL
        {
            return c;
        }
        match self
            .queue
            .get_event_config(account, function_name, qualifier)
            .await
        {
            Ok(c) => {
                if let Ok(mut m) = self.cache.lock() {
                    if m.len() > CACHED {
                        m.clear();
                    }
                    m.insert(k, (Instant::now(), c.clone()));
                }
                c
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading an event-invoke config failed; defaults apply");
                None
            }
        }
    }

    /// The function an operation names: (canonical name, unqualified ARN). A function, version
    /// or alias that does not exist is answered as AWS answers it for the operation (`missing`).
    async fn function(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: Option<&str>,
        missing: Missing,
        action: &str,
    ) -> Result<(String, String), LambdaError> {
        let control = self.invoker.control();
        // The name's own faults (its pattern, another region) come first, in their own words;
        // another account's configurations are its own.
        let fref = control.own_ref(account, function, qualifier, action)?;
        match control.get_function(account, function, qualifier).await {
            Ok(f) => Ok((f.name.as_str().to_owned(), f.arn(&self.region))),
            Err(e) => Err(match LambdaError::from(e) {
                LambdaError::ResourceNotFound(_) => match missing {
                    Missing::Function => {
                        LambdaError::ResourceNotFound("The function doesn't exist.".into())
                    }
                    Missing::Config => not_configured(&format!(
                        "{}:{}",
                        stoke_core::ids::function_arn(&self.region, account, fref.name.as_str()),
                        rules::event_qualifier(fref.qualifier.as_deref())
                    )),
                },
                other => other,
            }),
        }
    }

    /// The configuration an operation names: (canonical name, qualifier, qualified ARN).
    async fn target(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: Option<&str>,
        missing: Missing,
        action: &str,
    ) -> Result<(String, String, String), LambdaError> {
        let (name, arn) = self
            .function(account, function, qualifier, missing, action)
            .await?;
        let q = rules::event_qualifier(qualifier);
        let qualified = format!("{arn}:{q}");
        Ok((name, q, qualified))
    }

    /// A destination function must exist and must not be the function itself, as on AWS.
    async fn check_destinations(
        &self,
        account: &AccountId,
        name: &str,
        input: &EventConfigInput,
    ) -> Result<(), LambdaError> {
        let Some(d) = &input.destination_config else {
            return Ok(());
        };
        for arn in [&d.on_success, &d.on_failure]
            .into_iter()
            .filter_map(|a| a.as_ref().and_then(Option::as_deref))
            .filter(|a| !a.is_empty())
        {
            let Some((_, dest, q)) = rules::parse_function_destination(arn) else {
                continue;
            };
            let invalid = || {
                LambdaError::InvalidParameterValue(format!("The destination ARN {arn} is invalid."))
            };
            let qualifier = (q != stoke_core::LATEST).then_some(q.as_str());
            let found = match self
                .invoker
                .control()
                .get_function(account, &dest, qualifier)
                .await
            {
                Ok(f) => f,
                Err(ControlError::Request(LambdaError::ResourceNotFound(_))) => {
                    return Err(invalid());
                }
                Err(e) => return Err(e.into()),
            };
            if found.name.as_str() == name {
                return Err(LambdaError::InvalidParameterValue(
                    "You can't specify the function as a destination for itself.".into(),
                ));
            }
        }
        Ok(())
    }

    /// PutFunctionEventInvokeConfig (`replace`) or UpdateFunctionEventInvokeConfig.
    pub async fn put(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: Option<&str>,
        input: &EventConfigInput,
        replace: bool,
    ) -> Result<(EventInvokeConfig, String), LambdaError> {
        rules::validate(input, account.as_str(), &self.region)?;
        rules::check_something_to_set(input)?;
        let (name, q, arn) = self
            .target(
                account,
                function,
                qualifier,
                Missing::Function,
                if replace {
                    "lambda:PutFunctionEventInvokeConfig"
                } else {
                    "lambda:UpdateFunctionEventInvokeConfig"
                },
            )
            .await?;
        self.check_destinations(account, &name, input).await?;
        let old = self
            .queue
            .get_event_config(account, &name, &q)
            .await
            .map_err(store_error)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let base = EventInvokeConfig {
            account: account.clone(),
            function_name: name.clone(),
            qualifier: q.clone(),
            maximum_retry_attempts: None,
            maximum_event_age_seconds: None,
            on_success: None,
            on_failure: None,
            last_modified: now,
        };
        let mut c = match (replace, old) {
            (true, _) => rules::put(base, input, &self.region)?,
            (false, Some(old)) => rules::update(old, input, &self.region)?,
            (false, None) => return Err(not_configured(&arn)),
        };
        c.last_modified = now;
        self.queue.put_event_config(&c).await.map_err(store_error)?;
        self.forget(account, &name, &q);
        Ok((c, arn))
    }

    /// GetFunctionEventInvokeConfig.
    pub async fn get(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<(EventInvokeConfig, String), LambdaError> {
        let (name, q, arn) = self
            .target(
                account,
                function,
                qualifier,
                Missing::Config,
                "lambda:GetFunctionEventInvokeConfig",
            )
            .await?;
        match self
            .queue
            .get_event_config(account, &name, &q)
            .await
            .map_err(store_error)?
        {
            Some(c) => Ok((c, arn)),
            None => Err(not_configured(&arn)),
        }
    }

    /// DeleteFunctionEventInvokeConfig.
    pub async fn delete(
        &self,
        account: &AccountId,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<(), LambdaError> {
        let (name, q, arn) = self
            .target(
                account,
                function,
                qualifier,
                Missing::Config,
                "lambda:DeleteFunctionEventInvokeConfig",
            )
            .await?;
        let existed = self
            .queue
            .delete_event_config(account, &name, &q)
            .await
            .map_err(store_error)?;
        self.forget(account, &name, &q);
        if existed {
            Ok(())
        } else {
            Err(not_configured(&arn))
        }
    }

    /// ListFunctionEventInvokeConfigs: a function's configurations with their qualified ARNs.
    pub async fn list(
        &self,
        account: &AccountId,
        function: &str,
    ) -> Result<Vec<(EventInvokeConfig, String)>, LambdaError> {
        let (name, arn) = self
            .function(
                account,
                function,
                None,
                Missing::Function,
                "lambda:ListFunctionEventInvokeConfigs",
            )
            .await?;
        let list = self
            .queue
            .list_event_configs(account, &name)
            .await
            .map_err(store_error)?;
        Ok(list
            .into_iter()
            .map(|c| {
                let a = format!("{arn}:{}", c.qualifier);
                (c, a)
            })
            .collect())
    }
}
