//! Grafana's template variables as Ray's dashboards use them: reading their
//! definitions from dashboard JSON, choosing current values (URL `var-*`
//! parameters, the saved value, the first option), turning query results
//! into options (`regex`, `sort`), and substituting `$var`, `${var}`,
//! `${var:format}` and `[[var]]` into expressions with the Prometheus
//! datasource's escaping (Grafana 9.4 `templateSrv.replace` with
//! `interpolateQueryExpr`).
//!
//! Knows nothing of HTTP or storage: the queries of query variables are
//! parsed here ([`VarQuery`]) and run by the caller.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

/// The value that stands for every option ("All").
pub const ALL: &str = "$__all";

/// Why a variable, its value or its query is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "variable {name}: value {value:?} contains {what}, which cannot appear in a dashboard query"
    )]
    BadValue {
        name: String,
        value: String,
        what: &'static str,
    },
    #[error("variable {name}: {value:?} is not one of its options ({options})")]
    NotAnOption {
        name: String,
        value: String,
        options: String,
    },
    #[error("variable {name}: regex {regex:?} does not compile: {why}")]
    Regex {
        name: String,
        regex: String,
        why: String,
    },
    #[error("unknown format {format:?} in ${{{name}:{format}}}")]
    Format { name: String, format: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Query,
    Custom,
    Datasource,
    Interval,
    Constant,
    Textbox,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VarOption {
    pub text: String,
    pub value: String,
}

/// A template variable with its options and current values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variable {
    pub name: String,
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub multi: bool,
    #[serde(rename = "includeAll")]
    pub include_all: bool,
    #[serde(rename = "allValue")]
    pub all_value: Option<String>,
    /// 0 shown, 1 label hidden, 2 hidden.
    pub hide: i64,
    /// The query (query variables), the option list (custom, interval).
    pub query: String,
    pub regex: String,
    pub sort: i64,
    pub options: Vec<VarOption>,
    /// Current values; `[ALL]` for "All".
    pub current: Vec<String>,
    /// Why the options could not be found, if so.
    pub error: Option<String>,
}

fn str_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Values of a saved `current.value` (a string or a list).
fn values_of(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().filter_map(str_of).collect(),
        v => str_of(v).into_iter().collect(),
    }
}

/// The variables of a dashboard's `templating.list`, in order, with their
/// saved values; options of query variables are filled in later.
pub fn variables(dashboard: &Value) -> Vec<Variable> {
    let list = dashboard
        .pointer("/templating/list")
        .and_then(Value::as_array)
        .map_or(&[][..], |v| v.as_slice());
    list.iter().filter_map(variable).collect()
}

fn variable(v: &Value) -> Option<Variable> {
    let name = v.get("name").and_then(Value::as_str)?.to_string();
    let kind = match v.get("type").and_then(Value::as_str).unwrap_or("") {
        "query" => Kind::Query,
        "custom" => Kind::Custom,
        "datasource" => Kind::Datasource,
        "interval" => Kind::Interval,
        "constant" => Kind::Constant,
        "textbox" => Kind::Textbox,
        _ => Kind::Other,
    };
    let query = match v.get("query") {
        Some(Value::Object(o)) => o.get("query").and_then(str_of).unwrap_or_default(),
        Some(q) => str_of(q).unwrap_or_default(),
        None => String::new(),
    };
    let query = if query.is_empty() {
        v.get("definition").and_then(str_of).unwrap_or_default()
    } else {
        query
    };
    let saved_options: Vec<VarOption> = v
        .get("options")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|o| {
                    let value = o.get("value").and_then(str_of)?;
                    let text = o
                        .get("text")
                        .and_then(str_of)
                        .unwrap_or_else(|| value.clone());
                    Some(VarOption { text, value })
                })
                .filter(|o| o.value != ALL)
                .collect()
        })
        .unwrap_or_default();
    let options = match kind {
        Kind::Custom if !query.trim().is_empty() => custom_options(&query),
        Kind::Interval if !query.trim().is_empty() => query
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| VarOption {
                text: s.to_string(),
                value: s.to_string(),
            })
            .collect(),
        Kind::Constant | Kind::Textbox => vec![VarOption {
            text: query.clone(),
            value: query.clone(),
        }],
        Kind::Query => Vec::new(),
        _ => saved_options,
    };
    let current = v
        .pointer("/current/value")
        .map(values_of)
        .unwrap_or_default();
    Some(Variable {
        name,
        label: v.get("label").and_then(str_of),
        kind,
        multi: v.get("multi").and_then(Value::as_bool).unwrap_or(false),
        include_all: v
            .get("includeAll")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        all_value: v.get("allValue").and_then(str_of).filter(|s| !s.is_empty()),
        hide: v.get("hide").and_then(Value::as_i64).unwrap_or(0),
        query,
        regex: v.get("regex").and_then(str_of).unwrap_or_default(),
        sort: v.get("sort").and_then(Value::as_i64).unwrap_or(0),
        options,
        current,
        error: None,
    })
}

