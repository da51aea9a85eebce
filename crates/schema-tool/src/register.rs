//! Registration through the Schema Registry REST API: set each subject's level, ask whether each
//! new version is compatible, register it only then. Dry run unless `apply`. Idempotent: a
//! version already registered is reported and left alone.
//!
//! Credentials come from `SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO` (`user:password`), as for the
//! services; setting levels needs the registry's admin role, registering the writer role.

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::manifest::Subject;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

struct Registry {
    base: String,
    http: reqwest::Client,
    auth: Option<events::registry::BasicAuth>,
}

impl Registry {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).header("Accept", CONTENT_TYPE);
        if let Some(b) = body {
            req = req.header("Content-Type", CONTENT_TYPE).body(b.to_string());
        }
        if let Some(auth) = &self.auth {
            req = req.basic_auth(&auth.user, Some(&auth.password));
        }
        let res = req.send().await.with_context(|| format!("calling {}{path}: is the registry up?", self.base))?;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let env = events::registry::USER_INFO_ENV;
        match status {
            401 if self.auth.is_none() => {
                bail!("the registry needs credentials: set {env}=user:password ({})", body["message"])
            }
            401 => bail!("the registry refused the credentials in {env}: {}", body["message"]),
            403 => bail!(
                "the registry user in {env} may not do this ({}); setting levels needs the admin role, \
                 registering the writer role",
                body["message"]
            ),
            _ => Ok((status, body)),
        }
    }
}

/// Returns what was done (or would be done), one line each; fails on an incompatible version.
pub async fn register(subjects: &[Subject], url: &str, apply: bool) -> anyhow::Result<Vec<String>> {
    let auth = events::registry::BasicAuth::from_env().map_err(anyhow::Error::msg)?;
    let registry = Registry { base: url.trim_end_matches('/').to_owned(), http: reqwest::Client::new(), auth };
    let mut log = Vec::new();
    let verb = |done: &str, would: &str| {
        if apply {
            done.to_owned()
        } else {
            format!("would {would} (dry run; pass --apply)")
        }
    };
    for s in subjects {
        let (status, body) = registry.call(reqwest::Method::GET, &format!("/config/{}", s.name), None).await?;
        let current = (status == 200).then(|| body["compatibilityLevel"].as_str().unwrap_or("").to_owned());
        if current.as_deref() == Some(s.level.as_str()) {
            log.push(format!("{}: compatibility already {}", s.name, s.level));
        } else {
            if apply {
                let (status, body) = registry
                    .call(
                        reqwest::Method::PUT,
                        &format!("/config/{}", s.name),
                        Some(json!({"compatibility": s.level.as_str()})),
                    )
                    .await?;
                if status != 200 {
                    bail!("{}: setting compatibility {} failed: HTTP {status} {body}", s.name, s.level);
                }
            }
            log.push(format!(
                "{}: compatibility {} → {}: {}",
                s.name,
                current.as_deref().unwrap_or("(global default)"),
                s.level,
                verb("set", "set")
            ));
        }
        for v in &s.versions {
            let schema = json!({"schema": v.text});
            let (status, body) = registry
                .call(reqwest::Method::POST, &format!("/subjects/{}?deleted=false", s.name), Some(schema.clone()))
                .await?;
            if status == 200 {
                log.push(format!(
                    "{} v{}: already registered as version {} (id {})",
                    s.name, v.number, body["version"], body["id"]
                ));
                continue;
            }
            let (status, body) = registry
                .call(
                    reqwest::Method::POST,
                    &format!("/compatibility/subjects/{}/versions?verbose=true", s.name),
                    Some(schema.clone()),
                )
                .await?;
            if status != 200 {
                bail!("{} v{}: the compatibility check failed: HTTP {status} {body}", s.name, v.number);
            }
            if body["is_compatible"] != json!(true) {
                bail!(
                    "{} v{} is not compatible with what the registry holds: {}; nothing registered",
                    s.name,
                    v.number,
                    body["messages"]
                );
            }
            if apply {
                let (status, body) = registry
                    .call(reqwest::Method::POST, &format!("/subjects/{}/versions", s.name), Some(schema))
                    .await?;
                if status != 200 {
                    bail!("{} v{}: registration refused: HTTP {status} {body}", s.name, v.number);
                }
                log.push(format!("{} v{}: compatible; registered with id {}", s.name, v.number, body["id"]));
            } else {
                log.push(format!("{} v{}: compatible; {}", s.name, v.number, verb("registered", "register")));
            }
        }
    }
    Ok(log)
}
