//! Short-lived credentials for functions, as Lambda's execution role gives them.
//!
//! Every sandbox is started with an access key id (`ASIA…`), a secret access key and a session
//! token of its function's account, valid for [`FunctionCredentials::ttl`]. They are stateless:
//! the session token carries what it stands for (the account, the function, its role, when it
//! was issued and when it expires) and an HMAC-SHA256 tag over that, keyed with a 32-byte key
//! given at construction; the secret is derived from the same key and the token's contents.
//! Any node that shares the key verifies a token without a store lookup, and nothing can be
//! changed in one without the tag failing.
//!
//! The token's contents are not secret (an account id, a function name, two times); what a
//! holder must not be able to do is change them or derive the secret, and the key protects
//! both. Two subkeys are derived from the key (one tags tokens, one derives secrets), so
//! neither output can stand in for the other.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use stoke_core::AccountId;
use stoke_sandbox::Credentials;

type HmacSha256 = Hmac<Sha256>;

/// The version tag every token starts with.
const VERSION: &str = "stoke1";
/// The longest token this module reads (a function name is at most 64 characters, a role
/// name 64): anything longer is not one of ours.
const MAX_TOKEN_LEN: usize = 1024;
/// The alphabet of the 16 characters after `ASIA` (base32, as AWS's key ids use).
const KEY_ID_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Why a key id and token were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not a token this server issued (malformed, tampered with, or for another key id).
    #[error("the security token is invalid")]
    Invalid,
    /// A genuine token past its expiry.
    #[error("the security token is expired")]
    Expired,
}

/// Who a valid session token speaks for.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    pub account: AccountId,
    /// The function the credentials were minted for (the role session's name).
    pub function_name: String,
    /// The name of the function's execution role (the last part of its ARN).
    pub role_name: String,
    pub expires: SystemTime,
    /// The secret the request must have been signed with.
    pub secret_access_key: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("account", &self.account)
            .field("function_name", &self.function_name)
            .field("role_name", &self.role_name)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Mints and verifies function credentials.
pub struct FunctionCredentials {
    token_key: [u8; 32],
    secret_key: [u8; 32],
    ttl: Duration,
}

impl std::fmt::Debug for FunctionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionCredentials")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The default lifetime: one hour, STS AssumeRole's default session duration.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// An AWS-style id: `prefix` and one base32 character (AWS's ids' alphabet) per byte.
pub fn aws_id(prefix: &str, bytes: &[u8]) -> String {
    let mut id = String::with_capacity(prefix.len() + bytes.len());
    id.push_str(prefix);
    id.extend(
        bytes
            .iter()
            .map(|b| char::from(KEY_ID_ALPHABET[usize::from(b % 32)])),
    );
    id
}

/// HMAC-SHA256 of `parts` under a 32-byte key. HMAC pads a key shorter than its block (64
/// bytes for SHA-256) with zeros; doing it here makes the construction infallible.
fn mac_of(key: &[u8; 32], parts: &[&[u8]]) -> HmacSha256 {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <HmacSha256 as Mac>::new(&block.into());
    for p in parts {
        mac.update(p);
    }
    mac
}

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    mac_of(key, parts).finalize().into_bytes().into()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The role name of a role ARN (`arn:aws:iam::123456789012:role/path/NAME` → `NAME`).
pub fn role_name(role_arn: &str) -> &str {
    let after = role_arn.split_once(":role/").map_or(role_arn, |(_, r)| r);
    after.rsplit('/').next().unwrap_or(after)
}

impl FunctionCredentials {
    /// Credentials keyed with `key` (every node that shares it verifies the others' tokens),
    /// valid for `ttl` from when they are minted.
    pub fn new(key: [u8; 32], ttl: Duration) -> Self {
        Self {
            token_key: hmac(&key, &[b"stoke function session token"]),
            secret_key: hmac(&key, &[b"stoke function session secret"]),
            ttl,
        }
    }

