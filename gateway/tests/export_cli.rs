//! `switchboard export`: a tenant's conversations written to a file, filtered, with its errors.

use std::process::Command;

use store::{ConversationState, CustomerProfile, Entry};
use switchboard_channels::ChannelKind;

fn switchboard() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SWITCHBOARD__") {
            command.env_remove(name);
        }
    }
    command
}

/// Two conversations of tenant `acme` in the data dir's SQLite store: web and WeChat.
async fn seed(data_dir: &std::path::Path) {
    let mut settings = gateway::config::Settings::load(None, &Default::default()).unwrap();
    settings.data_dir = data_dir.to_path_buf();
    let (store, _) = gateway::open_store(&settings).await.unwrap();
    store.create_tenant("acme", "hash").await.unwrap();
    let entry = Entry {
        state: ConversationState::Queued,
        skill_group: "general".into(),
        priority: 0,
    };
    for (channel, visitor) in [(ChannelKind::Web, "w"), (ChannelKind::Wechat, "x")] {
        let customer = store
            .customer_for_identity("acme", channel, visitor, &CustomerProfile::default())
            .await
            .unwrap();
        for index in 0..2 {
            store
                .append_customer_message(&customer, Some(&format!("m{index}")), "=1+1", &entry)
                .await
                .unwrap();
        }
    }
    store.close().await;
}

#[test]
fn export_writes_a_file_with_its_filters_and_refuses_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(seed(dir.path()));
    let data_dir = dir.path().to_str().unwrap();
    let out = dir.path().join("messages.jsonl");
    let output = switchboard()
        .args([
            "export", "--tenant", "acme", "--format", "jsonl", "--rows", "message",
        ])
        .args(["--channel", "wechat", "--data-dir", data_dir, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("exported 1 conversation(s), 2 row(s)"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|line| line["channel"] == "wechat"));
    assert!(!dir.path().join("messages.jsonl.part").exists());

    // To standard output: CSV by default, one row per conversation, formulas guarded.
    let output = switchboard()
        .args(["export", "--tenant", "acme", "--data-dir", data_dir])
        .output()
        .unwrap();
    assert!(output.status.success());
    let csv = String::from_utf8(output.stdout).unwrap();
    assert!(csv.starts_with("\u{feff}conversation_id,"), "{csv}");
    assert_eq!(csv.trim_end().split("\r\n").count(), 3, "{csv}");
    assert!(csv.contains("customer: =1+1"));

    for (args, expected) in [
        (vec!["--format", "pdf"], "bad_format"),
        (vec!["--from", "tomorrow"], "bad_period"),
        (vec!["--tenant", "nobody"], "no tenant named nobody"),
    ] {
        let mut command = switchboard();
        command.args(["export", "--data-dir", data_dir]);
        if !args.contains(&"--tenant") {
            command.args(["--tenant", "acme"]);
        }
        let output = command.args(&args).output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
