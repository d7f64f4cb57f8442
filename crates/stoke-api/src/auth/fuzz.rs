//! Property tests of the SigV4 parsing (run by `cargo nextest` with the rest): random and
//! mutated `Authorization` headers, presigned queries and whole requests never panic, finish
//! quickly, and a signature never survives a change of the body, the path, the query or a
//! signed header.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::parse::{claim_of, parse_amz_date, parse_auth_header, parse_expires, parse_query_auth};
use super::sign::expected_signature;

/// Far above what one parse of a few KB takes, even on a loaded machine: a hang fails.
const BOUND: Duration = Duration::from_secs(2);

const HEADER: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/\
                      aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73e";
const QUERY: &str = "Action=GetCallerIdentity&Version=2011-06-15\
                     &X-Amz-Algorithm=AWS4-HMAC-SHA256\
                     &X-Amz-Credential=AKID%2F20150830%2Fus-east-1%2Fsts%2Faws4_request\
                     &X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host\
                     &X-Amz-Security-Token=abc.def&X-Amz-Signature=abc";

/// Characters SigV4 text is made of, and some it never is.
fn text(max: usize) -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        8 => prop::sample::select(
            "AWS4-HMAC-SHA256 Credential=/,;=&%SignedHeaders Signature aws4_request 0123456789abcdefXZ"
                .chars()
                .collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ];
    prop::collection::vec(chars, 0..max).prop_map(|v| v.into_iter().collect())
}

/// One edit of a string: replace, insert or delete at a position.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, char),
    Insert(usize, char),
    Delete(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<char>()).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), any::<char>()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
    ];
    prop::collection::vec(edit, 1..8)
}

fn mutate(s: &str, edits: &[Edit]) -> String {
    let mut v: Vec<char> = s.chars().collect();
    for e in edits {
        let n = v.len().max(1);
        match *e {
            Edit::Replace(i, c) if !v.is_empty() => v[i % n] = c,
            Edit::Insert(i, c) => v.insert(i % (v.len() + 1), c),
            Edit::Delete(i) if !v.is_empty() => {
                v.remove(i % n);
            }
            _ => {}
        }
    }
    v.into_iter().collect()
}

fn timed<T>(f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    assert!(t.elapsed() < BOUND, "took {:?}", t.elapsed());
    out
}

/// A request of random parts, if `http` accepts them as one.
fn request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
) -> Option<http::request::Parts> {
    let uri = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(()).ok().map(|r| r.into_parts().0)
}

fn segment() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select("abcXYZ019-_.~%20/".chars().collect::<Vec<_>>()),
        0..24,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn signed_parts(
    path: &str,
    query: &str,
    extra: &str,
) -> Option<(http::request::Parts, super::parse::Signed)> {
    let headers = vec![
        ("host".to_owned(), "example.amazonaws.com".to_owned()),
        ("x-amz-date".to_owned(), "20150830T123600Z".to_owned()),
        ("x-extra".to_owned(), extra.to_owned()),
        (
            "authorization".to_owned(),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/aws4_request, \
             SignedHeaders=host;x-amz-date;x-extra, Signature=0"
                .to_owned(),
        ),
    ];
    let parts = request("POST", &format!("/{path}"), query, &headers)?;
    let claim = claim_of(&parts).ok()??;
    Some((parts, claim))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_authorization_headers_never_panic(s in text(400)) {
        let _ = timed(|| parse_auth_header(&s));
    }

    #[test]
    fn mutated_authorization_headers_never_panic(e in edits()) {
        let s = mutate(HEADER, &e);
        if let Ok(a) = timed(|| parse_auth_header(&s)) {
            // Whatever parses came out of the input.
            prop_assert!(s.contains(&a.access_key_id) && s.contains(&a.signature));
        }
    }

    #[test]
    fn random_and_mutated_queries_never_panic(s in text(400), e in edits()) {
        let _ = timed(|| parse_query_auth(&s));
        let m = mutate(QUERY, &e);
        if let Ok(q) = timed(|| parse_query_auth(&m)) {
            let expires = q.expires.unwrap_or(0);
            prop_assert!((1..=604_800).contains(&expires));
        }
    }

    #[test]
    fn dates_and_expiries_never_panic(s in text(40)) {
        let _ = parse_amz_date(&s);
        let _ = parse_expires(&s);
    }

    #[test]
    fn random_requests_never_panic(
        method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "X"]),
        path in segment(),
        query in text(120),
        names in prop::collection::vec(
            prop::sample::select(vec!["authorization", "host", "x-amz-date",
                "x-amz-security-token", "x-amz-content-sha256", "x-other"]), 0..6),
        values in prop::collection::vec(text(120), 6),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let headers: Vec<(String, String)> = names
            .iter()
            .zip(&values)
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect();
        let Some(parts) = request(method, &format!("/{path}"), &query, &headers) else {
            return Ok(());
        };
        if let Ok(Some(claim)) = timed(|| claim_of(&parts)) {
            let at = parse_amz_date("20150830T123600Z").unwrap();
            let _ = timed(|| expected_signature(&parts, &body, &claim, "secret", at));
        }
    }

    /// A signature made for one request never checks for another: a changed body, path,
    /// query or signed header changes it.
    #[test]
    fn a_signature_covers_the_body_path_query_and_signed_headers(
        path in segment(),
        query in prop::collection::vec(("[a-z]{1,6}", "[a-z0-9]{0,6}"), 0..4),
        extra in "[a-z0-9]{1,8}",
        body in prop::collection::vec(any::<u8>(), 0..64),
        flip in any::<u8>(),
    ) {
        let query = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let Some((parts, claim)) = signed_parts(&path, &query, &extra) else {
            return Ok(());
        };
        let at = parse_amz_date("20150830T123600Z").unwrap();
        let Some(sig) = expected_signature(&parts, &body, &claim, "secret", at) else {
            return Ok(());
        };
        let mut other = body.clone();
        other.push(flip);
        let with_other_body = expected_signature(&parts, &other, &claim, "secret", at);
        prop_assert_ne!(Some(&sig), with_other_body.as_ref());
        let with_other_secret = expected_signature(&parts, &body, &claim, "secreT", at);
        prop_assert_ne!(Some(&sig), with_other_secret.as_ref());
        let changed = [
            signed_parts(&format!("{path}x"), &query, &extra),
            signed_parts(&path, &format!("{query}&zz=1"), &extra),
            signed_parts(&path, &query, &format!("{extra}x")),
        ];
        for (p, c) in changed.iter().flatten() {
            let changed = expected_signature(p, &body, c, "secret", at);
            prop_assert_ne!(Some(&sig), changed.as_ref());
        }
    }
}

#[test]
fn a_long_header_or_query_is_refused_quickly() {
    let long = format!("{HEADER}{}", ",x=y".repeat(10_000));
    assert!(timed(|| parse_auth_header(&long)).is_err());
    let long = format!("{QUERY}{}", "&a=b".repeat(50_000));
    assert!(timed(|| parse_query_auth(&long)).is_err());
}
