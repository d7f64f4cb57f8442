//! AWS Signature Version 4, checked on every API request.
//!
//! # Layout
//! - this file: [`Authenticator`] (who signed a request, and whether it may be believed) and
//!   [`Caller`], what a handler is told: the account, and whether an account key or a
//!   function's session ([`Principal`]) signed.
//! - `parse`: reading the claim out of the request, in the header form
//!   (`Authorization: AWS4-HMAC-SHA256 …`) or the presigned query form (`X-Amz-Signature`,
//!   `X-Amz-Expires` from 1 s to a week, as AWS bounds it).
//! - `sign`: the signature recomputed with the `aws-sigv4` crate (the signer the AWS SDKs use)
//!   over exactly what the caller says it signed.
//! - `fuzz`: property tests: no input to the parsers or the canonical request panics or hangs.
//!
//! What fails gets the error AWS answers: no claim at all is
//! `MissingAuthenticationTokenException`, a malformed one `IncompleteSignatureException`, an
//! unknown key or a token that is not ours `UnrecognizedClientException`, an expired session
//! token `ExpiredTokenException`, a wrong signature, another region or service, a date more
//! than 5 minutes away (either side) or a presigned URL past its `X-Amz-Expires`
//! `InvalidSignatureException`; all 403.
//!
//! The keys: an account's access key (`AKIA…`) is looked up in the store; a function's
//! (`ASIA…`) comes with its `X-Amz-Security-Token`, which the engine's
//! [`FunctionCredentials`] verify without a lookup (any node with the same key can).
//!
//! The check is split in two so that no body is read for a request that cannot be genuine:
//! [`Authenticator::check_headers`] checks all the headers and the query can show (one claim,
//! one `X-Amz-Date`, one `Host`, the scope, a known key, the time), and [`Claim::verify`]
//! recomputes the signature, which covers the body's hash, once the body is in. A request with
//! two `Authorization` headers (or two of another header every signature covers, or both
//! forms at once) is ambiguous: it is refused as `IncompleteSignatureException`, never judged
//! by its first.

mod parse;
mod sign;

#[cfg(test)]
mod fuzz;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::request::Parts;
use stoke_core::{AccountId, LambdaError};
use stoke_engine::accounts::Accounts;
use stoke_engine::credentials::{FunctionCredentials, SessionError};
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;

pub use parse::{Form, MAX_EXPIRES, MIN_EXPIRES, Signed, claimed_service};
use parse::{amz_date, claim_of, incomplete, parse_amz_date};

/// The region and service a request must be signed for.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// What kind of credentials signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An access key of the account (`AKIA…`): the account itself, as AWS's root credentials.
    AccountKey,
    /// A function's short-lived credentials (`ASIA…` with a session token), as Lambda's
    /// execution role gives them: an assumed-role session named after the function.
    FunctionSession {
        function_name: String,
        role_name: String,
    },
}

/// Who made a request, once its signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: AccountId,
    pub access_key_id: String,
    pub principal: Principal,
}

impl Caller {
    /// The function whose credentials signed the request, if a function's did.
    pub fn function_name(&self) -> Option<&str> {
        match &self.principal {
            Principal::AccountKey => None,
            Principal::FunctionSession { function_name, .. } => Some(function_name),
        }
    }
}

/// Checks signatures against the engine's access keys and the function credentials it mints.
#[derive(Clone)]
pub struct Authenticator {
    accounts: Arc<Accounts>,
    sessions: Arc<FunctionCredentials>,
    max_skew: Duration,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("max_skew", &self.max_skew)
            .finish()
    }
}

const MISMATCH: &str = "The request signature we calculated does not match the signature you \
    provided. Check your AWS Secret Access Key and signing method. Consult the service \
    documentation for details.";
const INVALID_TOKEN: &str = "The security token included in the request is invalid.";
const EXPIRED_TOKEN: &str = "The security token included in the request is expired";

/// `15 min.` or `90 sec.`, as AWS words a window.
fn window(secs: i64) -> String {
    if secs % 60 == 0 {
        format!("{} min.", secs / 60)
    } else {
        format!("{secs} sec.")
    }
}

impl Authenticator {
    pub fn new(accounts: Arc<Accounts>, sessions: Arc<FunctionCredentials>) -> Self {
        Self {
            accounts,
            sessions,
            max_skew: Duration::from_secs(300),
        }
    }

    /// Checks the request's signature at time `now`; answers who signed it.
    pub async fn verify(
        &self,
        parts: &Parts,
        body: &[u8],
        now: SystemTime,
        scope: Scope<'_>,
    ) -> Result<Caller, LambdaError> {
        let claim = self.check_headers(parts, now, scope).await?;
        claim.verify(parts, body)
    }

