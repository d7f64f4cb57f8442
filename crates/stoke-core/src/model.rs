//! The constraints of the Lambda API model, generated from boto3's service model
//! (`botocore/data/lambda/2015-03-31/service-2.json`) by `scripts/gen_lambda_model.py`;
//! do not edit by hand. [`validate`](crate::validate) quotes these patterns and limits in
//! its messages, and [`message_member`] says which member each modeled error carries its
//! message in (the model spells it `Message` for some types and `message` for others).

/// One shape of the model: its length (strings) or value (numbers) bounds and its pattern
/// (`""` if it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub name: &'static str,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub pattern: &'static str,
}

/// `FunctionName` (string).
pub const FUNCTION_NAME: Shape = Shape {
    name: "FunctionName",
    min: Some(1),
    max: Some(140),
    pattern: r#"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"#,
};

/// `NamespacedFunctionName` (string).
pub const NAMESPACED_FUNCTION_NAME: Shape = Shape {
    name: "NamespacedFunctionName",
    min: Some(1),
    max: Some(256),
    pattern: r#"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"#,
};

/// `UnqualifiedFunctionName` (string).
pub const UNQUALIFIED_FUNCTION_NAME: Shape = Shape {
    name: "UnqualifiedFunctionName",
    min: Some(1),
    max: Some(140),
    pattern: r#"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)"#,
};

/// `RoleArn` (string).
pub const ROLE_ARN: Shape = Shape {
    name: "RoleArn",
    min: Some(0),
    max: Some(10000),
    pattern: r#"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"#,
};

/// `Handler` (string).
pub const HANDLER: Shape = Shape {
    name: "Handler",
    min: Some(0),
    max: Some(128),
    pattern: r#"[^\s]+"#,
};

/// `Description` (string).
pub const DESCRIPTION: Shape = Shape {
    name: "Description",
    min: Some(0),
    max: Some(256),
    pattern: r#""#,
};

/// `Qualifier` (string).
pub const QUALIFIER: Shape = Shape {
    name: "Qualifier",
    min: Some(1),
    max: Some(128),
    pattern: r#"(|[a-zA-Z0-9$_-]+)"#,
};

/// `NumericLatestPublishedOrAliasQualifier` (string).
pub const NUMERIC_LATEST_PUBLISHED_OR_ALIAS_QUALIFIER: Shape = Shape {
    name: "NumericLatestPublishedOrAliasQualifier",
    min: Some(1),
    max: Some(128),
    pattern: r#"\$(LATEST(\.PUBLISHED)?)|[a-zA-Z0-9-_$]+"#,
};

/// `Version` (string).
pub const VERSION: Shape = Shape {
    name: "Version",
    min: Some(1),
    max: Some(1024),
    pattern: r#"(\$LATEST|[0-9]+)"#,
};

/// `VersionWithLatestPublished` (string).
pub const VERSION_WITH_LATEST_PUBLISHED: Shape = Shape {
    name: "VersionWithLatestPublished",
    min: Some(1),
    max: Some(1024),
    pattern: r#"(\$LATEST(\.PUBLISHED)?|[0-9]+)"#,
};

/// `AdditionalVersion` (string).
pub const ADDITIONAL_VERSION: Shape = Shape {
    name: "AdditionalVersion",
    min: Some(1),
    max: Some(1024),
    pattern: r#"[0-9]+"#,
};

/// `Alias` (string).
pub const ALIAS: Shape = Shape {
    name: "Alias",
    min: Some(1),
    max: Some(128),
    pattern: r#"(?!^[0-9]+$)([a-zA-Z0-9-_]+)"#,
};

/// `EnvironmentVariableName` (string).
pub const ENVIRONMENT_VARIABLE_NAME: Shape = Shape {
    name: "EnvironmentVariableName",
    min: None,
    max: None,
    pattern: r#"[a-zA-Z]([a-zA-Z0-9_])+"#,
};

/// `TaggableResource` (string).
pub const TAGGABLE_RESOURCE: Shape = Shape {
    name: "TaggableResource",
    min: Some(1),
    max: Some(10000),
    pattern: r#"arn:(aws[a-zA-Z-]*):lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:(function:[a-zA-Z0-9-_]+(:(\$LATEST|[a-zA-Z0-9-_]+))?|code-signing-config:csc-[a-z0-9]{17}|event-source-mapping:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|(capacity-provider|network-connector):[a-zA-Z0-9-_]{1,64})"#,
};

