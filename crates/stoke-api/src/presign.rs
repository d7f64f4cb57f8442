//! Presigned code URLs: GetFunction's `Code.Location`.
//!
//! Lambda answers a presigned S3 URL that a plain HTTP GET can fetch for ten minutes. Stoke
//! serves the zip itself at `/code/<sha256>` with the account, an expiry and an HMAC-SHA256 of
//! the three in the query, keyed with a secret the server keeps in its store.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use stoke_core::{AccountId, LambdaError};

/// How long a code URL stays valid (Lambda's figure).
pub const VALIDITY_SECS: u64 = 600;

/// Makes and checks code URLs.
#[derive(Clone)]
pub struct Presigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for Presigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Presigner")
    }
}

impl Presigner {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    fn mac(&self, sha: &str, account: &str, expires: u64) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(format!("{sha}\n{account}\n{expires}").as_bytes());
        Some(mac)
    }

    /// The URL of a code blob, valid until `now + VALIDITY_SECS`.
    pub fn url(&self, base: &str, sha: &str, account: &AccountId, now: u64) -> String {
        let expires = now + VALIDITY_SECS;
        let sig = self
            .mac(sha, account.as_str(), expires)
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default();
        format!(
            "{base}/code/{sha}?X-Stoke-Account={account}&X-Stoke-Expires={expires}\
             &X-Stoke-Signature={sig}"
        )
    }

    /// Checks a code URL's query at time `now`.
    pub fn check(&self, sha: &str, query: &str, now: u64) -> Result<(), LambdaError> {
        let denied = |m: &str| LambdaError::AccessDenied(m.to_owned());
        let (mut account, mut expires, mut sig) = (None, None, None);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "X-Stoke-Account" => account = Some(v.into_owned()),
                "X-Stoke-Expires" => expires = v.parse::<u64>().ok(),
                "X-Stoke-Signature" => sig = hex::decode(v.as_bytes()).ok(),
                _ => {}
            }
        }
        let (Some(account), Some(expires), Some(sig)) = (account, expires, sig) else {
            return Err(denied(
                "Query-string authentication requires the X-Stoke-Account, X-Stoke-Expires and X-Stoke-Signature parameters.",
            ));
        };
        let mac = self
            .mac(sha, &account, expires)
            .ok_or_else(|| denied("Bad key."))?;
        mac.verify_slice(&sig).map_err(|_| {
            denied("The request signature does not match the signature you provided.")
        })?;
        if now > expires {
            return Err(denied("Request has expired."));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountId {
        AccountId::try_from("123456789012".to_owned()).unwrap()
    }

    #[test]
    fn a_url_checks_until_it_expires() {
        let p = Presigner::new(b"k".to_vec());
        let url = p.url("http://h", &"a".repeat(64), &account(), 1000);
        let query = url.split_once('?').unwrap().1;
        assert!(p.check(&"a".repeat(64), query, 1000).is_ok());
        assert!(
            p.check(&"a".repeat(64), query, 1000 + VALIDITY_SECS + 1)
                .is_err()
        );
        assert!(p.check(&"b".repeat(64), query, 1000).is_err());
        let tampered = query.replace("X-Stoke-Expires=1600", "X-Stoke-Expires=9999");
        assert!(p.check(&"a".repeat(64), &tampered, 1000).is_err());
    }
}
