//! The environment Ray's processes need to use raymon and Grafana: given to
//! `ray start` by `up`, and printed by `raymon env` for a notebook that calls
//! `ray.init()` itself. Knows the variable names, not how processes start.

use super::urls::Urls;
use crate::cli::flags::EnvFormat;

/// The variables, in a stable order; `prometheus_headers` is
/// `RAY_PROMETHEUS_HEADERS` when raymon wants credentials.
pub fn ray_env(
    urls: &Urls,
    datasource_name: &str,
    prometheus_headers: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("RAY_GRAFANA_HOST", urls.grafana_local.clone()),
        ("RAY_GRAFANA_IFRAME_HOST", urls.grafana_public.clone()),
        ("RAY_PROMETHEUS_HOST", urls.raymon.clone()),
        ("RAY_PROMETHEUS_NAME", datasource_name.to_string()),
    ];
    if let Some(h) = prometheus_headers {
        vars.push(("RAY_PROMETHEUS_HEADERS", h.to_string()));
    }
    vars
}

/// The variables as `format` writes them, ending with a newline.
pub fn render(vars: &[(&str, String)], format: EnvFormat) -> String {
    let mut out = String::new();
    match format {
        EnvFormat::Shell => {
            for (k, v) in vars {
                out.push_str(&format!("export {k}={}\n", shell_quote(v)));
            }
        }
        EnvFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
                .collect();
            out.push_str(&serde_json::Value::Object(map).to_string());
            out.push('\n');
        }
        EnvFormat::Python => {
            out.push_str("import os\n");
            for (k, v) in vars {
                // A JSON string is a valid Python string literal.
                let lit = serde_json::Value::String(v.clone()).to_string();
                out.push_str(&format!("os.environ[\"{k}\"] = {lit}\n"));
            }
        }
    }
    out
}

/// Single quotes, with embedded ones closed, escaped and reopened.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quotes_single_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