/// A custom variable's `a, b, text : value` list (commas escaped as `\,`).
pub fn custom_options(query: &str) -> Vec<VarOption> {
    static SPLIT: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"(?:\\,|[^,])+").ok());
    static KV: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^(.+)\s:\s(.+)$").ok());
    let (Some(split), Some(kv)) = (SPLIT.as_ref(), KV.as_ref()) else {
        return Vec::new();
    };
    split
        .find_iter(query)
        .map(|m| m.as_str().replace("\\,", ","))
        .map(|t| match kv.captures(&t) {
            Some(c) => VarOption {
                text: c[1].trim().to_string(),
                value: c[2].trim().to_string(),
            },
            None => VarOption {
                text: t.trim().to_string(),
                value: t.trim().to_string(),
            },
        })
        .collect()
}

/// What a query variable asks the datasource (Grafana's
/// `PrometheusMetricFindQuery`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarQuery {
    LabelNames,
    /// `label_values(label)` or `label_values(selector, label)`.
    LabelValues {
        selector: Option<String>,
        label: String,
    },
    Metrics(String),
    QueryResult(String),
    /// Anything else: a series selector.
    Series(String),
}

pub fn parse_var_query(q: &str) -> VarQuery {
    static RES: LazyLock<Option<[Regex; 4]>> = LazyLock::new(|| {
        Some([
            Regex::new(r"^label_names\(\)\s*$").ok()?,
            Regex::new(r"^label_values\((?:(.+),\s*)?([a-zA-Z_$][a-zA-Z0-9_]*)\)\s*$").ok()?,
            Regex::new(r"^metrics\((.+)\)\s*$").ok()?,
            Regex::new(r"^query_result\((.+)\)\s*$").ok()?,
        ])
    });
    let Some([names, values, metrics, result]) = RES.as_ref() else {
        return VarQuery::Series(q.to_string());
    };
    if names.is_match(q) {
        VarQuery::LabelNames
    } else if let Some(c) = values.captures(q) {
        VarQuery::LabelValues {
            selector: c.get(1).map(|m| m.as_str().to_string()),
            label: c[2].to_string(),
        }
    } else if let Some(c) = metrics.captures(q) {
        VarQuery::Metrics(c[1].to_string())
    } else if let Some(c) = result.captures(q) {
        VarQuery::QueryResult(c[1].to_string())
    } else {
        VarQuery::Series(q.to_string())
    }
}

/// A Grafana (JavaScript) regex as the `regex` crate reads it: a braces
/// that is not a repetition is a literal in JavaScript. Unslashed patterns
/// are anchored, as Grafana's `stringToJsRegex`.
pub fn js_regex(pattern: &str) -> Result<Regex, String> {
    let (body, flags) = match pattern.strip_prefix('/').and_then(|p| p.rsplit_once('/')) {
        Some((body, flags)) => (body.to_string(), flags.to_string()),
        None => (format!("^{pattern}$"), String::new()),
    };
    static REPEAT: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^\{\d+(,\d*)?\}").ok());
    let mut out = String::with_capacity(body.len() + 8);
    let mut chars = body.char_indices().peekable();
    let mut in_repeat = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some((_, n)) = chars.next() {
                    out.push(n);
                }
            }
            '{' if REPEAT.as_ref().is_some_and(|r| r.is_match(&body[i..])) && i > 0 => {
                in_repeat = true;
                out.push(c);
            }
            '{' => out.push_str("\\{"),
            '}' if in_repeat => {
                in_repeat = false;
                out.push(c);
            }
            '}' => out.push_str("\\}"),
            c => out.push(c),
        }
    }
    let prefix = if flags.contains('i') { "(?i)" } else { "" };
    Regex::new(&format!("{prefix}{out}")).map_err(|e| e.to_string())
}