/// `TagKey` (string).
pub const TAG_KEY: Shape = Shape {
    name: "TagKey",
    min: Some(1),
    max: Some(128),
    pattern: r#"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"#,
};

/// `TagValue` (string).
pub const TAG_VALUE: Shape = Shape {
    name: "TagValue",
    min: Some(0),
    max: Some(256),
    pattern: r#"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"#,
};

/// `DestinationArn` (string).
pub const DESTINATION_ARN: Shape = Shape {
    name: "DestinationArn",
    min: Some(0),
    max: Some(350),
    pattern: r#"$|kafka://([^.]([a-zA-Z0-9\-_.]{0,248}))|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1})?:(\d{12})?:(.*)"#,
};

/// `MemorySize` (integer).
pub const MEMORY_SIZE: Shape = Shape {
    name: "MemorySize",
    min: Some(128),
    max: Some(32768),
    pattern: r#""#,
};

/// `Timeout` (integer).
pub const TIMEOUT: Shape = Shape {
    name: "Timeout",
    min: Some(1),
    max: Some(5400),
    pattern: r#""#,
};

/// `EphemeralStorageSize` (integer).
pub const EPHEMERAL_STORAGE_SIZE: Shape = Shape {
    name: "EphemeralStorageSize",
    min: Some(512),
    max: Some(32768),
    pattern: r#""#,
};

/// `MaximumRetryAttempts` (integer).
pub const MAXIMUM_RETRY_ATTEMPTS: Shape = Shape {
    name: "MaximumRetryAttempts",
    min: Some(0),
    max: Some(2),
    pattern: r#""#,
};

/// `MaximumEventAgeInSeconds` (integer).
pub const MAXIMUM_EVENT_AGE_IN_SECONDS: Shape = Shape {
    name: "MaximumEventAgeInSeconds",
    min: Some(60),
    max: Some(21600),
    pattern: r#""#,
};

/// `MaxListItems` (integer).
pub const MAX_LIST_ITEMS: Shape = Shape {
    name: "MaxListItems",
    min: Some(1),
    max: Some(10000),
    pattern: r#""#,
};

/// `MaxFunctionEventInvokeConfigListItems` (integer).
pub const MAX_FUNCTION_EVENT_INVOKE_CONFIG_LIST_ITEMS: Shape = Shape {
    name: "MaxFunctionEventInvokeConfigListItems",
    min: Some(1),
    max: Some(50),
    pattern: r#""#,
};

/// `ReservedConcurrentExecutions` (integer).
pub const RESERVED_CONCURRENT_EXECUTIONS: Shape = Shape {
    name: "ReservedConcurrentExecutions",
    min: Some(0),
    max: None,
    pattern: r#""#,
};

/// `StatementId` (string).
pub const STATEMENT_ID: Shape = Shape {
    name: "StatementId",
    min: Some(1),
    max: Some(100),
    pattern: r#"([a-zA-Z0-9-_]+)"#,
};

/// `NamespacedStatementId` (string).
pub const NAMESPACED_STATEMENT_ID: Shape = Shape {
    name: "NamespacedStatementId",
    min: Some(1),
    max: Some(100),
    pattern: r#"([a-zA-Z0-9-_.]+)"#,
};

/// `Action` (string).
pub const ACTION: Shape = Shape {
    name: "Action",
    min: Some(0),
    max: Some(10000),
    pattern: r#"(lambda:[*]|lambda:[a-zA-Z]+|[*])"#,
};

/// `Principal` (string).
pub const PRINCIPAL: Shape = Shape {
    name: "Principal",
    min: Some(0),
    max: Some(2048),
    pattern: r#"[^\s]+"#,
};

/// `SourceOwner` (string).
pub const SOURCE_OWNER: Shape = Shape {
    name: "SourceOwner",
    min: Some(0),
    max: Some(12),
    pattern: r#"\d{12}"#,
};

/// `PrincipalOrgID` (string).
pub const PRINCIPAL_ORG_ID: Shape = Shape {
    name: "PrincipalOrgID",
    min: Some(12),
    max: Some(34),
    pattern: r#"o-[a-z0-9]{10,32}"#,
};

