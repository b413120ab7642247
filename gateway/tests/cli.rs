//! The `switchboard` binary itself: tenant creation, migration, and `serve` on the defaults.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn switchboard() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    // The developer's environment must not leak into these runs.
    for (name, _) in std::env::vars() {
        if name.starts_with("SWITCHBOARD__") {
            command.env_remove(name);
        }
    }
    command
}

#[test]
fn tenant_create_prints_a_key_once_and_refuses_duplicates_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let output = switchboard()
        .args(["tenant", "create", "acme", "--data-dir", data_dir, "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(body["tenant"], "acme");
    assert!(body["admin_key"].as_str().unwrap().starts_with("sbk_"));

    let again = switchboard()
        .args(["tenant", "create", "acme", "--data-dir", data_dir])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = switchboard()
        .args(["tenant", "create", "Bad Name!", "--data-dir", data_dir])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tenant name"));

    let migrate = switchboard()
        .args(["migrate", "--data-dir", data_dir])
        .output()
        .unwrap();
    assert!(migrate.status.success());
    let unsupported = switchboard()
        .args(["migrate", "--database-url", "mysql://x"])
        .output()
        .unwrap();
    assert!(!unsupported.status.success());
    assert!(String::from_utf8_lossy(&unsupported.stderr).contains("unsupported database url"));
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

#[test]
fn serve_on_the_defaults_creates_the_demo_and_prints_how_to_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = switchboard()
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .trim_start_matches("switchboard listening on http://")
        .to_owned();
    let printed: Vec<String> = (0..3).map(|_| lines.next().unwrap().unwrap()).collect();
    assert!(printed[0].contains("/?tenant=demo"), "{printed:?}");
    assert!(printed[1].contains("/console#token=v1."), "{printed:?}");
    assert!(printed[2].contains("sbk_"), "{printed:?}");
    let (status, _) = http_get(&addr, "/healthz");
    assert_eq!(status, 200);
    let (status, page) = http_get(&addr, "/");
    assert_eq!(status, 200);
    assert!(page.contains("widget.js"));
    assert!(dir.path().join("switchboard.db").exists());
    child.kill().unwrap();
    child.wait().unwrap();

    // A second start finds the demo and prints the same admin key.
    let mut child = switchboard()
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let again: Vec<String> = (0..4).map(|_| lines.next().unwrap().unwrap()).collect();
    assert_eq!(again[3], printed[2]);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn kb_import_and_search_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    assert!(switchboard()
        .args(["tenant", "create", "shop", "--data-dir", data_dir])
        .output()
        .unwrap()
        .status
        .success());
    let file = dir.path().join("faqs.csv");
    std::fs::write(
        &file,
        "id,question,answer,alternates\nship,多久发货？,付款后48小时内发货。,什么时候发货|几天发货\nbad,,no question,\n",
    )
    .unwrap();
    let output = switchboard()
        .args([
            "kb",
            "import",
            "--tenant",
            "shop",
            file.to_str().unwrap(),
            "--data-dir",
            data_dir,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["inserted"], 1);
    assert_eq!(report["errors"][0]["line"], 3);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("1/1"),
        "progress is shown"
    );

    let output = switchboard()
        .args([
            "kb",
            "search",
            "--tenant",
            "shop",
            "什么时候发货",
            "--data-dir",
            data_dir,
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("ship"));
    let missing = switchboard()
        .args([
            "kb",
            "search",
            "--tenant",
            "nope",
            "x",
            "--data-dir",
            data_dir,
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no tenant named nope"));
}
