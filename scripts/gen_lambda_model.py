#!/usr/bin/env python3
"""Writes crates/stoke-core/src/model.rs from boto3's Lambda service model.

The constraints Stoke checks (patterns, lengths, ranges) and the member each error type carries
its message in (`Message` or `message`) are read from botocore's
`data/lambda/2015-03-31/service-2.json`, so that messages quote what the model says. Run it
after a boto3 upgrade:

    .venv/bin/python scripts/gen_lambda_model.py [--out FILE] [path/to/service-2.json[.gz]]

With no path it finds the model of the botocore it runs with; `--out` writes elsewhere (the
e2e tests compare a fresh one with the committed file).
"""

import gzip
import json
import pathlib
import shutil
import subprocess
import sys

# The shapes Stoke validates against, and the Rust name of each.
SHAPES = [
    "FunctionName",
    "NamespacedFunctionName",
    "UnqualifiedFunctionName",
    "RoleArn",
    "Handler",
    "Description",
    "Qualifier",
    "NumericLatestPublishedOrAliasQualifier",
    "Version",
    "VersionWithLatestPublished",
    "AdditionalVersion",
    "Alias",
    "EnvironmentVariableName",
    "TaggableResource",
    "TagKey",
    "TagValue",
    "DestinationArn",
    "MemorySize",
    "Timeout",
    "EphemeralStorageSize",
    "MaximumRetryAttempts",
    "MaximumEventAgeInSeconds",
    "MaxListItems",
    "MaxFunctionEventInvokeConfigListItems",
    "ReservedConcurrentExecutions",
    "StatementId",
    "NamespacedStatementId",
    "Action",
    "Principal",
    "SourceOwner",
    "PrincipalOrgID",
    "Arn",
]

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/stoke-core/src/model.rs"


def model_path(args):
    if args:
        return pathlib.Path(args[0])
    import botocore

    base = pathlib.Path(botocore.__file__).parent / "data/lambda/2015-03-31"
    for name in ("service-2.json.gz", "service-2.json"):
        if (base / name).exists():
            return base / name
    sys.exit(f"no Lambda model under {base}")


def load(path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def snake_upper(name):
    out = ""
    for i, c in enumerate(name):
        if c.isupper() and i and (not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower())):
            out += "_"
        out += c.upper()
    return out


def rust_str(s):
    # A raw string with enough hashes that the pattern cannot end it.
    hashes = "#"
    while f'"{hashes}' in s:
        hashes += "#"
    return f'r{hashes}"{s}"{hashes}'


def opt(v):
    return "None" if v is None else f"Some({v})"


def main():
    args = sys.argv[1:]
    out = OUT
    if args[:1] == ["--out"] and len(args) > 1:
        out = pathlib.Path(args[1])
        args = args[2:]
    path = model_path(args)
    model = load(path)
    shapes = model["shapes"]
    version = model.get("metadata", {}).get("apiVersion", "?")
    lines = [
        "//! The constraints of the Lambda API model, generated from boto3's service model",
        f"//! (`botocore/data/lambda/{version}/service-2.json`) by `scripts/gen_lambda_model.py`;",
        "//! do not edit by hand. [`validate`](crate::validate) quotes these patterns and limits in",
        "//! its messages, and [`message_member`] says which member each modeled error carries its",
        "//! message in (the model spells it `Message` for some types and `message` for others).",
        "",
        "/// One shape of the model: its length (strings) or value (numbers) bounds and its pattern",
        "/// (`\"\"` if it has none).",
        "#[derive(Debug, Clone, Copy, PartialEq, Eq)]",
        "pub struct Shape {",
        "    pub name: &'static str,",
        "    pub min: Option<i64>,",
        "    pub max: Option<i64>,",
        "    pub pattern: &'static str,",
        "}",
        "",
    ]
    for name in SHAPES:
        s = shapes[name]
        lines += [
            f"/// `{name}` ({s['type']}).",
            f"pub const {snake_upper(name)}: Shape = Shape {{",
            f'    name: "{name}",',
            f"    min: {opt(s.get('min'))},",
            f"    max: {opt(s.get('max'))},",
            f"    pattern: {rust_str(s.get('pattern', ''))},",
            "};",
            "",
        ]
    errors = sorted(
        (
            n,
            "Message" if "Message" in s["members"] else "message",
            "true" if s.get("error", {}).get("senderFault") else "false",
        )
        for n, s in shapes.items()
        if s.get("exception")
    )
    lines += [
        "/// Every error type of the model: the member its body carries the message in, and whether",
        "/// the caller is at fault (the model's `senderFault`: `Type` `User`, else `Service`).",
        "pub const ERROR_MESSAGE_MEMBERS: &[(&str, &str, bool)] = &[",
    ]
    lines += [f'    ("{n}", "{m}", {f}),' for n, m, f in errors]
    lines += [
        "];",
        "",
        "/// The member a modeled error type carries its message in and whether it is the sender's",
        "/// fault; `None` for a type the model does not define (one answered by the service's",
        "/// front door, not by Lambda).",
        "pub fn message_member(type_name: &str) -> Option<(&'static str, bool)> {",
        "    ERROR_MESSAGE_MEMBERS",
        "        .iter()",
        "        .find(|(n, _, _)| *n == type_name)",
        "        .map(|(_, m, f)| (*m, *f))",
        "}",
    ]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # As `cargo fmt` leaves it, so that a fresh table compares equal to the committed one.
    if shutil.which("rustfmt"):
        subprocess.run(["rustfmt", "--edition", "2024", str(out)], check=True)
    print(f"wrote {out} from {path}")


if __name__ == "__main__":
    main()