/// `Arn` (string).
pub const ARN: Shape = Shape {
    name: "Arn",
    min: Some(0),
    max: Some(10000),
    pattern: r#"arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1})?:(\d{12})?:(.*)"#,
};

/// Every error type of the model: the member its body carries the message in, and whether
/// the caller is at fault (the model's `senderFault`: `Type` `User`, else `Service`).
pub const ERROR_MESSAGE_MEMBERS: &[(&str, &str, bool)] = &[
    ("AliasLimitExceededException", "message", true),
    ("CallbackTimeoutException", "Message", true),
    ("CapacityProviderLimitExceededException", "message", true),
    ("CodeArtifactUserDeletedException", "message", true),
    ("CodeArtifactUserFailedException", "message", true),
    ("CodeArtifactUserPendingException", "message", true),
    ("CodeSigningConfigNotFoundException", "Message", true),
    ("CodeStorageExceededException", "message", true),
    ("CodeVerificationFailedException", "Message", true),
    ("DurableExecutionAlreadyStartedException", "Message", true),
    ("EC2AccessDeniedException", "Message", false),
    ("EC2ThrottledException", "Message", false),
    ("EC2UnexpectedException", "Message", false),
    ("EFSIOException", "Message", true),
    ("EFSMountConnectivityException", "Message", true),
    ("EFSMountFailureException", "Message", true),
    ("EFSMountTimeoutException", "Message", true),
    ("ENILimitReachedException", "Message", false),
    ("ENINotReadyException", "Message", false),
    (
        "FunctionVersionsPerCapacityProviderLimitExceededException",
        "message",
        true,
    ),
    ("InvalidCodeSignatureException", "Message", true),
    ("InvalidParameterValueException", "message", true),
    ("InvalidRequestContentException", "message", true),
    ("InvalidRuntimeException", "Message", false),
    ("InvalidSecurityGroupIDException", "Message", false),
    ("InvalidSubnetIDException", "Message", false),
    ("InvalidZipFileException", "Message", false),
    ("KMSAccessDeniedException", "Message", false),
    ("KMSDisabledException", "Message", false),
    ("KMSInvalidStateException", "Message", false),
    ("KMSNotFoundException", "Message", false),
    ("ModeNotSupportedException", "message", true),
    ("NoPublishedVersionException", "Message", true),
    ("PolicyLengthExceededException", "message", true),
    ("PreconditionFailedException", "message", true),
    (
        "ProvisionedConcurrencyConfigNotFoundException",
        "message",
        true,
    ),
    ("PublicPolicyException", "Message", true),
    ("RecursiveInvocationException", "Message", true),
    ("RequestTooLargeException", "message", true),
    ("ResourceConflictException", "message", true),
    ("ResourceInUseException", "Message", true),
    ("ResourceNotFoundException", "Message", true),
    ("ResourceNotReadyException", "message", false),
    ("RuntimeAliasDeletedException", "message", true),
    ("RuntimeVersionDeletedException", "message", true),
    ("S3FilesMountConnectivityException", "Message", true),
    ("S3FilesMountFailureException", "Message", true),
    ("S3FilesMountTimeoutException", "Message", true),
    ("SerializedRequestEntityTooLargeException", "message", true),
    ("ServiceException", "Message", false),
    ("ServiceQuotaExceededException", "Message", true),
    ("SnapStartException", "Message", true),
    ("SnapStartNotReadyException", "Message", true),
    ("SnapStartRegenerationFailureException", "Message", true),
    ("SnapStartTimeoutException", "Message", true),
    ("SubnetIPAddressLimitReachedException", "Message", false),
    ("TooManyRequestsException", "message", true),
    ("UnsupportedMediaTypeException", "message", true),
];

/// The member a modeled error type carries its message in and whether it is the sender's
/// fault; `None` for a type the model does not define (one answered by the service's
/// front door, not by Lambda).
pub fn message_member(type_name: &str) -> Option<(&'static str, bool)> {
    ERROR_MESSAGE_MEMBERS
        .iter()
        .find(|(n, _, _)| *n == type_name)
        .map(|(_, m, f)| (*m, *f))
}