/// Options from a query's results (texts), as Grafana's
/// `metricNamesToVariableValues`: the regex picks the `value`/`text` groups
/// or the first group, duplicates go, then `sort`.
pub fn options_from(
    texts: Vec<String>,
    regex: &str,
    sort: i64,
    name: &str,
) -> Result<Vec<VarOption>, Error> {
    let re = if regex.is_empty() {
        None
    } else {
        Some(js_regex(regex).map_err(|why| Error::Regex {
            name: name.to_string(),
            regex: regex.to_string(),
            why,
        })?)
    };
    let mut out: Vec<VarOption> = Vec::with_capacity(texts.len());
    let mut seen = std::collections::HashSet::new();
    for t in texts {
        let (text, value) = match &re {
            None => (t.clone(), t),
            Some(re) => {
                let Some(c) = re.captures(&t) else { continue };
                let value = c.name("value").map(|m| m.as_str().to_string());
                let text = c.name("text").map(|m| m.as_str().to_string());
                match (value, text, c.get(1)) {
                    (Some(v), Some(tx), _) => (tx, v),
                    (Some(v), None, _) => (v.clone(), v),
                    (None, Some(tx), _) => (tx.clone(), tx),
                    (None, None, Some(g)) => (g.as_str().to_string(), g.as_str().to_string()),
                    (None, None, None) => (t.clone(), t),
                }
            }
        };
        if seen.insert(value.clone()) {
            out.push(VarOption { text, value });
        }
    }
    sort_options(&mut out, sort);
    Ok(out)
}

/// Grafana's `sortVariableValues`: 1/2 alphabetical, 3/4 numerical (the
/// first number in the text), 5/6 case-insensitive; even is descending.
pub fn sort_options(options: &mut [VarOption], sort: i64) {
    if sort <= 0 {
        return;
    }
    match (sort + 1) / 2 {
        1 => options.sort_by(|a, b| a.text.cmp(&b.text)),
        2 => {
            static NUM: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"(\d+)").ok());
            let key = |o: &VarOption| -> i64 {
                NUM.as_ref()
                    .and_then(|r| r.captures(&o.text))
                    .and_then(|c| c[1].parse().ok())
                    .unwrap_or(-1)
            };
            options.sort_by_key(key);
        }
        3 => options.sort_by_key(|o| o.text.to_lowercase()),
        _ => {}
    }
    if sort % 2 == 0 {
        options.reverse();
    }
}

/// Refuses values that could end the string they are substituted into and
/// so change the query itself: dashboard pages are open to viewers who may
/// not query anything else.
pub fn check_value(name: &str, value: &str) -> Result<(), Error> {
    let what = if value.contains('"') {
        "a double quote"
    } else if value.contains('`') {
        "a backquote"
    } else if value.contains(['\n', '\r']) {
        "a line break"
    } else {
        return Ok(());
    };
    Err(Error::BadValue {
        name: name.to_string(),
        value: value.to_string(),
        what,
    })
}

