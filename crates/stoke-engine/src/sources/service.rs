//! The event source mapping operations as the API calls them ([`Mappings`]): Create, Get,
//! Update, Delete and List, over the store, with the checks that need it (the function exists,
//! the destination is a function of the account, one mapping per function and source) after
//! [`super::rules`]' own. What the API answers as `State` is the transition; what is stored
//! is where a poller takes it from (`Creating`/`Enabling`/`Updating`, settled to `Enabled` by
//! the node that leases it) or `Disabled` for a mapping that is not enabled.

use std::sync::Arc;

use stoke_core::validate::{Violations, patterns};
use stoke_core::{AccountId, FunctionRef, LambdaError};
use stoke_store::mappings::Mapping;
use stoke_store::{Store, StoreError};

use super::rules::{self, MappingInput};
use crate::ControlPlane;
use crate::error::ControlError;
use crate::event_config::parse_function_destination;

/// Lambda's answer for a UUID that names no mapping of the caller.
pub const NOT_FOUND: &str = "The resource you requested does not exist.";

/// The most mappings one List answers.
pub const MAX_LIST: i64 = 10_000;

fn store_error(e: StoreError) -> LambdaError {
    LambdaError::from(ControlError::Store(e))
}

fn now() -> f64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9
}

/// A page of List.
#[derive(Debug, Clone)]
pub struct MappingPage {
    pub mappings: Vec<Mapping>,
    pub next_marker: Option<String>,
}

/// The operations on mappings.
pub struct Mappings {
    store: Arc<dyn Store>,
    control: Arc<ControlPlane>,
}

impl std::fmt::Debug for Mappings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mappings")
    }
}

impl Mappings {
    pub fn new(store: Arc<dyn Store>, control: Arc<ControlPlane>) -> Self {
        Self { store, control }
    }

    pub fn region(&self) -> &str {
        self.control.region()
    }

    /// The function a mapping's `FunctionName` names, checked to exist: (name, qualifier).
    async fn function(
        &self,
        account: &AccountId,
        raw: &str,
    ) -> Result<(String, Option<String>), LambdaError> {
        let fref =
            FunctionRef::parse("functionName", raw, patterns::NAMESPACED_FUNCTION_NAME, 256)?;
        let qualifier = fref.qualifier.clone();
        let f = self
            .control
            .get_function(account, raw, None)
            .await
            .map_err(LambdaError::from)?;
        Ok((f.name.as_str().to_owned(), qualifier))
    }

    /// The on-failure destination: a function of this account and region.
    fn check_destination(&self, account: &AccountId, m: &Mapping) -> Result<(), LambdaError> {
        let Some(arn) = &m.on_failure else {
            return Ok(());
        };
        let region = self.control.region();
        match parse_function_destination(arn) {
            Some((a, name, _))
                if a == account.as_str()
                    && arn.split(':').nth(3) == Some(region)
                    && !name.is_empty() =>
            {
                Ok(())
            }
            Some(_) => Err(LambdaError::InvalidParameterValue(format!(
                "The destination function {arn} must be in this account ({account}) and region \
                 ({region})."
            ))),
            None => Err(LambdaError::InvalidParameterValue(format!(
                "The destination ARN {arn} is invalid: Stoke supports Lambda function \
                 destinations only."
            ))),
        }
    }

    /// A `BASIC_AUTH`'s URI as Get shows it: the mapping's own secret ARN.
    fn name_secret(&self, m: &mut Mapping) {
        let arn = super::access::secret_arn(self.control.region(), &m.account, &m.uuid);
        for a in &mut m.access {
            if a.kind == super::access::BASIC_AUTH {
                a.uri.clone_from(&arn);
            }
        }
    }

    async fn owned(&self, account: &AccountId, uuid: &str) -> Result<Mapping, LambdaError> {
        match self.store.get_mapping(uuid).await.map_err(store_error)? {
            Some(m) if &m.account == account => Ok(m),
            _ => Err(LambdaError::ResourceNotFound(NOT_FOUND.into())),
        }
    }

