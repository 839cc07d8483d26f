//! Series selectors in `match[]` and `match_target`: parsed by the PromQL
//! parser's `ParseMetricSelector`, plus `parseMatchersParam`'s rule that a
//! selector must not match every series.
//!
//! Only selectors, never full PromQL; knows nothing of HTTP.

use crate::model::Matcher;

/// Parses one selector into matchers. Errors are Prometheus's:
/// `1:5: parse error: …`.
pub fn parse_metric_selector(input: &str) -> Result<Vec<Matcher>, String> {
    crate::promql::parser::parse_metric_selector(input).map_err(|e| e.to_string())
}

/// Parses every `match[]` value and requires each to have a matcher that
/// rejects the empty string, as `parseMatchersParam`.
pub fn parse_match_params<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Vec<Matcher>>, String> {
    let mut sets = Vec::new();
    for v in values {
        let ms = parse_metric_selector(v)?;
        if ms.iter().all(Matcher::matches_empty) {
            return Err("match[] must contain at least one non-empty matcher".to_string());
        }
        sets.push(ms);
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(s: &str) -> String {
        match parse_metric_selector(s) {
            Ok(ms) => ms
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(","),
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn selectors() {
        assert_eq!(show("up"), r#"__name__="up""#);
        assert_eq!(
            show(" ray_tasks{State=~\"RUN.*\", job!='x',} "),
            r#"State=~"RUN.*",job!="x",__name__="ray_tasks""#
        );
        assert_eq!(show(r#"{__name__=~"ray_.*"}"#), r#"__name__=~"ray_.*""#);
        assert_eq!(show(r#"{a="\"q\"\n\x41\u00e9"}"#), "a=\"\\\"q\\\"\\nAé\"");
        assert_eq!(show("{a=`raw\\n`}"), r#"a="raw\\n""#);
        assert_eq!(show("a:b:c{}"), r#"__name__="a:b:c""#);
        assert_eq!(show("{}"), "");
    }

    #[test]
    fn selector_errors() {
        // Messages and positions as Prometheus 2.42 answers these `match[]`.
        assert_eq!(show(""), "ERR 1:1: parse error: unexpected end of input");
        assert_eq!(
            show("up{"),
            "ERR 1:4: parse error: unexpected end of input inside braces"
        );
        assert!(show("up{a=\"b\"").contains("unexpected end of input inside braces"));
        assert!(show("up[5m]").starts_with("ERR 1:3:"));
        assert_eq!(
            show("{x=~\"(\"}"),
            "ERR 1:2: parse error: error parsing regexp: missing closing ): `^(?:()$`"
        );
        assert_eq!(
            show("{a=\"b}"),
            "ERR 1:4: parse error: unterminated quoted string"
        );
        assert_eq!(show("sum(up)"), "ERR 1:4: parse error: unexpected \"(\"");
        // `ParseMetricSelector` skips the type checker, so unlike a query a
        // selector may name the metric twice; Prometheus 2.42 accepts it.
        assert_eq!(show("up{__name__=\"x\"}"), r#"__name__="x",__name__="up""#);
    }

    #[test]
    fn match_params_need_a_non_empty_matcher() {
        assert!(parse_match_params(["up", r#"{job="x"}"#]).is_ok());
        assert_eq!(
            parse_match_params([r#"{job=~".*"}"#]).unwrap_err(),
            "match[] must contain at least one non-empty matcher"
        );
        assert!(parse_match_params(["{}"]).is_err());
        assert!(parse_match_params([r#"{__name__=~".+"}"#]).is_ok());
    }
}
