//! ZooKeeper's AdminServer over HTTP (`admin.enableServer`, `admin.serverAddress`,
//! `admin.serverPort`, `admin.commandURL`): `GET <commandURL>` lists the commands,
//! `GET <commandURL>/<name>` answers one as JSON (the service renders it on the replica
//! thread, `service::admin`). Served by the small server of `crate::http`.

use crate::http::{Handler, Reply};
use crate::service::admin::COMMANDS;
use serde_json::Value;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Asks the service for a command's answer; `false` when the service is gone.
pub type AdminQuery =
    Arc<dyn Fn(String, tokio::sync::oneshot::Sender<Value>) -> bool + Send + Sync>;

/// How long a command waits for the service.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// ZooKeeper's listing: a link per command.
fn listing(url: &str) -> String {
    let mut out = String::new();
    let mut names: Vec<&str> = COMMANDS.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    for n in names {
        let _ = writeln!(out, "<a href=\"{url}/{n}\">{n}</a>\n<br/>");
    }
    out
}

/// The answer to a request target, given the service query.
async fn route(url: &str, target: &str, query: &AdminQuery) -> Reply {
    let path = target.split('?').next().unwrap_or("");
    let base = if url == "/" { "" } else { url };
    if path == url || path == format!("{base}/") {
        return Reply::ok("text/html", listing(base));
    }
    let Some(name) = path
        .strip_prefix(base)
        .and_then(|p| p.strip_prefix('/'))
        .filter(|n| !n.is_empty() && !n.contains('/'))
    else {
        return Reply::not_found();
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let value = if query(name.to_string(), tx) {
        match tokio::time::timeout(QUERY_TIMEOUT, rx).await {
            Ok(Ok(v)) => v,
            _ => serde_json::json!({
                "command": name,
                "error": "This ZooKeeper instance is not currently serving requests",
            }),
        }
    } else {
        serde_json::json!({ "command": name, "error": "zabd is stopping" })
    };
    let body = serde_json::to_string_pretty(&value).unwrap_or_else(|_| "{}".into());
    Reply::ok("application/json", body)
}

/// Serves the AdminServer on `addr` under `url` until the process ends.
pub async fn serve(addr: SocketAddr, url: String, query: AdminQuery) -> std::io::Result<()> {
    let listener = crate::http::bind(addr, "AdminServer").await?;
    let url = Arc::new(url);
    let handler: Handler = Arc::new(move |target: String| {
        let (url, query) = (Arc::clone(&url), Arc::clone(&query));
        Box::pin(async move { route(&url, &target, &query).await })
    });
    crate::http::serve(listener, "AdminServer", handler).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> AdminQuery {
        Arc::new(|name, reply| reply.send(serde_json::json!({ "command": name })).is_ok())
    }

    #[tokio::test]
    async fn routes_follow_the_command_url() {
        let q = echo();
        let r = route("/commands", "/commands", &q).await;
        assert!(
            r.body.contains("<a href=\"/commands/monitor\">monitor</a>"),
            "{}",
            r.body
        );
        assert_eq!(
            route("/commands", "/commands/", &q).await.content_type,
            "text/html"
        );
        let r = route("/commands", "/commands/mntr?x=1", &q).await;
        assert_eq!(r.content_type, "application/json");
        assert!(r.body.contains("\"mntr\""), "{}", r.body);
        assert_eq!(
            route("/commands", "/other", &q).await.status,
            "404 Not Found"
        );
        assert_eq!(
            route("/commands", "/commands/a/b", &q).await.status,
            "404 Not Found"
        );
        let r = route("/", "/ruok", &q).await;
        assert!(r.body.contains("ruok"), "{}", r.body);
        let gone: AdminQuery = Arc::new(|_, _| false);
        let r = route("/commands", "/commands/ruok", &gone).await;
        assert!(r.body.contains("\"error\""), "{}", r.body);
    }
}
