//! An `AMQP_URL` endpoint as the AMQP URI spec reads it ([`parse_endpoint`]: user, password,
//! host, port, virtual host, each within AMQP's 255-byte short strings), and [`redact`], a URL
//! without its password, for anything shown.

/// AMQP's short strings (names, tags, credentials) hold at most 255 bytes.
pub const SHORT_MAX: usize = 255;
const DEFAULT_PORT: u16 = 5672;

/// One broker of an `AMQP_URL` endpoint, parsed (`amqp://user:pass@host:port/vhost`).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub user: String,
    pub(super) password: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("vhost", &self.vhost)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// `raw` without its password (for messages).
pub fn redact(raw: &str) -> String {
    crate::sources::access::redact_url(raw)
}

fn decoded(part: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "it is not UTF-8 once percent-decoded".to_owned())
}

/// Parses an `AMQP_URL` endpoint as the AMQP URI spec reads it: user and password default to
/// `guest`, the port to 5672, the virtual host (the path, percent-decoded) to `/`. `amqps`
/// is refused (Stoke carries no TLS stack yet). The error is the reason, in words.
pub fn parse_endpoint(raw: &str) -> Result<Endpoint, String> {
    let shown = redact(raw);
    let bad = |why: &str| format!("The endpoint {shown} is not a valid AMQP_URL: {why}.");
    let u = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    match u.scheme() {
        "amqp" => {}
        "amqps" => {
            return Err(bad(
                "amqps (TLS) is not supported by Stoke yet, use amqp://",
            ));
        }
        _ => return Err(bad("expected amqp://user:password@host:port/vhost")),
    }
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("it names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let user = match u.username() {
        "" => "guest".to_owned(),
        name => decoded(name).map_err(|w| bad(&format!("the user name: {w}")))?,
    };
    let password = match u.password() {
        None if u.username().is_empty() => "guest".to_owned(),
        None => String::new(),
        Some(p) => decoded(p).map_err(|w| bad(&format!("the password: {w}")))?,
    };
    let path = u.path().strip_prefix('/').unwrap_or(u.path());
    if path.contains('/') {
        return Err(bad(
            "the virtual host must be one path segment (write / as %2F)",
        ));
    }
    let vhost = match path {
        "" => "/".to_owned(),
        p => decoded(p).map_err(|w| bad(&format!("the virtual host: {w}")))?,
    };
    for (what, value) in [
        ("host", &host),
        ("user name", &user),
        ("password", &password),
    ] {
        if value.len() > SHORT_MAX {
            return Err(bad(&format!("the {what} is longer than {SHORT_MAX} bytes")));
        }
    }
    if vhost.len() > SHORT_MAX {
        return Err(bad(&format!(
            "the virtual host is longer than {SHORT_MAX} bytes"
        )));
    }
    Ok(Endpoint {
        port: u.port().unwrap_or(DEFAULT_PORT),
        host,
        vhost,
        user,
        password,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_amqp_url_is_read_as_the_uri_spec_says() {
        let e = parse_endpoint("amqp://u%40x:p%2Fw@h.example:5673/v%2Fh").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.vhost.as_str(), e.user.as_str()),
            ("h.example", 5673, "v/h", "u@x")
        );
        assert_eq!(e.password, "p/w");
        let d = parse_endpoint("amqp://127.0.0.1").unwrap();
        assert_eq!(
            (
                d.port,
                d.vhost.as_str(),
                d.user.as_str(),
                d.password.as_str()
            ),
            (5672, "/", "guest", "guest")
        );
        assert_eq!(parse_endpoint("amqp://h/%2f").unwrap().vhost, "/");
        assert_eq!(parse_endpoint("amqp://[::1]:5672/").unwrap().host, "::1");
        let refused = parse_endpoint("amqps://u:secret@h:5671/v").unwrap_err();
        assert_eq!(
            refused,
            "The endpoint amqps://u:****@h:5671/v is not a valid AMQP_URL: amqps (TLS) is not \
             supported by Stoke yet, use amqp://."
        );
        let two = parse_endpoint("amqp://u:secret@h/a/b").unwrap_err();
        assert!(
            two.contains("one path segment") && !two.contains("secret"),
            "{two}"
        );
        assert!(parse_endpoint("amqp://u:secret@:5672/v").is_err());
        let long = format!("amqp://h/{}", "v".repeat(256));
        assert!(parse_endpoint(&long).unwrap_err().contains("255 bytes"));
    }

    #[test]
    fn a_password_is_never_shown() {
        assert_eq!(redact("amqp://u:pw@h:1/v?x=1"), "amqp://u:****@h:1/v?x=1");
        assert_eq!(redact("amqp://h:1/v"), "amqp://h:1/v");
        let e = parse_endpoint("amqp://user:hunter2@h/v").unwrap();
        assert!(!format!("{e:?}").contains("hunter2"));
    }
}
