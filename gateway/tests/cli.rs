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
        .args([
            "tenant",
            "create",
            "acme",
            "--admin-email",
            "ops@acme.example",
            "--data-dir",
            data_dir,
            "--json",
        ])
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
    assert_eq!(body["admin_email"], "ops@acme.example");
    assert!(body["admin_password"].as_str().unwrap().len() >= 10);

    let again = switchboard()
        .args([
            "tenant",
            "create",
            "acme",
            "--admin-email",
            "ops@acme.example",
            "--data-dir",
            data_dir,
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = switchboard()
        .args([
            "tenant",
            "create",
            "Bad Name!",
            "--admin-email",
            "ops@acme.example",
            "--data-dir",
            data_dir,
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tenant name"));

    let no_email = switchboard()
        .args([
            "tenant",
            "create",
            "other",
            "--admin-email",
            "nobody",
            "--data-dir",
            data_dir,
        ])
        .output()
        .unwrap();
    assert!(!no_email.status.success());
    assert!(String::from_utf8_lossy(&no_email.stderr).contains("admin-email"));

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
    http(addr, "GET", path, "")
}

/// One request over a fresh connection: (status, the whole response).
fn http(addr: &str, method: &str, path: &str, json: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
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
    let printed: Vec<String> = (0..5).map(|_| lines.next().unwrap().unwrap()).collect();
    assert!(printed[0].contains("/?tenant=demo"), "{printed:?}");
    assert!(printed[1].contains("/console#token=v1."), "{printed:?}");
    assert!(printed[2].contains("/admin/?tenant=demo"), "{printed:?}");
    assert!(printed[3].contains("admin@demo.local / "), "{printed:?}");
    assert!(printed[4].contains("sbk_"), "{printed:?}");
    let (status, _) = http_get(&addr, "/healthz");
    assert_eq!(status, 200);
    let (status, page) = http_get(&addr, "/");
    assert_eq!(status, 200);
    assert!(page.contains("widget.js"));
    // The printed first admin signs in to the operator console.
    let (email, password) = printed[3]
        .split_once("sign in as:")
        .and_then(|(_, credentials)| credentials.trim().split_once(" / "))
        .expect("credentials");
    let body = serde_json::json!({ "email": email, "password": password }).to_string();
    let (status, response) = http(&addr, "POST", "/v1/tenants/demo/auth/login", &body);
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("sb_session="), "{response}");
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
    let again: Vec<String> = (0..6).map(|_| lines.next().unwrap().unwrap()).collect();
    assert_eq!(again[4..], printed[3..]);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn kb_import_and_search_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    assert!(switchboard()
        .args([
            "tenant",
            "create",
            "shop",
            "--admin-email",
            "ops@shop.example",
            "--data-dir",
            data_dir
        ])
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

fn run_ok(args: &[&str]) -> String {
    let output = switchboard().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Creates tenant `shop` in `data_dir` with the demo's bilingual FAQs.
fn shop_with_the_demo_faqs(data_dir: &str) {
    run_ok(&[
        "tenant",
        "create",
        "shop",
        "--admin-email",
        "ops@shop.example",
        "--data-dir",
        data_dir,
    ]);
    let faqs = concat!(env!("CARGO_MANIFEST_DIR"), "/../knowledge/demo/faqs.jsonl");
    run_ok(&[
        "kb",
        "import",
        "--tenant",
        "shop",
        faqs,
        "--data-dir",
        data_dir,
    ]);
}

#[test]
fn intents_train_and_eval_and_bot_eval_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    shop_with_the_demo_faqs(data_dir);

    let training = dir.path().join("intents.csv");
    std::fs::write(
        &training,
        "text,label\nwhere is my order,order_status\n我的订单到哪了,order_status\ntrack my package,order_status\n包裹什么时候到,order_status\n物流到哪一步了,order_status\n\
         I need an invoice,invoice\n怎么开发票,invoice\n我要开增值税发票,invoice\nsend me a receipt,invoice\n电子发票在哪下载,invoice\n",
    )
    .unwrap();
    let out = run_ok(&[
        "intents",
        "train",
        "--tenant",
        "shop",
        training.to_str().unwrap(),
        "--data-dir",
        data_dir,
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["tenant_examples"], 10);
    let labels = report["labels"].to_string();
    assert!(
        labels.contains("order_status") && labels.contains("handoff_request"),
        "{report}"
    );

    let held_out = dir.path().join("held_out.jsonl");
    std::fs::write(
        &held_out,
        "{\"text\":\"has my parcel shipped yet\",\"label\":\"order_status\"}\n\
         {\"text\":\"发票怎么开具\",\"label\":\"invoice\"}\n\
         {\"text\":\"转人工\",\"label\":\"handoff_request\"}\n\
         {\"text\":\"what's the weather in Paris\",\"label\":\"out_of_scope\"}\n",
    )
    .unwrap();
    let out = run_ok(&[
        "intents",
        "eval",
        "--tenant",
        "shop",
        held_out.to_str().unwrap(),
        "--data-dir",
        data_dir,
    ]);
    for needle in ["accuracy", "oos recall", "order_status", "invoice"] {
        assert!(out.contains(needle), "{needle} missing from {out}");
    }

    let lines = dir.path().join("bot.jsonl");
    std::fs::write(
        &lines,
        "{\"q\":\"买东西要付邮费吗\",\"expect\":\"zh-ship-fee\"}\n{\"q\":\"转人工\",\"expect\":\"handoff\"}\n{\"q\":\"量子力学的基本原理是什么\",\"expect\":\"none\"}\n",
    )
    .unwrap();
    let out = run_ok(&[
        "bot",
        "eval",
        "--tenant",
        "shop",
        lines.to_str().unwrap(),
        "--data-dir",
        data_dir,
    ]);
    assert!(out.contains("handoff") && out.contains("none"), "{out}");

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"q\":\"x\"}\n").unwrap();
    let output = switchboard()
        .args([
            "bot",
            "eval",
            "--tenant",
            "shop",
            bad.to_str().unwrap(),
            "--data-dir",
            data_dir,
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 1"));
}

#[test]
fn policy_check_and_upload_from_the_command_line() {
    let fixture =
        |name: &str| format!("{}/../policies/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = run_ok(&["policy", "check", &fixture("vip-routing.wasm")]);
    assert!(out.contains("routing"), "{out}");
    let out = run_ok(&["policy", "check", &fixture("quality-scorer.wasm")]);
    assert!(out.contains("quality"), "{out}");
    for (name, code) in [
        ("hostile-import.wasm", "forbidden_import"),
        ("hostile-loop.wasm", "sample_call_failed"),
    ] {
        let output = switchboard()
            .args(["policy", "check", &fixture(name)])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{name}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(code),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    run_ok(&[
        "tenant",
        "create",
        "shop",
        "--admin-email",
        "ops@shop.example",
        "--data-dir",
        data_dir,
    ]);
    let out = run_ok(&[
        "policy",
        "upload",
        "--tenant",
        "shop",
        &fixture("vip-routing.wasm"),
        "--data-dir",
        data_dir,
    ]);
    assert!(out.contains("routing policy version 1"), "{out}");
    let out = run_ok(&[
        "policy",
        "upload",
        "--tenant",
        "shop",
        "--kind",
        "routing",
        &fixture("office-hours.wasm"),
        "--data-dir",
        data_dir,
    ]);
    assert!(out.contains("version 2"), "{out}");
    let output = switchboard()
        .args([
            "policy",
            "upload",
            "--tenant",
            "shop",
            "--kind",
            "quality",
            &fixture("vip-routing.wasm"),
            "--data-dir",
            data_dir,
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("quality"));
}

/// `switchboard bench` at toy size: every phase runs and reports its figures, the idle phase
/// against a `switchboard serve` child process.
#[test]
fn bench_runs_every_phase() {
    let report = run_ok(&[
        "bench",
        "--pairs",
        "2",
        "--inflight",
        "2",
        "--seconds",
        "1",
        "--idle",
        "20",
    ]);
    let rate = |prefix: &str| -> f64 {
        let line = report
            .lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{report}"));
        line[prefix.len()..]
            .split_whitespace()
            .next()
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no rate in `{line}`"))
    };
    assert!(rate("relay (stored, delivered)") > 0.0, "{report}");
    assert!(rate("relay, clients ack /150 ms") > 0.0, "{report}");
    assert!(rate("bare WebSocket echo") > 0.0, "{report}");
    assert!(
        report.contains("ratio relay with acks/without: throughput"),
        "{report}"
    );
    // Both sides of both pairs acked, and the store holds each of those acks.
    let acks = report
        .lines()
        .find_map(|line| line.strip_prefix("acks: "))
        .unwrap_or_else(|| panic!("no acks line in:\n{report}"));
    assert!(
        acks.ends_with("stored for 4 of 4 conversation sides acked"),
        "{report}"
    );
    assert!(
        report.contains("unloaded one-way customer→agent: p50"),
        "{report}"
    );
    assert!(
        report.contains("idle: 20 customer connections held, server RSS")
            && report.contains("(server process alone)"),
        "{report}"
    );
}

#[test]
fn members_are_added_listed_and_disabled_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let output = switchboard()
            .args(args)
            .args(["--data-dir", data_dir])
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, _, stderr) = run(&[
        "tenant",
        "create",
        "acme",
        "--admin-email",
        "Ops@Acme.example",
    ]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(&[
        "member",
        "add",
        "acme",
        "kb@acme.example",
        "--role",
        "knowledge_manager",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("password (shown once): "), "{stdout}");
    let (ok, _, stderr) = run(&[
        "member",
        "add",
        "acme",
        "kb@acme.example",
        "--role",
        "agent",
    ]);
    assert!(!ok);
    assert!(stderr.contains("exists"), "{stderr}");
    let (ok, _, stderr) = run(&["member", "add", "acme", "x@acme.example", "--role", "boss"]);
    assert!(!ok);
    assert!(stderr.contains("a role is admin"), "{stderr}");
    let (ok, stdout, _) = run(&["member", "disable", "acme", "KB@acme.example"]);
    assert!(ok);
    assert!(stdout.contains("kb@acme.example is disabled"), "{stdout}");
    let (ok, stdout, _) = run(&["member", "list", "acme"]);
    assert!(ok);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("ops@acme.example\tadmin\tenabled"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("kb@acme.example\tknowledge_manager\tdisabled"),
        "{stdout}"
    );
    let (ok, stdout, _) = run(&["tenant", "rotate-key", "acme"]);
    assert!(ok);
    assert!(stdout.contains("sbk_"), "{stdout}");
    let (ok, _, stderr) = run(&["tenant", "rotate-key", "nobody"]);
    assert!(!ok);
    assert!(stderr.contains("not found"), "{stderr}");
    // The last enabled admin stays.
    let (ok, _, stderr) = run(&["member", "disable", "acme", "ops@acme.example"]);
    assert!(!ok);
    assert!(stderr.contains("last enabled admin"), "{stderr}");
}

#[test]
fn demo_traffic_fills_the_report_through_the_bot_and_agents() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    shop_with_the_demo_faqs(data_dir);
    let out = run_ok(&[
        "demo-traffic",
        "--tenant",
        "shop",
        "--conversations",
        "30",
        "--days",
        "3",
        "--data-dir",
        data_dir,
    ]);
    assert!(out.contains("simulated 30 conversations"), "{out}");
    let report: serde_json::Value = serde_json::from_str(&run_ok(&[
        "report",
        "--tenant",
        "shop",
        "--days",
        "4",
        "--data-dir",
        data_dir,
    ]))
    .unwrap();
    let totals = &report["totals"];
    assert_eq!(totals["episodes"], 30, "{report:#}");
    // Both kinds of endings happened, through the real bot and agents.
    assert!(totals["bot_resolved"].as_u64().unwrap() > 0, "{totals}");
    assert!(totals["handed_off"].as_u64().unwrap() > 0, "{totals}");
    assert!(totals["ratings"].as_u64().unwrap() > 0, "{totals}");
    assert!(
        totals["first_response"]["p50_ms"].as_i64().unwrap() >= 8_000,
        "{totals}"
    );
    // The simulated times spread over the period.
    assert!(
        report["by_day"].as_array().unwrap().len() >= 2,
        "{report:#}"
    );
    assert!(!report["by_agent"].as_array().unwrap().is_empty());
}
