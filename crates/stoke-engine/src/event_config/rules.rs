//! The rules of event-invoke configurations (PutFunctionEventInvokeConfig and its siblings):
//! validation, Put's replace and Update's merge, the destination ARNs Stoke accepts, and the
//! one check of the qualifiers an async event or a configuration may name
//! ([`event_qualifier`]). Pure: nothing here reads or writes the store.

use stoke_core::LambdaError;
use stoke_core::validate::Violations;
use stoke_store::queue::EventInvokeConfig;

/// Lambda's defaults.
pub const DEFAULT_MAX_RETRY_ATTEMPTS: u32 = 2;
pub const DEFAULT_MAX_EVENT_AGE_SECONDS: u32 = 21_600;

/// One destination member as the request gave it: absent, or an object with (maybe) an ARN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationInput {
    pub on_success: Option<Option<String>>,
    pub on_failure: Option<Option<String>>,
}

/// The body of Put/UpdateFunctionEventInvokeConfig, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventConfigInput {
    pub maximum_retry_attempts: Option<i64>,
    pub maximum_event_age_in_seconds: Option<i64>,
    pub destination_config: Option<DestinationInput>,
}

/// The qualifier an async event or an event-invoke configuration is kept under: `$LATEST`
/// when the caller gave none, else the version or alias as named (the caller has checked
/// that it exists; an alias is resolved again when the event runs, so a shifted alias sends
/// later runs to its new version, as on Lambda).
pub fn event_qualifier(qualifier: Option<&str>) -> String {
    match qualifier {
        None | Some("") | Some("$LATEST") => "$LATEST".to_owned(),
        Some(q) => q.to_owned(),
    }
}

/// A Lambda function ARN as a destination: (account, function name, qualifier).
pub fn parse_function_destination(arn: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "lambda", _, account, "function", name] => Some((
            (*account).to_owned(),
            (*name).to_owned(),
            "$LATEST".to_owned(),
        )),
        ["arn", _, "lambda", _, account, "function", name, q] => {
            Some(((*account).to_owned(), (*name).to_owned(), (*q).to_owned()))
        }
        _ => None,
    }
}

/// Checks a destination ARN: Stoke delivers to Lambda functions of the caller's account.
fn check_destination(
    member: &str,
    arn: &str,
    account: &str,
    region: &str,
) -> Result<(), LambdaError> {
    if arn.is_empty() {
        return Ok(());
    }
    let mut v = Violations::new();
    v.length(member, arn, 0, 350);
    v.into_result()?;
    let service = arn.split(':').nth(2).unwrap_or("");
    if !arn.starts_with("arn:") || service.is_empty() {
        return Err(LambdaError::InvalidParameterValue(format!(
            "The destination ARN {arn} is invalid."
        )));
    }
    match parse_function_destination(arn) {
        Some((dest_account, name, _)) if service == "lambda" => {
            let arn_region = arn.split(':').nth(3).unwrap_or("");
            if dest_account != account || arn_region != region || name.is_empty() {
                return Err(LambdaError::InvalidParameterValue(format!(
                    "The destination function {arn} must be in this account ({account}) and \
                     region ({region})."
                )));
            }
            Ok(())
        }
        _ if matches!(service, "sqs" | "sns" | "events" | "s3") => {
            Err(LambdaError::InvalidParameterValue(format!(
                "Stoke supports Lambda function destinations only; {arn} is an {service} ARN. \
                 Use the ARN of a function (arn:aws:lambda:REGION:ACCOUNT:function:NAME)."
            )))
        }
        _ => Err(LambdaError::InvalidParameterValue(format!(
            "The destination ARN {arn} is invalid: Stoke supports Lambda function destinations \
             only."
        ))),
    }
}

/// The model's checks and the destinations' (before anything is looked up, as on AWS).
pub fn validate(input: &EventConfigInput, account: &str, region: &str) -> Result<(), LambdaError> {
    let mut v = Violations::new();
    if let Some(n) = input.maximum_retry_attempts {
        v.range("maximumRetryAttempts", n, 0, 2);
    }
    if let Some(n) = input.maximum_event_age_in_seconds {
        v.range("maximumEventAgeInSeconds", n, 60, 21_600);
    }
    v.into_result()?;
    if let Some(d) = &input.destination_config {
        if let Some(Some(a)) = &d.on_success {
            check_destination(
                "destinationConfig.onSuccess.destination",
                a,
                account,
                region,
            )?;
        }
        if let Some(Some(a)) = &d.on_failure {
            check_destination(
                "destinationConfig.onFailure.destination",
                a,
                account,
                region,
            )?;
        }
    }
    Ok(())
}

