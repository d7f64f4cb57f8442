//! The authentication of the cluster's internal channel: a forwarded call's [`Envelope`]
//! (who called, what the first node resolved, from which node to which, when) and its body,
//! under an HMAC-SHA-256 with the cluster key (derived from the master key every node shares:
//! `MasterKey::derive("cluster")`, never stored, never sent).
//!
//! The envelope travels as JSON in `x-stoke-forward`, the MAC (hex) in `x-stoke-forward-mac`,
//! over `"stoke-forward-v1\n" ‖ envelope ‖ "\n" ‖ body`. A node accepts a forward only with a
//! valid MAC (compared in constant time), addressed to itself, and made within
//! [`MAX_SKEW`] of its clock (a captured forward cannot be replayed later, nor to another
//! node). The caller's own credentials are never part of it: the first node checked them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use stoke_core::AccountId;

/// The header carrying the envelope.
pub const ENVELOPE_HEADER: &str = "x-stoke-forward";
/// The header carrying the MAC.
pub const MAC_HEADER: &str = "x-stoke-forward-mac";
/// How far a forward's time may be from the receiving node's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(30);

const CONTEXT: &[u8] = b"stoke-forward-v1\n";

/// The key of the internal channel. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct ClusterKey([u8; 32]);

impl ClusterKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// The MAC state over `envelope` and `body` (HMAC takes a key of any length: never
    /// `None` in practice).
    fn mac(&self, envelope: &[u8], body: &[u8]) -> Option<Hmac<Sha256>> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).ok()?;
        m.update(CONTEXT);
        m.update(envelope);
        m.update(b"\n");
        m.update(body);
        Some(m)
    }

    /// The envelope's JSON and the MAC (hex) of it with `body`.
    pub fn sign(&self, envelope: &Envelope, body: &[u8]) -> Option<(String, String)> {
        let json = serde_json::to_string(envelope).ok()?;
        let tag = hex::encode(self.mac(json.as_bytes(), body)?.finalize().into_bytes());
        Some((json, tag))
    }

    /// The envelope of a forward to `me`, if its MAC is right, it is addressed to `me` and it
    /// is recent.
    pub fn verify(
        &self,
        envelope: &str,
        tag: &str,
        body: &[u8],
        me: &str,
        now: SystemTime,
    ) -> Result<Envelope, MacError> {
        let tag = hex::decode(tag).map_err(|_| MacError::Bad)?;
        self.mac(envelope.as_bytes(), body)
            .ok_or(MacError::Bad)?
            .verify_slice(&tag)
            .map_err(|_| MacError::Bad)?;
        let e: Envelope = serde_json::from_str(envelope).map_err(|_| MacError::Bad)?;
        if e.to != me {
            return Err(MacError::NotForMe);
        }
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let skew = u64::try_from(MAX_SKEW.as_millis()).unwrap_or(u64::MAX);
        if now_ms.abs_diff(e.at_ms) > skew {
            return Err(MacError::Stale);
        }
        Ok(e)
    }
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// Why a forward was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MacError {
    #[error("the forward's MAC is not valid")]
    Bad,
    #[error("the forward is addressed to another node")]
    NotForMe,
    #[error("the forward is older than the channel's clock skew allows")]
    Stale,
}

/// What a forwarded call carries besides its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The node that forwards.
    pub from: String,
    /// The node it is for.
    pub to: String,
    /// When it was made (ms since the epoch).
    pub at_ms: u64,
    /// The account that called (authenticated and authorized by `from`).
    pub caller: AccountId,
    /// The function's owner.
    pub owner: AccountId,
    /// The function's name.
    pub function: String,
    /// The version `from` resolved the call to (an alias's choice made there).
    pub version: String,
    /// The call's qualifier as the caller gave it (for the ARN the function sees).
    pub qualifier: Option<String>,
    /// `X-Amz-Log-Type: Tail`.
    pub log_tail: bool,
    pub client_context: Option<String>,
    pub trace_id: Option<String>,
}

/// Now, in ms since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(at_ms: u64) -> Envelope {
        Envelope {
            from: "a".into(),
            to: "b".into(),
            at_ms,
            caller: AccountId::try_from("123456789012".to_owned()).unwrap(),
            owner: AccountId::try_from("123456789012".to_owned()).unwrap(),
            function: "f".into(),
            version: "$LATEST".into(),
            qualifier: None,
            log_tail: true,
            client_context: None,
            trace_id: None,
        }
    }

    #[test]
    fn a_signed_forward_verifies_and_every_forgery_is_refused() {
        let key = ClusterKey::new([7; 32]);
        let now = SystemTime::now();
        let e = envelope(now_ms());
        let (json, tag) = key.sign(&e, b"{\"x\":1}").unwrap();
        assert_eq!(
            key.verify(&json, &tag, b"{\"x\":1}", "b", now),
            Ok(e.clone())
        );

        // Another body, another envelope, another key, a truncated or garbled tag.
        assert_eq!(
            key.verify(&json, &tag, b"{\"x\":2}", "b", now),
            Err(MacError::Bad)
        );
        let forged = json.replace("123456789012", "210987654321");
        assert_ne!(forged, json);
        assert_eq!(
            key.verify(&forged, &tag, b"{\"x\":1}", "b", now),
            Err(MacError::Bad)
        );
        let other = ClusterKey::new([8; 32]);
        let (_, other_tag) = other.sign(&e, b"{\"x\":1}").unwrap();
        assert_eq!(
            key.verify(&json, &other_tag, b"{\"x\":1}", "b", now),
            Err(MacError::Bad)
        );
        assert_eq!(
            key.verify(&json, &tag[..32], b"{\"x\":1}", "b", now),
            Err(MacError::Bad)
        );
        assert_eq!(
            key.verify(&json, "zz", b"{\"x\":1}", "b", now),
            Err(MacError::Bad)
        );
        assert_eq!(
            key.verify(&json, "", b"{\"x\":1}", "b", now),
            Err(MacError::Bad)
        );
    }

    #[test]
    fn a_forward_for_another_node_or_too_old_is_refused() {
        let key = ClusterKey::new([7; 32]);
        let now = SystemTime::now();
        let (json, tag) = key.sign(&envelope(now_ms()), b"").unwrap();
        assert_eq!(
            key.verify(&json, &tag, b"", "c", now),
            Err(MacError::NotForMe)
        );
        let old = now_ms() - 31_000;
        let (json, tag) = key.sign(&envelope(old), b"").unwrap();
        assert_eq!(key.verify(&json, &tag, b"", "b", now), Err(MacError::Stale));
        let (json, tag) = key.sign(&envelope(now_ms() - 29_000), b"").unwrap();
        assert!(key.verify(&json, &tag, b"", "b", now).is_ok());
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let key = ClusterKey::new([0xab; 32]);
        assert_eq!(format!("{key:?}"), "ClusterKey(..)");
    }
}
