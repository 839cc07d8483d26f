//! A parser for series selectors (`match[]`, `match_target`): `name`,
//! `name{…}` or `{…}` with `=`, `!=`, `=~`, `!~` matchers, as Prometheus's
//! `parser.ParseMetricSelector` accepts them.
//!
//! Only selectors, never full PromQL; knows nothing of HTTP.

use crate::model::{METRIC_NAME, MatchOp, Matcher, MatcherError};

/// Parses one selector into matchers. Errors read like Prometheus's:
/// `1:5: parse error: …`.
pub fn parse_metric_selector(input: &str) -> Result<Vec<Matcher>, String> {
    let mut p = Parser {
        s: input.as_bytes(),
        src: input,
        i: 0,
    };
    p.selector()
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

struct Parser<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn err(&self, at: usize, msg: impl std::fmt::Display) -> String {
        format!("1:{}: parse error: {msg}", at + 1)
    }

    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn ident(&mut self, colons: bool) -> Option<&str> {
        let start = self.i;
        let ok_first = |b: u8| b.is_ascii_alphabetic() || b == b'_' || (colons && b == b':');
        if !self.s.get(self.i).is_some_and(|&b| ok_first(b)) {
            return None;
        }
        self.i += 1;
        while self
            .s
            .get(self.i)
            .is_some_and(|&b| ok_first(b) || b.is_ascii_digit())
        {
            self.i += 1;
        }
        Some(&self.src[start..self.i])
    }

    fn unexpected(&self, what: &str) -> String {
        match self.src[self.i..].chars().next() {
            None => self.err(self.i, format!("unexpected end of input{what}")),
            Some(c) => self.err(self.i, format!("unexpected character{what}: {c:?}")),
        }
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, String> {
        self.ws();
        let name = self.ident(true).map(str::to_string);
        self.ws();
        let mut matchers = Vec::new();
        if self.s.get(self.i) == Some(&b'{') {
            self.i += 1;
            self.matchers(&mut matchers)?;
        } else if name.is_none() {
            return Err(self.unexpected(""));
        }
        self.ws();
        if self.i < self.s.len() {
            return Err(self.err(
                self.i,
                format!("unexpected {:?} in series selector", &self.src[self.i..]),
            ));
        }
        if let Some(name) = name {
            if let Some(m) = matchers.iter().find(|m| m.name == METRIC_NAME) {
                return Err(self.err(
                    0,
                    format!(
                        "metric name must not be set twice: {name:?} or {:?}",
                        m.value
                    ),
                ));
            }
            matchers.push(Matcher::equal(METRIC_NAME, name));
        }
        Ok(matchers)
    }

    fn matchers(&mut self, out: &mut Vec<Matcher>) -> Result<(), String> {
        loop {
            self.ws();
            if self.s.get(self.i) == Some(&b'}') {
                self.i += 1;
                return Ok(());
            }
            let name_at = self.i;
            let Some(name) = self.ident(false).map(str::to_string) else {
                return Err(self.unexpected(" inside braces"));
            };
            self.ws();
            let op = match (self.s.get(self.i), self.s.get(self.i + 1)) {
                (Some(b'='), Some(b'~')) => MatchOp::Regex,
                (Some(b'!'), Some(b'~')) => MatchOp::NotRegex,
                (Some(b'!'), Some(b'=')) => MatchOp::NotEqual,
                (Some(b'='), _) => MatchOp::Equal,
                _ => return Err(self.unexpected(" inside braces")),
            };
            self.i += if op == MatchOp::Equal { 1 } else { 2 };
            self.ws();
            let value = self.string()?;
            // Prometheus reports a bad regex at the matcher's label name, in
            // Go's `regexp` words.
            let m = Matcher::new(op, name, value).map_err(|e| match e {
                MatcherError::Regex { pattern, source } => {
                    self.err(name_at, go_regex_error(&pattern, &source))
                }
            })?;
            out.push(m);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(self.unexpected(" inside braces")),
            }
        }
    }

    /// A double-, single- or back-quoted string with Go's escapes.
    fn string(&mut self) -> Result<String, String> {
        let start = self.i;
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'"' | b'\'' | b'`')) => q,
            _ => return Err(self.unexpected(" inside braces")),
        };
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.src[self.i..].chars().next() else {
                return Err(self.err(start, "unterminated quoted string"));
            };
            self.i += c.len_utf8();
            if c as u32 == u32::from(quote) {
                return Ok(out);
            }
            if c == '\\' && quote != b'`' {
                let e = self.escape(quote)?;
                out.push(e);
            } else if c == '\n' && quote != b'`' {
                return Err(self.err(start, "unterminated quoted string"));
            } else {
                out.push(c);
            }
        }
    }

    fn escape(&mut self, quote: u8) -> Result<char, String> {
        let at = self.i;
        let bad = |p: &Self| p.err(at, "unknown escape sequence");
        let Some(&c) = self.s.get(self.i) else {
            return Err(self.err(at, "unterminated quoted string"));
        };
        self.i += 1;
        let hex = |p: &mut Self, n: usize| -> Result<u32, String> {
            let digits = p.src.get(p.i..p.i + n).ok_or_else(|| bad(p))?;
            let v = u32::from_str_radix(digits, 16).map_err(|_| bad(p))?;
            p.i += n;
            Ok(v)
        };
        let ch = match c {
            b'a' => '\u{7}',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'v' => '\u{b}',
            b'\\' => '\\',
            q if q == quote => q as char,
            b'"' | b'\'' => c as char,
            b'x' => char::from_u32(hex(self, 2)?).ok_or_else(|| bad(self))?,
            b'u' => char::from_u32(hex(self, 4)?).ok_or_else(|| bad(self))?,
            b'U' => char::from_u32(hex(self, 8)?).ok_or_else(|| bad(self))?,
            b'0'..=b'7' => {
                let digits = self
                    .src
                    .get(self.i - 1..self.i + 2)
                    .ok_or_else(|| bad(self))?;
                let v = u32::from_str_radix(digits, 8).map_err(|_| bad(self))?;
                self.i += 2;
                char::from_u32(v)
                    .filter(|_| v < 256)
                    .ok_or_else(|| bad(self))?
            }
            _ => return Err(bad(self)),
        };
        Ok(ch)
    }
}