/// A Put or Update must set something (a retry count, an age or a destination config), as
/// on AWS.
pub fn check_something_to_set(input: &EventConfigInput) -> Result<(), LambdaError> {
    if input.maximum_retry_attempts.is_none()
        && input.maximum_event_age_in_seconds.is_none()
        && input.destination_config.is_none()
    {
        return Err(LambdaError::InvalidParameterValue(
            "You must specify at least one of error handling or destination setting.".into(),
        ));
    }
    Ok(())
}

fn nonempty(v: &Option<Option<String>>) -> Option<String> {
    v.clone().flatten().filter(|s| !s.is_empty())
}

/// Put: the input replaces the whole configuration.
pub fn put(
    base: EventInvokeConfig,
    input: &EventConfigInput,
    region: &str,
) -> Result<EventInvokeConfig, LambdaError> {
    validate(input, base.account.as_str(), region)?;
    let d = input.destination_config.clone().unwrap_or_default();
    Ok(EventInvokeConfig {
        maximum_retry_attempts: input.maximum_retry_attempts.map(clamp_u32),
        maximum_event_age_seconds: input.maximum_event_age_in_seconds.map(clamp_u32),
        on_success: nonempty(&d.on_success),
        on_failure: nonempty(&d.on_failure),
        ..base
    })
}

/// Update: what the input names replaces what was there; the rest stays.
pub fn update(
    old: EventInvokeConfig,
    input: &EventConfigInput,
    region: &str,
) -> Result<EventInvokeConfig, LambdaError> {
    validate(input, old.account.as_str(), region)?;
    let mut c = old;
    if let Some(n) = input.maximum_retry_attempts {
        c.maximum_retry_attempts = Some(clamp_u32(n));
    }
    if let Some(n) = input.maximum_event_age_in_seconds {
        c.maximum_event_age_seconds = Some(clamp_u32(n));
    }
    if let Some(d) = &input.destination_config {
        if d.on_success.is_some() {
            c.on_success = nonempty(&d.on_success);
        }
        if d.on_failure.is_some() {
            c.on_failure = nonempty(&d.on_failure);
        }
    }
    Ok(c)
}

fn clamp_u32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use stoke_core::AccountId;

    fn base() -> EventInvokeConfig {
        EventInvokeConfig {
            account: AccountId::try_from("123456789012".to_owned()).unwrap(),
            function_name: "f".into(),
            qualifier: "$LATEST".into(),
            maximum_retry_attempts: Some(1),
            maximum_event_age_seconds: Some(100),
            on_success: Some("arn:aws:lambda:us-east-1:123456789012:function:s".into()),
            on_failure: None,
            last_modified: 0.0,
        }
    }

    #[test]
    fn put_replaces_and_update_merges() {
        let input = EventConfigInput {
            maximum_retry_attempts: Some(0),
            ..Default::default()
        };
        let p = put(base(), &input, "us-east-1").unwrap();
        assert_eq!(p.maximum_retry_attempts, Some(0));
        assert_eq!(p.maximum_event_age_seconds, None);
        assert_eq!(p.on_success, None);
        let u = update(base(), &input, "us-east-1").unwrap();
        assert_eq!(u.maximum_retry_attempts, Some(0));
        assert_eq!(u.maximum_event_age_seconds, Some(100));
        assert!(u.on_success.is_some());
    }

    #[test]
    fn ranges_and_destinations_are_checked() {
        let e = put(
            base(),
            &EventConfigInput {
                maximum_retry_attempts: Some(3),
                maximum_event_age_in_seconds: Some(59),
                ..Default::default()
            },
            "us-east-1",
        )
        .unwrap_err();
        assert!(
            e.message().starts_with("2 validation errors detected"),
            "{e}"
        );
        let sqs = EventConfigInput {
            destination_config: Some(DestinationInput {
                on_failure: Some(Some("arn:aws:sqs:us-east-1:123456789012:q".into())),
                on_success: None,
            }),
            ..Default::default()
        };
        let e = put(base(), &sqs, "us-east-1").unwrap_err();
        assert_eq!(e.type_name(), "InvalidParameterValueException");
        assert!(e.message().contains("Lambda function destinations"));
    }

    #[test]
    fn only_latest_is_a_qualifier_today() {
        assert_eq!(event_qualifier(None), "$LATEST");
        assert_eq!(event_qualifier(Some("")), "$LATEST");
        assert_eq!(event_qualifier(Some("live")), "live");
        assert_eq!(
            parse_function_destination("arn:aws:lambda:us-east-1:123456789012:function:f:prod"),
            Some(("123456789012".into(), "f".into(), "prod".into()))
        );
    }
}
