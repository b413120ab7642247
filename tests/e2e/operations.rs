//! What operators deploy beside the binary (`deploy/`): the metrics listener of its own, the
//! Grafana dashboard and Prometheus alert rules (every metric they name is served), and the nginx
//! configuration, run as shipped in front of a real server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_tests::{TestApp, WsClient};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

/// The metric families an expression names (`_bucket`, `_sum`, `_count` belong to their
/// histogram).
fn metric_names(text: &str, into: &mut BTreeSet<String>) {
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = text[at..].find("switchboard_") {
        let start = at + found;
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len() - start);
        // Part of a longer identifier (a label value, a job name): not a metric.
        let glued =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !glued {
            let name = &text[start..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            into.insert(family.to_owned());
        }
        at = end;
    }
}

#[tokio::test]
async fn the_dashboard_and_alerts_name_only_metrics_the_dedicated_listener_serves() {
    let app = TestApp::spawn_bot_first_with(|settings| {
        settings.metrics_addr = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    // Some traffic, so the bot is built and every family has its lines.
    let (status, _) = app
        .admin_post("/v1/tenants/acme/bot/ask", json!({"text": "运费怎么算？"}))
        .await;
    assert_eq!(status, 200);

    // The public port has no metrics; the listener of its own has them.
    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    let metrics_addr = app.server.metrics_addr.expect("a metrics listener");
    assert_ne!(metrics_addr.port(), app.server.addr.port());
    let served = app
        .http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    let exposition = served.text().await.unwrap();
    let other = app
        .http
        .get(format!("http://{metrics_addr}/v1/web/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        404,
        "the metrics listener serves /metrics alone"
    );

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/switchboard-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert_eq!(panels.len(), 15);
    let mut named = BTreeSet::new();
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            metric_names(target["expr"].as_str().expect("expr"), &mut named);
        }
    }
    let alerts = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    assert!(alerts.matches("- alert:").count() >= 5);
    let mut in_alerts = BTreeSet::new();
    metric_names(&alerts, &mut in_alerts);
    assert!(in_alerts.contains("switchboard_bot_shedding"));
    named.extend(in_alerts);
    assert!(named.len() >= 14, "{named:?}");
    let missing: Vec<&String> = named
        .iter()
        .filter(|name| !exposition.contains(&format!("# TYPE {name} ")))
        .collect();
    assert!(missing.is_empty(), "named but not served: {missing:?}");
}

/// nginx, stopped (and reaped) however the test ends: it runs as one process (`master_process
/// off`), so killing it leaves no worker behind.
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The nginx configuration, as shipped, in front of a node: the widget's session and a chat over
/// a WebSocket through it, and `/metrics` not served through it.
#[tokio::test]
async fn a_chat_goes_through_the_shipped_nginx_configuration() {
    let Some(nginx) = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .find(|path| Path::new(path).exists())
    else {
        // scripts/test.sh installs Debian's nginx; a bare `cargo test` without it says so.
        eprintln!("nginx is not installed: run scripts/test.sh (it installs Debian's nginx)");
        assert!(
            std::env::var_os("SWITCHBOARD_REQUIRE_NGINX").is_none(),
            "SWITCHBOARD_REQUIRE_NGINX is set and nginx is missing"
        );
        return;
    };
    let app = TestApp::spawn().await;
    let shipped = std::fs::read_to_string(deploy("nginx/switchboard.conf")).unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let site = shipped
        .replace(
            "server 127.0.0.1:8080 ",
            &format!("server {} ", app.server.addr),
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    assert_ne!(site, shipped);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("switchboard.conf"), site).unwrap();
    let prefix = dir.path().display();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n  \
             fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n  \
             include {prefix}/switchboard.conf;\n}}\n"
        ),
    )
    .unwrap();
    let _nginx = Nginx(
        std::process::Command::new(nginx)
            .args([
                "-p",
                &prefix.to_string(),
                "-c",
                &format!("{prefix}/nginx.conf"),
            ])
            // Never the test's own output: a leftover process would hold its pipes open.
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx starts"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..50 {
        if app.http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outcome = async {
        assert!(
            up,
            "nginx did not come up: {:?}",
            std::fs::read_to_string(dir.path().join("error.log"))
        );
        let session: Value = app
            .http
            .post(format!("{base}/v1/web/session"))
            .json(&json!({"tenant": "acme"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = session["token"].as_str().expect("a session through nginx");
        let (_, agent_token) = app.create_agent("Alice", &["general"], 3).await;
        let mut agent = app.agent_ws(&agent_token).await;
        let mut customer =
            WsClient::connect(&format!("ws://127.0.0.1:{port}/v1/web/ws?token={token}"))
                .await
                .expect("a WebSocket through nginx");
        customer
            .send(json!({"type":"send","client_msg_id":"n1","text":"hello through the proxy"}))
            .await;
        customer.expect_type("receipt").await;
        let assigned = agent.expect_type("assigned").await;
        let conversation_id = assigned["conversation"]["id"].as_str().unwrap().to_owned();
        agent
            .send(json!({"type":"send","conversation_id":conversation_id,"client_msg_id":"a1","text":"hello back"}))
            .await;
        customer.expect_text("hello back").await;
        let metrics = app
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(metrics.status(), 404);
    };
    tokio::time::timeout(Duration::from_secs(60), outcome)
        .await
        .expect("the chat through nginx finished in time");
}