/// Go's `regexp.Compile` message for the common syntax errors, else the
/// Rust one, in the form ``error parsing regexp: <code>: `<expr>` ``.
fn go_regex_error(pattern: &str, e: &regex::Error) -> String {
    let full = format!("^(?:{pattern})$");
    let text = e.to_string();
    let kind = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or(&text);
    let (code, arg) = match kind {
        "unclosed group" => ("missing closing )", full),
        "unopened group" => ("unexpected )", full),
        "unclosed character class" => {
            let from = full.rfind('[').unwrap_or(0);
            ("missing closing ]", full[from..].to_string())
        }
        "repetition operator missing expression" => {
            let op = pattern
                .chars()
                .find(|c| matches!(c, '*' | '+' | '?'))
                .map(String::from)
                .unwrap_or_default();
            ("missing argument to repetition operator", op)
        }
        _ => return format!("error parsing regexp: {kind}: `{full}`"),
    };
    format!("error parsing regexp: {code}: `{arg}`")
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
        assert!(show("").starts_with("ERR 1:1: parse error: unexpected end of input"));
        assert!(show("up{").contains("unexpected end of input inside braces"));
        assert!(show("up{a=\"b\"").contains("unexpected end of input inside braces"));
        assert!(show("up[5m]").starts_with("ERR 1:3:"));
        assert_eq!(
            show("{x=~\"(\"}"),
            "ERR 1:2: parse error: error parsing regexp: missing closing ): `^(?:()$`"
        );
        assert!(show("up{__name__=\"x\"}").contains("metric name must not be set twice"));
        assert!(show("{a=\"b}").contains("unterminated quoted string"));
        assert!(show("sum(up)").starts_with("ERR"));
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