    /// How long minted credentials are valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn secret_of(&self, payload: &str) -> String {
        let raw = hmac(&self.secret_key, &[payload.as_bytes()]);
        // 30 bytes are 40 base64 characters, the length of an AWS secret access key.
        STANDARD.encode(&raw[..30])
    }

    /// New credentials for `function_name` of `account`, running with the role `role_arn`,
    /// valid from `now` for the ttl.
    pub fn mint(
        &self,
        account: &AccountId,
        function_name: &str,
        role_arn: &str,
        now: SystemTime,
    ) -> Credentials {
        let random: [u8; 16] = rand::random();
        let key_id = aws_id("ASIA", &random);
        let issued = unix(now);
        let expires = issued.saturating_add(self.ttl.as_secs().max(1));
        let payload = format!(
            "{VERSION}|{key_id}|{account}|{function_name}|{}|{issued}|{expires}",
            role_name(role_arn)
        );
        let tag = hmac(&self.token_key, &[payload.as_bytes()]);
        Credentials {
            access_key_id: key_id,
            secret_access_key: self.secret_of(&payload),
            session_token: format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(payload.as_bytes()),
                URL_SAFE_NO_PAD.encode(tag)
            ),
            expires: UNIX_EPOCH + Duration::from_secs(expires),
        }
    }

    /// Checks `token` presented with `access_key_id` at `now`: answers the session it stands
    /// for, or why not. A token is checked whole (its tag) before anything in it is believed.
    pub fn verify(
        &self,
        access_key_id: &str,
        token: &str,
        now: SystemTime,
    ) -> Result<Session, SessionError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(SessionError::Invalid);
        }
        let (payload, tag) = token.split_once('.').ok_or(SessionError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| SessionError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| SessionError::Invalid)?;
        // In constant time.
        mac_of(&self.token_key, &[&payload])
            .verify_slice(&tag)
            .map_err(|_| SessionError::Invalid)?;
        // Tagged by us: what follows is what we wrote.
        let payload = String::from_utf8(payload).map_err(|_| SessionError::Invalid)?;
        let fields: Vec<&str> = payload.split('|').collect();
        let [VERSION, key_id, account, function, role, _issued, expires] = fields.as_slice() else {
            return Err(SessionError::Invalid);
        };
        if *key_id != access_key_id {
            return Err(SessionError::Invalid);
        }
        let account =
            AccountId::try_from((*account).to_owned()).map_err(|_| SessionError::Invalid)?;
        let expires: u64 = expires.parse().map_err(|_| SessionError::Invalid)?;
        if unix(now) >= expires {
            return Err(SessionError::Expired);
        }
        Ok(Session {
            account,
            function_name: (*function).to_owned(),
            role_name: (*role).to_owned(),
            expires: UNIX_EPOCH + Duration::from_secs(expires),
            secret_access_key: self.secret_of(&payload),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountId {
        AccountId::try_from("123456789012".to_owned()).unwrap()
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/service-role/my-role";

    #[test]
    fn minted_credentials_verify_until_they_expire() {
        let c = FunctionCredentials::new([7; 32], Duration::from_secs(60));
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let m = c.mint(&account(), "fn", ROLE, now);
        assert!(m.access_key_id.starts_with("ASIA"));
        assert_eq!(m.access_key_id.len(), 20);
        assert_eq!(m.secret_access_key.len(), 40);
        let s = c.verify(&m.access_key_id, &m.session_token, now).unwrap();
        assert_eq!(s.account, account());
        assert_eq!(
            (s.function_name.as_str(), s.role_name.as_str()),
            ("fn", "my-role")
        );
        assert_eq!(s.secret_access_key, m.secret_access_key);
        assert_eq!(s.expires, m.expires);
        let later = now + Duration::from_secs(60);
        assert_eq!(
            c.verify(&m.access_key_id, &m.session_token, later),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn another_key_a_tampered_token_or_another_key_id_is_invalid() {
        let c = FunctionCredentials::new([7; 32], Duration::from_secs(60));
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let m = c.mint(&account(), "fn", ROLE, now);
        let other = FunctionCredentials::new([8; 32], Duration::from_secs(60));
        assert_eq!(
            other.verify(&m.access_key_id, &m.session_token, now),
            Err(SessionError::Invalid)
        );
        let (payload, tag) = m.session_token.split_once('.').unwrap();
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let forged = text.replace("123456789012", "210987654321");
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(forged));
        assert_eq!(
            c.verify(&m.access_key_id, &forged, now),
            Err(SessionError::Invalid)
        );
        assert_eq!(
            c.verify("ASIAAAAAAAAAAAAAAAAA", &m.session_token, now),
            Err(SessionError::Invalid)
        );
        for junk in ["", ".", "a.b", "x".repeat(5000).as_str()] {
            assert_eq!(
                c.verify(&m.access_key_id, junk, now),
                Err(SessionError::Invalid)
            );
        }
    }

    #[test]
    fn role_names_drop_the_path() {
        assert_eq!(role_name(ROLE), "my-role");
        assert_eq!(
            role_name("arn:aws:iam::000000000000:role/stoke-default"),
            "stoke-default"
        );
    }
}
