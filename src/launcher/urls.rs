//! The URLs of the stack: where raymon, Grafana and Ray's dashboard are
//! reached locally (by Ray's backend and by us) and publicly (by a browser,
//! maybe through JupyterHub's proxy). Pure string work: knows nothing of
//! processes or files.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// What the URLs are built from; the environment is passed in, not read.
#[derive(Debug, Clone)]
pub struct UrlInputs<'a> {
    /// `--public-url`: Grafana's public URL, or a pattern with `{port}`.
    pub public_url: Option<&'a str>,
    /// `--jupyterhub-url`.
    pub jupyterhub_url: &'a str,
    /// `JUPYTERHUB_SERVICE_PREFIX`, as found in the environment.
    pub service_prefix: Option<&'a str>,
    pub raymon: SocketAddr,
    pub grafana: SocketAddr,
    pub dashboard_port: u16,
}

/// Every URL `up` and `env` print or hand to Ray. None ends with a slash
/// except `dashboard` (Ray's UI needs it behind a proxy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    /// raymon as Ray's backend and Grafana reach it (`RAY_PROMETHEUS_HOST`).
    pub raymon: String,
    /// Grafana as Ray's backend reaches it (`RAY_GRAFANA_HOST`).
    pub grafana_local: String,
    /// Grafana as a browser reaches it (`RAY_GRAFANA_IFRAME_HOST`).
    pub grafana_public: String,
    /// Ray's dashboard as a browser reaches it.
    pub dashboard: String,
    /// How the public URLs were found.
    pub source: UrlSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlSource {
    PublicUrl,
    JupyterHub,
    Localhost,
}

impl Urls {
    pub fn build(inp: &UrlInputs<'_>) -> Urls {
        let raymon = local_url(inp.raymon);
        let grafana_local = local_url(inp.grafana);
        let dashboard_local = format!("http://127.0.0.1:{}/", inp.dashboard_port);
        let public = inp.public_url.map(str::trim).filter(|s| is_set(s));
        let prefix = inp.service_prefix.map(str::trim).filter(|s| is_set(s));
        let (grafana_public, dashboard, source) = if let Some(p) = public {
            if p.contains("{port}") {
                (
                    trim_slash(&p.replace("{port}", &inp.grafana.port().to_string())),
                    format!(
                        "{}/",
                        trim_slash(&p.replace("{port}", &inp.dashboard_port.to_string()))
                    ),
                    UrlSource::PublicUrl,
                )
            } else {
                (trim_slash(p), dashboard_local, UrlSource::PublicUrl)
            }
        } else if let Some(prefix) = prefix {
            (
                jupyterhub_proxy(inp.jupyterhub_url, prefix, inp.grafana.port()),
                format!(
                    "{}/",
                    jupyterhub_proxy(inp.jupyterhub_url, prefix, inp.dashboard_port)
                ),
                UrlSource::JupyterHub,
            )
        } else {
            (grafana_local.clone(), dashboard_local, UrlSource::Localhost)
        };
        Urls {
            raymon,
            grafana_local,
            grafana_public,
            dashboard,
            source,
        }
    }

    /// Grafana's `[server] root_url`: its public URL with the trailing slash
    /// Grafana expects.
    pub fn grafana_root_url(&self) -> String {
        format!("{}/", self.grafana_public)
    }

    /// A line telling how to get browser-ready URLs, when only localhost ones
    /// are known.
    pub fn hint(&self) -> Option<&'static str> {
        (self.source == UrlSource::Localhost).then_some(
            "These are localhost URLs. For a browser elsewhere, pass --public-url \
             (a pattern like https://host/proxy/{port} works), or run under JupyterHub \
             (JUPYTERHUB_SERVICE_PREFIX set; --jupyterhub-url names the hub).",
        )
    }
}

/// `{hub}{prefix}proxy/{port}` with exactly one slash at each join.
pub fn jupyterhub_proxy(hub: &str, prefix: &str, port: u16) -> String {
    let hub = trim_slash(hub.trim());
    let prefix = prefix.trim().trim_matches('/');
    if prefix.is_empty() {
        format!("{hub}/proxy/{port}")
    } else {
        format!("{hub}/{prefix}/proxy/{port}")
    }
}

/// Python's `str(None)` and empty strings are how an unset value leaks into
/// an environment; neither may end up in a URL.
fn is_set(s: &str) -> bool {
    !s.is_empty() && s != "None" && s != "null"
}

fn trim_slash(s: &str) -> String {
    s.trim_end_matches('/').to_string()
}

/// A listen address as a client on this host dials it: wildcard binds are
/// reached over loopback.
pub fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(public: Option<&'a str>, prefix: Option<&'a str>) -> UrlInputs<'a> {
        UrlInputs {
            public_url: public,
            jupyterhub_url: "https://jupyter.nersc.gov/",
            service_prefix: prefix,
            raymon: "0.0.0.0:9090".parse().unwrap(),
            grafana: "127.0.0.1:3000".parse().unwrap(),
            dashboard_port: 8265,
        }
    }

    #[test]
    fn none_is_never_a_prefix() {
        let u = Urls::build(&inputs(None, Some("None")));
        assert_eq!(u.source, UrlSource::Localhost);
        assert_eq!(u.grafana_public, "http://127.0.0.1:3000");
        assert_eq!(u.raymon, "http://127.0.0.1:9090");
    }
}
