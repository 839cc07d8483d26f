//! The HTTP client settings that scrape jobs, `http_sd_configs` and
//! `remote_write` share: Prometheus 2.42's `HTTPClientConfig` from
//! prometheus/common v0.39 (`config/http_config.go`), with its defaults, its
//! `Validate` checks and their error texts. Only the settings live here; the
//! client built from them is `crate::http_client`.

use std::collections::BTreeMap;

pub(crate) use super::raw::RawHttp;
use super::raw::{RawAuthorization, RawTls};
use crate::model::gofmt::go_quote as q;

/// The HTTP client settings of a scrape job, `http_sd_configs` entry or
/// remote-write endpoint.
///
/// A `bearer_token`/`bearer_token_file` is folded into `authorization` with
/// type `Bearer`, as Prometheus does.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpClientConfig {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    /// Parsed and validated; raymon cannot fetch OAuth 2.0 tokens, so a
    /// client with one refuses every request ([`UNSUPPORTED_OAUTH2`])
    /// rather than send it without the token.
    pub oauth2: Option<OAuth2>,
    pub proxy_url: Option<String>,
    /// Headers sent to the proxy with `CONNECT` (HTTPS targets).
    pub proxy_connect_header: BTreeMap<String, Vec<String>>,
    pub tls_config: TlsConfig,
    pub follow_redirects: bool,
    pub enable_http2: bool,
}

impl Default for HttpClientConfig {
    fn default() -> HttpClientConfig {
        HttpClientConfig {
            basic_auth: None,
            authorization: None,
            oauth2: None,
            proxy_url: None,
            proxy_connect_header: BTreeMap::new(),
            tls_config: TlsConfig::default(),
            follow_redirects: true,
            enable_http2: true,
        }
    }
}