/// Sets each variable's current values from the URL's `var-NAME` values
/// (checked), else keeps a saved value that is still valid, else takes the
/// first option ("All" when the variable has it).
pub fn choose_current(var: &mut Variable, from_url: Option<&[String]>) -> Result<(), Error> {
    if let Some(vals) = from_url.filter(|v| !v.is_empty()) {
        for v in vals {
            check_value(&var.name, v)?;
        }
        // Free-text values of custom and interval variables would go into
        // queries unescaped: only their options are taken.
        if matches!(var.kind, Kind::Custom | Kind::Interval) {
            for v in vals {
                let known =
                    v == ALL && var.include_all || var.options.iter().any(|o| &o.value == v);
                if !known {
                    return Err(Error::NotAnOption {
                        name: var.name.clone(),
                        value: v.clone(),
                        options: var
                            .options
                            .iter()
                            .map(|o| o.value.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        var.current = if var.multi || vals.len() == 1 {
            vals.to_vec()
        } else {
            vals[..1].to_vec()
        };
        return Ok(());
    }
    let valid =
        |v: &String| v == ALL && var.include_all || var.options.iter().any(|o| &o.value == v);
    if !var.current.is_empty() && var.current.iter().all(valid) {
        return Ok(());
    }
    var.current = if var.include_all {
        vec![ALL.to_string()]
    } else {
        var.options
            .first()
            .map(|o| o.value.clone())
            .into_iter()
            .collect()
    };
    Ok(())
}

/// Grafana's `prometheusRegularEscape`.
fn regular_escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\'', "\\\\'")
}

/// Grafana's `prometheusSpecialRegexEscape`.
fn regex_escape(v: &str) -> String {
    let v = v.replace('\\', "\\\\\\\\");
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        if "$^*{}[]'+?.()|".contains(c) {
            out.push_str("\\\\");
        }
        out.push(c);
    }
    out
}

/// The Prometheus datasource's `interpolateQueryExpr`.
fn format_prometheus(values: &[String], var: &Variable) -> String {
    if !var.multi && !var.include_all {
        return values
            .first()
            .map(|v| regular_escape(v))
            .unwrap_or_default();
    }
    let escaped: Vec<String> = values.iter().map(|v| regex_escape(v)).collect();
    match escaped.len() {
        1 => escaped[0].clone(),
        _ => format!("({})", escaped.join("|")),
    }
}

fn format_named(values: &[String], format: &str, name: &str) -> Result<String, Error> {
    Ok(match format {
        "raw" | "text" => values.join(","),
        "csv" => values.join(","),
        "pipe" => values.join("|"),
        "regex" => {
            let e: Vec<String> = values.iter().map(|v| regex::escape(v)).collect();
            if e.len() == 1 {
                e[0].clone()
            } else {
                format!("({})", e.join("|"))
            }
        }
        "singlequote" => values
            .iter()
            .map(|v| format!("'{}'", v.replace('\'', "\\'")))
            .collect::<Vec<_>>()
            .join(","),
        "doublequote" => values
            .iter()
            .map(|v| format!("\"{}\"", v.replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(","),
        _ => {
            return Err(Error::Format {
                name: name.to_string(),
                format: format.to_string(),
            });
        }
    })
}

/// Substitutes variables and built-ins (`__interval`, `__rate_interval`,
/// `__range`, ...) into `expr`. Names that are neither stay as written, as
/// in Grafana.
pub fn interpolate(
    expr: &str,
    vars: &[Variable],
    builtins: &[(&str, String)],
) -> Result<String, Error> {
    static VAR: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")
            .ok()
    });
    let Some(re) = VAR.as_ref() else {
        return Ok(expr.to_string());
    };
    let mut out = String::with_capacity(expr.len() + 32);
    let mut last = 0;
    for c in re.captures_iter(expr) {
        let Some(whole) = c.get(0) else { continue };
        let name = c
            .get(1)
            .or_else(|| c.get(2))
            .or_else(|| c.get(4))
            .map_or("", |m| m.as_str());
        let format = c.get(3).or_else(|| c.get(6)).map(|m| m.as_str());
        let replacement = if let Some((_, v)) = builtins.iter().find(|(n, _)| *n == name) {
            Some(v.clone())
        } else if let Some(var) = vars.iter().find(|v| v.name == name) {
            Some(var_text(var, format, vars, builtins)?)
        } else {
            None
        };
        out.push_str(&expr[last..whole.start()]);
        match replacement {
            Some(r) => out.push_str(&r),
            None => out.push_str(whole.as_str()),
        }
        last = whole.end();
    }
    out.push_str(&expr[last..]);
    Ok(out)
}

fn var_text(
    var: &Variable,
    format: Option<&str>,
    vars: &[Variable],
    builtins: &[(&str, String)],
) -> Result<String, Error> {
    if var.current.iter().any(|v| v == ALL) {
        // A custom "All" value is used as written (its own variables
        // substituted), never escaped.
        if let Some(all) = &var.all_value
            && !matches!(format, Some("text") | Some("queryparam"))
        {
            let others: Vec<Variable> = vars
                .iter()
                .filter(|v| v.name != var.name)
                .cloned()
                .collect();
            return interpolate(all, &others, builtins);
        }
        let every: Vec<String> = var.options.iter().map(|o| o.value.clone()).collect();
        return match format {
            Some(f) => format_named(&every, f, &var.name),
            None => Ok(format_prometheus(&every, var)),
        };
    }
    match format {
        Some(f) => format_named(&var.current, f, &var.name),
        None => Ok(format_prometheus(&var.current, var)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(
        name: &str,
        multi: bool,
        all: bool,
        all_value: Option<&str>,
        current: &[&str],
    ) -> Variable {
        Variable {
            name: name.to_string(),
            label: None,
            kind: Kind::Query,
            multi,
            include_all: all,
            all_value: all_value.map(str::to_string),
            hide: 0,
            query: String::new(),
            regex: String::new(),
            sort: 0,
            options: ["a.1", "b"]
                .iter()
                .map(|s| VarOption {
                    text: s.to_string(),
                    value: s.to_string(),
                })
                .collect(),
            current: current.iter().map(|s| s.to_string()).collect(),
            error: None,
        }
    }

    #[test]
    fn grafana_substitution_rules() {
        let vars = vec![
            var("One", false, false, None, &["x'y"]),
            var("Multi", true, true, None, &["a.1", "b"]),
            var("AllRe", false, true, Some(".+"), &[ALL]),
            var("AllList", true, true, None, &[ALL]),
            var("Single", false, true, None, &["a.1"]),
        ];
        let b = [("__rate_interval", "40s".to_string())];
        let got = interpolate(
            r#"{a="$One",b=~"$Multi",c=~"${AllRe}",d=~"[[AllList]]",e=~"$Single"}[$__rate_interval] $Unknown"#,
            &vars,
            &b,
        )
        .unwrap();
        assert_eq!(
            got,
            r#"{a="x\\'y",b=~"(a\\.1|b)",c=~".+",d=~"(a\\.1|b)",e=~"a\\.1"}[40s] $Unknown"#
        );
        assert_eq!(interpolate("${Multi:pipe}", &vars, &b).unwrap(), "a.1|b");
        assert!(interpolate("${Multi:nope}", &vars, &b).is_err());
    }

    #[test]
    fn url_values_are_checked() {
        let mut v = var("S", false, true, Some(".+"), &[]);
        assert!(choose_current(&mut v, Some(&["x\"} or up".to_string()])).is_err());
        choose_current(&mut v, None).unwrap();
        assert_eq!(v.current, vec![ALL]);
        let mut c = var("C", false, false, None, &[]);
        c.kind = Kind::Custom;
        assert!(choose_current(&mut c, Some(&["5m])) or up #".to_string()])).is_err());
        choose_current(&mut c, Some(&["b".to_string()])).unwrap();
        assert_eq!(c.current, vec!["b"]);
    }

    #[test]
    fn ray_query_result_regex() {
        let got = options_from(
            vec![
                "{SessionName=\"s1\"} 3 1700000000000".to_string(),
                "{SessionName=\"s2\"} 1 1700000000000".to_string(),
            ],
            "{SessionName=\"(?<value>.*)\".*",
            2,
            "SessionName",
        )
        .unwrap();
        let values: Vec<&str> = got.iter().map(|o| o.value.as_str()).collect();
        assert_eq!(values, ["s2", "s1"]);
    }

    #[test]
    fn var_queries() {
        assert_eq!(
            parse_var_query("label_values(ray_node_network_receive_speed{}, SessionName)"),
            VarQuery::LabelValues {
                selector: Some("ray_node_network_receive_speed{}".to_string()),
                label: "SessionName".to_string()
            }
        );
        assert_eq!(
            parse_var_query("query_result(count by (x)(up))"),
            VarQuery::QueryResult("count by (x)(up)".to_string())
        );
        assert_eq!(
            custom_options("head, worker, Big : big\\,one"),
            vec![
                VarOption {
                    text: "head".into(),
                    value: "head".into()
                },
                VarOption {
                    text: "worker".into(),
                    value: "worker".into()
                },
                VarOption {
                    text: "Big".into(),
                    value: "big,one".into()
                },
            ]
        );
    }
}