    /// CreateEventSourceMapping: the mapping as answered (state `Creating`).
    pub async fn create(
        &self,
        account: &AccountId,
        input: &MappingInput,
    ) -> Result<Mapping, LambdaError> {
        let Some(raw) = input.function_name.as_deref() else {
            let mut v = Violations::new();
            v.not_null::<String>("functionName", None);
            v.into_result()?;
            return Err(LambdaError::InvalidParameterValue(
                "FunctionName is required.".into(),
            ));
        };
        // The model first, then what needs the store.
        let mut m = rules::create(input, account, "", None, now())?;
        self.name_secret(&mut m);
        let (name, qualifier) = self.function(account, raw).await?;
        m.function_name = name.clone();
        m.qualifier = qualifier;
        self.check_destination(account, &m)?;
        let same = self
            .store
            .list_mappings(account, Some(&name), Some(&m.source), None, 1)
            .await
            .map_err(store_error)?;
        if let Some(other) = same.first() {
            return Err(LambdaError::ResourceConflict(format!(
                "The event source arn (\" {} \") and function (\" {name} \") provided mapping \
                 already exists. Please update or delete the existing mapping with UUID {}",
                m.source, other.uuid
            )));
        }
        let answered = m.state.clone();
        if !m.enabled {
            m.state = "Disabled".into();
        }
        self.store.insert_mapping(&m).await.map_err(store_error)?;
        m.state = answered;
        Ok(m)
    }

    /// GetEventSourceMapping.
    pub async fn get(&self, account: &AccountId, uuid: &str) -> Result<Mapping, LambdaError> {
        self.owned(account, uuid).await
    }

    /// UpdateEventSourceMapping: the mapping as answered (state `Updating`, `Enabling` or
    /// `Disabling`).
    pub async fn update(
        &self,
        account: &AccountId,
        uuid: &str,
        input: &MappingInput,
    ) -> Result<Mapping, LambdaError> {
        let old = self.owned(account, uuid).await?;
        let mut m = rules::update(&old, input, now())?;
        self.name_secret(&mut m);
        if let Some(raw) = input.function_name.as_deref() {
            let (name, qualifier) = self.function(account, raw).await?;
            m.function_name = name;
            m.qualifier = qualifier;
        }
        self.check_destination(account, &m)?;
        let answered = m.state.clone();
        if !m.enabled {
            m.state = "Disabled".into();
        }
        self.store
            .replace_mapping(&m, &old.revision)
            .await
            .map_err(|e| match e {
                StoreError::Stale { .. } => LambdaError::ResourceConflict(
                    "The operation cannot be performed at this time. The event source mapping \
                     is being changed by another request. Try again."
                        .into(),
                ),
                StoreError::NotFound => LambdaError::ResourceNotFound(NOT_FOUND.into()),
                e => store_error(e),
            })?;
        m.state = answered;
        Ok(m)
    }

    /// DeleteEventSourceMapping: the mapping as it was, in state `Deleting`.
    pub async fn delete(&self, account: &AccountId, uuid: &str) -> Result<Mapping, LambdaError> {
        self.owned(account, uuid).await?;
        let mut m = self
            .store
            .delete_mapping(uuid)
            .await
            .map_err(store_error)?
            .ok_or_else(|| LambdaError::ResourceNotFound(NOT_FOUND.into()))?;
        m.state = "Deleting".into();
        Ok(m)
    }

    /// ListEventSourceMappings, by function (any form of its name) and by source.
    pub async fn list(
        &self,
        account: &AccountId,
        function: Option<&str>,
        source: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<MappingPage, LambdaError> {
        let mut v = Violations::new();
        if let Some(n) = max_items {
            v.range("maxItems", n, 1, MAX_LIST);
        }
        v.into_result()?;
        let name = match function {
            Some(raw) => Some(
                FunctionRef::parse("functionName", raw, patterns::NAMESPACED_FUNCTION_NAME, 256)?
                    .name
                    .as_str()
                    .to_owned(),
            ),
            None => None,
        };
        let limit = u32::try_from(max_items.unwrap_or(100)).unwrap_or(100);
        let mut mappings = self
            .store
            .list_mappings(
                account,
                name.as_deref(),
                source,
                marker.filter(|m| !m.is_empty()),
                limit.saturating_add(1),
            )
            .await
            .map_err(store_error)?;
        let more = mappings.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        mappings.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_marker = if more {
            mappings.last().map(|m| m.uuid.clone())
        } else {
            None
        };
        Ok(MappingPage {
            mappings,
            next_marker,
        })
    }
}
