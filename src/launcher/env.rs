//! The environment Ray's processes need to use raymon and Grafana: given to
//! `ray start` by `up`, and printed by `raymon env` for a notebook, which
//! either connects to the Ray of a running `up` or starts its own before
//! `up --attach`. Knows the variable names and where `up` keeps its
//! choices, not how processes start.

use std::path::PathBuf;

use super::auth;
use super::ports;
use super::ray;
use super::status;
use super::up;
use super::urls::Urls;
use crate::cli::flags::{AuthMode, EnvArgs, EnvFormat, GrafanaMode};

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

/// Variables by name, in the order they are printed.
pub type Vars = Vec<(&'static str, String)>;

/// What `raymon env` prints, and lines for standard error. With a running
/// `up` on the data dir: the ports it chose, its Ray's temp dir and address
/// (`RAY_ADDRESS`, for `ray.init(address="auto")`). Without one: the ports a
/// later `up --attach` will take, kept in the data dir, and the credentials,
/// made now, so that the notebook's own `ray.init()` starts a dashboard that
/// already points at raymon and Grafana. `RAY_TMPDIR` puts that Ray's
/// sessions where `up` looks for them.
pub fn env_vars(
    args: &EnvArgs,
    service_prefix: Option<&str>,
) -> anyhow::Result<(Vars, Vec<String>)> {
    let data = up::data_dir_from_env(args.stack.data_dir.as_deref());
    let report = status::report(&data);
    let mut stack = args.stack.clone();
    let mut listen = args.listen_address;
    let mut said = Vec::new();
    let (temp_dir, ray_address, login): (PathBuf, _, _) = if report.running {
        let s = &report.stack;
        if let Some(l) = s.listen {
            listen = l.raymon;
            stack.grafana_listen = l.grafana;
            stack.dashboard_port = l.dashboard_port;
        }
        let login = match s.api_auth {
            true => auth::load(&data)?.map(|c| c.raymon),
            false => None,
        };
        let temp = match &s.ray_temp_dir {
            Some(t) => t.clone(),
            None => up::temp_dir(&args.stack)?,
        };
        (temp, s.ray_address.clone(), login)
    } else if let Some(pid) = report.pids.get("up") {
        anyhow::bail!(
            "raymon up (process {pid}) with data dir {} is still starting; run raymon env \
             again once `raymon status` exits 0",
            data.display()
        );
    } else {
        std::fs::create_dir_all(&data)
            .map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", data.display()))?;
        let path_env = std::env::var("PATH").unwrap_or_default();
        let mode = up::resolve_grafana(
            args.grafana,
            None,
            std::path::Path::new("shifter"),
            "",
            &path_env,
        )
        .mode;
        let mut grafana = stack.grafana_listen;
        let (_, moved) = ports::settle_stack(
            stack.port_range,
            ports::StackPorts {
                raymon: &mut listen,
                // Grafana's own port moves only when `up` will start one.
                grafana: matches!(mode, GrafanaMode::Native | GrafanaMode::Shifter)
                    .then_some(&mut grafana),
                ray: None,
                promised: (false, false),
            },
        )?;
        said.extend(moved);
        // With built-in dashboards raymon is Ray's "Grafana".
        stack.grafana_listen = match mode {
            GrafanaMode::Builtin => listen,
            _ => grafana,
        };
        let promise = status::Listen {
            raymon: listen,
            grafana: stack.grafana_listen,
            dashboard_port: stack.dashboard_port,
        };
        promise.write(&data).map_err(|e| {
            anyhow::anyhow!(
                "cannot write {}: {e}",
                data.join(status::ENV_FILE).display()
            )
        })?;
        let login = match args.auth {
            AuthMode::Basic => Some(auth::load_or_create(&data)?.0.raymon),
            AuthMode::None => None,
        };
        (up::temp_dir(&args.stack)?, None, login)
    };
    let urls = up::urls_for(&stack, listen, service_prefix);
    let headers = login.as_ref().map(auth::ray_prometheus_headers);
    let mut vars = ray_env(&urls, &stack.datasource_name, headers.as_deref());
    match ray::ray_tmpdir(&temp_dir) {
        Some(dir) => vars.push(("RAY_TMPDIR", dir.display().to_string())),
        None => said.push(format!(
            "Ray's temp dir {} is not named `ray`, so RAY_TMPDIR cannot name it: \
             pass _temp_dir=\"{}\" to ray.init()",
            temp_dir.display(),
            temp_dir.display()
        )),
    }
    if let Some(a) = ray_address {
        vars.push(("RAY_ADDRESS", a));
    }
    Ok((vars, said))
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
