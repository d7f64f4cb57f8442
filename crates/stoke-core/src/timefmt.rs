//! Lambda's timestamp format: `2019-10-23T18:22:30.293+0000` (milliseconds, `+0000` offset).

use time::OffsetDateTime;
use time::macros::format_description;

/// Formats a UTC instant as Lambda's `LastModified`.
pub fn lambda_timestamp(t: OffsetDateTime) -> String {
    let fmt = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000+0000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_lambdas_last_modified() {
        let t = time::macros::datetime!(2019-10-23 18:22:30.293 UTC);
        assert_eq!(lambda_timestamp(t), "2019-10-23T18:22:30.293+0000");
    }
}
