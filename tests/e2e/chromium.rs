//! A headless Chromium driven over the DevTools protocol, shared by the browser tests (the
//! widget and agent console in `browser`, the operator console in `admin_console`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

pub(crate) struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    page: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium_path() -> Option<PathBuf> {
    let candidates = [
        std::env::var("CHROMIUM").ok(),
        Some("/usr/bin/chromium".into()),
        Some("/usr/bin/chromium-browser".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

impl Browser {
    pub(crate) async fn launch(binary: &PathBuf) -> anyhow::Result<Browser> {
        let profile = tempfile::tempdir()?;
        let child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1280,800",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        // Chromium writes the port it chose into the profile directory.
        let port_file = profile.path().join("DevToolsActivePort");
        let started = Instant::now();
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                if let Some(port) = text
                    .lines()
                    .next()
                    .and_then(|line| line.trim().parse::<u16>().ok())
                {
                    break port;
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("chromium did not open its debugging port");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await?
            .json()
            .await?;
        let page_url = targets
            .as_array()
            .and_then(|targets| targets.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .ok_or_else(|| anyhow!("no page target: {targets}"))?
            .to_owned();
        let (page, _) = tokio_tungstenite::connect_async(&page_url).await?;
        Ok(Browser {
            child,
            _profile: profile,
            page,
            next_id: 1,
        })
    }

    pub(crate) async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.page
            .send(Message::Text(
                json!({"id": id, "method": method, "params": params})
                    .to_string()
                    .into(),
            ))
            .await?;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(20), self.page.next())
                .await
                .map_err(|_| anyhow!("{method}: no answer"))?
                .ok_or_else(|| anyhow!("devtools closed"))??;
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text)?;
                if value["id"] == id {
                    if let Some(error) = value.get("error") {
                        bail!("{method}: {error}");
                    }
                    return Ok(value["result"].clone());
                }
            }
        }
    }

    /// Evaluates an expression in the page and returns its JSON value.
    pub(crate) async fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            bail!("page threw: {exception}");
        }
        Ok(result["result"]["value"].clone())
    }

    pub(crate) async fn wait_for(&mut self, what: &str, expression: &str) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let value = self.eval(expression).await?;
            if !value.is_null() && value != json!(false) {
                return Ok(value);
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens `url` and waits for the page's load event.
    pub(crate) async fn navigate(&mut self, url: &str) -> anyhow::Result<()> {
        self.call("Page.navigate", json!({ "url": url })).await?;
        self.wait_for(
            "the page to load",
            "document.readyState === 'complete' ? true : null",
        )
        .await?;
        Ok(())
    }

    /// Sets the files of the `<input type=file>` matched by `selector` (as a person picking
    /// them would) and fires its change event.
    pub(crate) async fn set_files(
        &mut self,
        selector: &str,
        files: &[&std::path::Path],
    ) -> anyhow::Result<()> {
        let document = self.call("DOM.getDocument", json!({})).await?;
        let root = document["root"]["nodeId"].clone();
        let found = self
            .call(
                "DOM.querySelector",
                json!({ "nodeId": root, "selector": selector }),
            )
            .await?;
        let node = found["nodeId"].as_i64().unwrap_or(0);
        if node == 0 {
            bail!("no element matches {selector}");
        }
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        self.call(
            "DOM.setFileInputFiles",
            json!({ "nodeId": node, "files": files }),
        )
        .await?;
        Ok(())
    }

    /// A PNG of the viewport at `width` x `height` CSS pixels.
    pub(crate) async fn screenshot(&mut self, width: u32, height: u32) -> anyhow::Result<Vec<u8>> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await?;
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await?;
        let data = shot["data"]
            .as_str()
            .ok_or_else(|| anyhow!("no screenshot data"))?;
        decode_base64(data)
    }
}

/// The Chromium binary, or `None` when the test may be skipped (`SWITCHBOARD_SKIP_BROWSER=1`).
pub(crate) fn chromium_or_skip() -> Option<PathBuf> {
    let binary = chromium_path();
    if binary.is_none() {
        if std::env::var("SWITCHBOARD_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("skipped: SWITCHBOARD_SKIP_BROWSER=1 and no chromium");
            return None;
        }
        panic!("chromium is not installed: run scripts/test.sh (it installs Debian's chromium), or set SWITCHBOARD_SKIP_BROWSER=1");
    }
    binary
}

/// Standard base64 (the screenshot's encoding), without a crate for it.
fn decode_base64(text: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => bail!("not base64"),
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}