/// What raymon says of an `oauth2` section, wherever it appears.
pub const UNSUPPORTED_OAUTH2: &str = "oauth2 is not supported by raymon";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
    /// Read at every request, so a rotated password is used at once.
    pub password_file: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Authorization {
    /// `Bearer` unless set.
    pub kind: String,
    pub credentials: String,
    /// Read at every request, so rotated credentials are used at once.
    pub credentials_file: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct OAuth2 {
    pub client_id: String,
    pub client_secret: String,
    pub client_secret_file: String,
    pub scopes: Vec<String>,
    pub token_url: String,
    pub endpoint_params: BTreeMap<String, String>,
    pub proxy_url: Option<String>,
    pub tls_config: TlsConfig,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsConfig {
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
    pub server_name: String,
    pub insecure_skip_verify: bool,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

/// A TLS protocol version as Prometheus spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn parse(s: &str) -> Result<TlsVersion, String> {
        match s {
            "TLS10" => Ok(TlsVersion::Tls10),
            "TLS11" => Ok(TlsVersion::Tls11),
            "TLS12" => Ok(TlsVersion::Tls12),
            "TLS13" => Ok(TlsVersion::Tls13),
            _ => Err(format!("unknown TLS version: {s}")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "TLS10",
            TlsVersion::Tls11 => "TLS11",
            TlsVersion::Tls12 => "TLS12",
            TlsVersion::Tls13 => "TLS13",
        }
    }
}

/// Prometheus's `HTTPClientConfig.Validate`, in its order, plus the field
/// parsing (`proxy_url`, TLS versions) its unmarshalling does.
pub(crate) fn from_raw(h: RawHttp) -> Result<HttpClientConfig, String> {
    convert(h, true)
}

/// For sections where 2.42 never calls `Validate` (`http_sd_configs`: its
/// settings are inlined, so their own unmarshalling does not run): nothing
/// is refused, and conflicting credentials resolve as prometheus/common's
/// round trippers do at request time, the outermost winning (basic auth,
/// then `bearer_token`, then `bearer_token_file`, then `authorization`).
pub(crate) fn from_raw_unvalidated(h: RawHttp) -> Result<HttpClientConfig, String> {
    convert(h, false)
}

fn convert(mut h: RawHttp, validate: bool) -> Result<HttpClientConfig, String> {
    if !validate {
        let bearer = h.bearer_token.take().filter(|b| !b.is_empty());
        let bearer_file = h.bearer_token_file.take().filter(|b| !b.is_empty());
        if h.basic_auth.is_some() {
            h.authorization = None;
        } else if let Some(b) = bearer {
            h.authorization = Some(RawAuthorization {
                credentials: Some(b),
                ..Default::default()
            });
        } else if let Some(f) = bearer_file {
            h.authorization = Some(RawAuthorization {
                credentials_file: Some(f),
                ..Default::default()
            });
        }
        if let Some(a) = &mut h.authorization
            && a.credentials.as_deref().is_some_and(|c| !c.is_empty())
        {
            a.credentials_file = None;
        }
        if let Some(b) = &mut h.basic_auth
            && b.password_file.as_deref().is_some_and(|f| !f.is_empty())
        {
            b.password = None;
        }
        h.proxy_connect_header = h.proxy_connect_header.filter(|_| h.proxy_url.is_some());
    }
    let tls_config = tls_from_raw(h.tls_config.unwrap_or_default())?;
    let proxy_url = h.proxy_url.filter(|p| !p.is_empty());
    if let Some(p) = &proxy_url {
        check_proxy_url(p)?;
    }
    let oauth2 = h.oauth2.map(oauth2_from_raw).transpose()?;
    let bearer = h.bearer_token.unwrap_or_default();
    let bearer_file = h.bearer_token_file.unwrap_or_default();
    let basic_auth = h.basic_auth.map(|b| BasicAuth {
        username: b.username.unwrap_or_default(),
        password: b.password.unwrap_or_default(),
        password_file: b.password_file.unwrap_or_default(),
    });
    if !bearer.is_empty() && !bearer_file.is_empty() {
        return Err("at most one of bearer_token & bearer_token_file must be configured".into());
    }
    if (basic_auth.is_some() || oauth2.is_some()) && (!bearer.is_empty() || !bearer_file.is_empty())
    {
        return Err(
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"
                .into(),
        );
    }
    if let Some(b) = &basic_auth
        && !b.password.is_empty()
        && !b.password_file.is_empty()
    {
        return Err("at most one of basic_auth password & password_file must be configured".into());
    }
    let mut authorization = None;
    if let Some(a) = h.authorization {
        if !bearer.is_empty() || !bearer_file.is_empty() {
            return Err(
                "authorization is not compatible with bearer_token & bearer_token_file".into(),
            );
        }
        let a = Authorization {
            kind: a.kind.unwrap_or_default().trim().to_string(),
            credentials: a.credentials.unwrap_or_default(),
            credentials_file: a.credentials_file.unwrap_or_default(),
        };
        if !a.credentials.is_empty() && !a.credentials_file.is_empty() {
            return Err(
                "at most one of authorization credentials & credentials_file must be configured"
                    .into(),
            );
        }
        let kind = if a.kind.is_empty() {
            "Bearer".to_string()
        } else {
            a.kind.clone()
        };
        if validate && kind.eq_ignore_ascii_case("basic") {
            return Err(
                r#"authorization type cannot be set to "basic", use "basic_auth" instead"#.into(),
            );
        }
        if basic_auth.is_some() || oauth2.is_some() {
            return Err(
                "at most one of basic_auth, oauth2 & authorization must be configured".into(),
            );
        }
        authorization = Some(Authorization { kind, ..a });
    } else if !bearer.is_empty() || !bearer_file.is_empty() {
        authorization = Some(Authorization {
            kind: "Bearer".to_string(),
            credentials: bearer,
            credentials_file: bearer_file,
        });
    }
    if let Some(o) = oauth2.as_ref().filter(|_| validate) {
        if basic_auth.is_some() {
            return Err(
                "at most one of basic_auth, oauth2 & authorization must be configured".into(),
            );
        }
        if o.client_id.is_empty() {
            return Err("oauth2 client_id must be configured".into());
        }
        if o.client_secret.is_empty() && o.client_secret_file.is_empty() {
            return Err(
                "either oauth2 client_secret or client_secret_file must be configured".into(),
            );
        }
        if o.token_url.is_empty() {
            return Err("oauth2 token_url must be configured".into());
        }
        if !o.client_secret.is_empty() && !o.client_secret_file.is_empty() {
            return Err(
                "at most one of oauth2 client_secret & client_secret_file must be configured"
                    .into(),
            );
        }
    }
    let proxy_connect_header = h.proxy_connect_header.unwrap_or_default();
    if !proxy_connect_header.is_empty() && proxy_url.is_none() {
        return Err(
            "if proxy_connect_header is configured proxy_url must also be configured".into(),
        );
    }
    Ok(HttpClientConfig {
        basic_auth,
        authorization,
        oauth2,
        proxy_url,
        proxy_connect_header,
        tls_config,
        follow_redirects: h.follow_redirects.unwrap_or(true),
        enable_http2: h.enable_http2.unwrap_or(true),
    })
}

fn tls_from_raw(t: RawTls) -> Result<TlsConfig, String> {
    let version = |v: Option<String>| v.filter(|s| !s.is_empty()).map(|s| TlsVersion::parse(&s));
    Ok(TlsConfig {
        ca_file: t.ca_file.unwrap_or_default(),
        cert_file: t.cert_file.unwrap_or_default(),
        key_file: t.key_file.unwrap_or_default(),
        server_name: t.server_name.unwrap_or_default(),
        insecure_skip_verify: t.insecure_skip_verify.unwrap_or(false),
        min_version: version(t.min_version).transpose()?,
        max_version: version(t.max_version).transpose()?,
    })
}

fn oauth2_from_raw(o: super::raw::RawOAuth2) -> Result<OAuth2, String> {
    let proxy_url = o.proxy_url.filter(|p| !p.is_empty());
    if let Some(p) = &proxy_url {
        check_proxy_url(p)?;
    }
    Ok(OAuth2 {
        client_id: o.client_id.unwrap_or_default(),
        client_secret: o.client_secret.unwrap_or_default(),
        client_secret_file: o.client_secret_file.unwrap_or_default(),
        scopes: o.scopes.unwrap_or_default(),
        token_url: o.token_url.unwrap_or_default(),
        endpoint_params: o.endpoint_params.unwrap_or_default(),
        proxy_url,
        tls_config: tls_from_raw(o.tls_config.unwrap_or_default())?,
    })
}

/// Go's `url.Parse` failure for a URL without a scheme. Which schemes
/// raymon can dial through (`http://` only) is checked when a request is
/// sent, so that the error shows on the targets it concerns.
fn check_proxy_url(p: &str) -> Result<(), String> {
    if p.starts_with(':') {
        return Err(format!("parse {}: missing protocol scheme", q(p)));
    }
    Ok(())
}

impl HttpClientConfig {
    /// Joins relative file paths with the configuration file's directory.
    pub(crate) fn set_directory(&mut self, join: &impl Fn(&mut String)) {
        if let Some(b) = &mut self.basic_auth {
            join(&mut b.password_file);
        }
        if let Some(a) = &mut self.authorization {
            join(&mut a.credentials_file);
        }
        if let Some(o) = &mut self.oauth2 {
            join(&mut o.client_secret_file);
            o.tls_config.set_directory(join);
        }
        self.tls_config.set_directory(join);
    }
}

impl TlsConfig {
    fn set_directory(&mut self, join: &impl Fn(&mut String)) {
        join(&mut self.ca_file);
        join(&mut self.cert_file);
        join(&mut self.key_file);
    }
}

#[cfg(test)]
mod tests {
    use super::super::raw::RawBasicAuth;
    use super::*;

    fn raw() -> RawHttp {
        RawHttp::default()
    }

    fn basic(password: &str, file: &str) -> Option<RawBasicAuth> {
        Some(RawBasicAuth {
            username: Some("u".into()),
            password: Some(password.into()),
            password_file: Some(file.into()),
        })
    }

    #[test]
    fn prometheus_validation_texts() {
        let err = |h: RawHttp| from_raw(h).unwrap_err();
        assert_eq!(
            err(RawHttp {
                bearer_token: Some("a".into()),
                bearer_token_file: Some("f".into()),
                ..raw()
            }),
            "at most one of bearer_token & bearer_token_file must be configured"
        );
        assert_eq!(
            err(RawHttp {
                basic_auth: basic("p", ""),
                bearer_token: Some("a".into()),
                ..raw()
            }),
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"
        );
        assert_eq!(
            err(RawHttp {
                basic_auth: basic("p", "f"),
                ..raw()
            }),
            "at most one of basic_auth password & password_file must be configured"
        );
        let authz = |kind: &str, cred: &str, file: &str| {
            Some(RawAuthorization {
                kind: Some(kind.into()),
                credentials: Some(cred.into()),
                credentials_file: Some(file.into()),
            })
        };
        assert_eq!(
            err(RawHttp {
                authorization: authz("", "c", ""),
                bearer_token_file: Some("f".into()),
                ..raw()
            }),
            "authorization is not compatible with bearer_token & bearer_token_file"
        );
        assert_eq!(
            err(RawHttp {
                authorization: authz("", "c", "f"),
                ..raw()
            }),
            "at most one of authorization credentials & credentials_file must be configured"
        );
        assert_eq!(
            err(RawHttp {
                authorization: authz(" Basic ", "c", ""),
                ..raw()
            }),
            r#"authorization type cannot be set to "basic", use "basic_auth" instead"#
        );
        assert_eq!(
            err(RawHttp {
                authorization: authz("", "c", ""),
                basic_auth: basic("p", ""),
                ..raw()
            }),
            "at most one of basic_auth, oauth2 & authorization must be configured"
        );
        assert_eq!(
            err(RawHttp {
                oauth2: Some(Default::default()),
                ..raw()
            }),
            "oauth2 client_id must be configured"
        );
        assert_eq!(
            err(RawHttp {
                proxy_connect_header: Some([("X".to_string(), vec!["v".to_string()])].into()),
                ..raw()
            }),
            "if proxy_connect_header is configured proxy_url must also be configured"
        );
        assert_eq!(
            err(RawHttp {
                tls_config: Some(RawTls {
                    min_version: Some("TLS14".into()),
                    ..Default::default()
                }),
                ..raw()
            }),
            "unknown TLS version: TLS14"
        );
        assert_eq!(
            err(RawHttp {
                proxy_url: Some("::bad".into()),
                ..raw()
            }),
            r#"parse "::bad": missing protocol scheme"#
        );
    }

    #[test]
    fn unvalidated_sections_resolve_conflicts_as_the_round_trippers() {
        let c = from_raw_unvalidated(RawHttp {
            bearer_token: Some("t".into()),
            bearer_token_file: Some("f".into()),
            ..raw()
        })
        .unwrap();
        assert_eq!(c.authorization.unwrap().credentials, "t");
        let c = from_raw_unvalidated(RawHttp {
            basic_auth: basic("p", "f"),
            bearer_token: Some("t".into()),
            ..raw()
        })
        .unwrap();
        assert!(c.authorization.is_none());
        assert_eq!(c.basic_auth.unwrap().password_file, "f");
    }

    #[test]
    fn bearer_token_becomes_authorization() {
        let c = from_raw(RawHttp {
            bearer_token_file: Some("/t".into()),
            ..raw()
        })
        .unwrap();
        let a = c.authorization.unwrap();
        assert_eq!(
            (a.kind.as_str(), a.credentials_file.as_str()),
            ("Bearer", "/t")
        );
        assert!(c.follow_redirects && c.enable_http2);
    }
}
