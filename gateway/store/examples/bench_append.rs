//! The store's write path alone: messages of 100 open conversations stored through group commit,
//! by the store's writer (`Store::submit`, N at a time, as a loaded server submits them; on
//! SQLite the writer drives its own connection through the C API) and by `Store::append_many`
//! (batches of N, through the pool), beside one message at a time on both paths, in the same
//! process on the same database.
//!
//! `cargo run --release -p switchboard-store --example bench_append -- [DATABASE_URL] [N]`
//! (default: SQLite in a temporary directory, N = 40).

use std::time::Instant;

use store::crypto::{FieldCipher, SecretKey};
use store::{ConversationState, Customer, CustomerProfile, Entry, NewMessage, Store};
use switchboard_channels::ChannelKind;

const CONVERSATIONS: usize = 100;
const MESSAGES: usize = 8_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = tempfile::tempdir()?;
    let url = args
        .next()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("store.db").display()));
    let batch: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40)
        .max(1);
    let store = Store::connect(&url, FieldCipher::new(&SecretKey::generate())).await?;
    store.migrate().await?;
    let tenant = format!("append{}", std::process::id());
    store.create_tenant(&tenant, "unused").await?;
    let entry = Entry {
        state: ConversationState::Bot,
        skill_group: "general".into(),
        priority: 0,
    };
    let mut customers: Vec<Customer> = Vec::new();
    for index in 0..CONVERSATIONS {
        let customer = store
            .customer_for_identity(
                &tenant,
                ChannelKind::Web,
                &format!("v{index}"),
                &CustomerProfile::default(),
            )
            .await?;
        store
            .append_customer_message(&customer, Some("open"), "hello", &entry)
            .await?;
        customers.push(customer);
    }
    let text = "x".repeat(100);
    let message = |index: usize, prefix: &str| NewMessage::Customer {
        customer: customers[index % CONVERSATIONS].clone(),
        client_msg_id: Some(format!("{prefix}{index}")),
        text: text.clone(),
        entry: entry.clone(),
        meta: None,
    };

    let started = Instant::now();
    for round in 0..MESSAGES / batch {
        let mut pending = Vec::with_capacity(batch);
        for index in round * batch..(round + 1) * batch {
            pending.push(store.submit(message(index, "w")).await);
        }
        for submitted in pending {
            submitted.stored().await?;
        }
    }
    let writer = (MESSAGES / batch * batch) as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    for round in 0..MESSAGES / batch {
        let messages = (round * batch..(round + 1) * batch)
            .map(|index| message(index, "b"))
            .collect();
        for result in store.append_many(messages).await {
            result?;
        }
    }
    let pooled = (MESSAGES / batch * batch) as f64 / started.elapsed().as_secs_f64();

    let single_count = MESSAGES / 4;
    let started = Instant::now();
    for index in 0..single_count {
        store.submit(message(index, "x")).await.stored().await?;
    }
    let writer_single = started.elapsed().as_secs_f64() / single_count as f64 * 1e6;
    let started = Instant::now();
    for index in 0..single_count {
        store
            .append_many(vec![message(index, "s")])
            .await
            .remove(0)?;
    }
    let pooled_single = started.elapsed().as_secs_f64() / single_count as f64 * 1e6;
    println!(
        "{}: N = {batch}: writer {writer:.0} msgs/s, pool {pooled:.0} msgs/s (ratio {:.1}x); \
         one at a time: writer {writer_single:.0} µs, pool {pooled_single:.0} µs per message",
        url.split(':').next().unwrap_or_default(),
        writer / pooled
    );
    Ok(())
}