    /// Checks everything the headers and the query can show, before a byte of the body is
    /// read: one well-formed claim (an `Authorization` header or a presigned query, not
    /// both), its date within the skew (a presigned one within its `X-Amz-Expires`), the
    /// scope's region and service, and a known access key or a valid session token. What is
    /// left, the signature itself (it covers the body's hash), is [`Claim::verify`].
    pub async fn check_headers(
        &self,
        parts: &Parts,
        now: SystemTime,
        scope: Scope<'_>,
    ) -> Result<Claim, LambdaError> {
        let Some(signed) = claim_of(parts)? else {
            return Err(LambdaError::MissingAuthenticationToken(
                "Missing Authentication Token".into(),
            ));
        };
        if signed.region != scope.region {
            return Err(LambdaError::InvalidSignature(format!(
                "Credential should be scoped to a valid region. (got {}, this server is {})",
                signed.region, scope.region
            )));
        }
        if signed.service != scope.service {
            return Err(LambdaError::InvalidSignature(format!(
                "Credential should be scoped to correct service: '{}'. ",
                scope.service
            )));
        }
        let date = &signed.amz_date;
        let signed_at = parse_amz_date(date)
            .ok_or_else(|| incomplete(format!("Invalid X-Amz-Date: {date}")))?;

        let (caller, secret) = self.identify(&signed, now).await?;

        let now = OffsetDateTime::from(now);
        let skew = time::Duration::try_from(self.max_skew).unwrap_or(time::Duration::minutes(5));
        // A presigned request is good from its date until its X-Amz-Expires; a header one
        // within the skew either side.
        let (earliest, window_text) = match signed.expires {
            Some(expires) => (
                now - time::Duration::seconds(expires),
                format!("{} - {}", amz_date(now), window(expires)),
            ),
            None => (
                now - skew,
                format!("{} - {}", amz_date(now), window(skew.whole_seconds())),
            ),
        };
        if signed_at < earliest {
            return Err(LambdaError::InvalidSignature(format!(
                "Signature expired: {date} is now earlier than {} ({window_text})",
                amz_date(earliest)
            )));
        }
        if signed_at > now + skew {
            return Err(LambdaError::InvalidSignature(format!(
                "Signature not yet current: {date} is still later than {} ({} + {})",
                amz_date(now + skew),
                amz_date(now),
                window(skew.whole_seconds())
            )));
        }
        if !date.starts_with(&signed.date) || signed.date.len() != 8 {
            return Err(LambdaError::InvalidSignature(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{}', from '{}'.",
                signed.date,
                date.get(..8).unwrap_or(date),
                date
            )));
        }
        Ok(Claim {
            signed,
            secret,
            caller,
            signed_at,
        })
    }

    /// Who the claim's key stands for, and the secret it must have signed with: an account's
    /// access key from the store, or a function's session from its token.
    async fn identify(
        &self,
        signed: &Signed,
        now: SystemTime,
    ) -> Result<(Caller, String), LambdaError> {
        let invalid = || LambdaError::UnrecognizedClient(INVALID_TOKEN.into());
        let is_session = signed.access_key_id.starts_with("ASIA");
        match (&signed.token, is_session) {
            (Some(token), true) => {
                let s = self
                    .sessions
                    .verify(&signed.access_key_id, token, now)
                    .map_err(|e| match e {
                        SessionError::Invalid => invalid(),
                        SessionError::Expired => LambdaError::ExpiredToken(EXPIRED_TOKEN.into()),
                    })?;
                // The token outlives nothing: once its account is deleted it is refused as AWS
                // refuses a token whose role or account has gone.
                if !self
                    .accounts
                    .exists(&s.account)
                    .await
                    .map_err(LambdaError::from)?
                {
                    return Err(invalid());
                }
                let caller = Caller {
                    account: s.account,
                    access_key_id: signed.access_key_id.clone(),
                    principal: Principal::FunctionSession {
                        function_name: s.function_name,
                        role_name: s.role_name,
                    },
                };
                Ok((caller, s.secret_access_key))
            }
            // Temporary key ids come with their token, and only they take one.
            (None, true) | (Some(_), false) => Err(invalid()),
            (None, false) => {
                let found = self.accounts.access_key(&signed.access_key_id).await;
                let Some(key) = found.map_err(LambdaError::from)? else {
                    return Err(invalid());
                };
                let caller = Caller {
                    account: key.account,
                    access_key_id: key.access_key_id,
                    principal: Principal::AccountKey,
                };
                Ok((caller, key.secret))
            }
        }
    }
}

/// A request whose headers checked out: a known key, a fresh date, the right scope. Only the
/// signature, which covers the body, is left to check.
#[derive(Clone)]
pub struct Claim {
    signed: Signed,
    secret: String,
    caller: Caller,
    signed_at: OffsetDateTime,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("access_key_id", &self.caller.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Claim {
    /// Recomputes the signature over the request and its body; answers who signed it.
    pub fn verify(self, parts: &Parts, body: &[u8]) -> Result<Caller, LambdaError> {
        let expected =
            sign::expected_signature(parts, body, &self.signed, &self.secret, self.signed_at)
                .ok_or_else(|| LambdaError::InvalidSignature(MISMATCH.into()))?;
        if !bool::from(expected.as_bytes().ct_eq(self.signed.signature.as_bytes())) {
            return Err(LambdaError::InvalidSignature(MISMATCH.into()));
        }
        Ok(self.caller)
    }
}
