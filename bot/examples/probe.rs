//! Prints the decision (dry-run JSON) and top candidates for each argument on the demo tenant.
//! `cargo run -p switchboard-bot --example probe -- "运费怎么算" "hello"`

#[path = "support/setup.rs"]
mod setup;

use switchboard_bot::Turn;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bot = setup::demo_bot(dir.path());
    let synonyms = setup::demo_synonyms();
    for text in std::env::args().skip(1) {
        let e = bot.explain(&Turn::new(setup::DEMO, text.clone()).with_synonyms(synonyms.clone()));
        println!(
            "{text}\n  {}",
            serde_json::to_string(&e.decision).expect("json")
        );
        for c in e.candidates.iter().take(3) {
            println!(
                "    {:<20} cos {:.3} overlap {:.2} lex {:?} p {:.3}",
                c.id, c.cosine, c.overlap, c.lexical_rank, c.confidence
            );
        }
    }
}
