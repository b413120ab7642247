//! One test binary for the crate's integration tests: one module per feature.

mod demo;
mod import;
mod index;

use switchboard_knowledge::FaqRecord;

pub fn faq(id: &str, question: &str, answer: &str) -> FaqRecord {
    let mut record = FaqRecord::new(question, answer);
    record.id = id.to_string();
    record
}

pub fn ids(candidates: &[switchboard_knowledge::Candidate]) -> Vec<&str> {
    candidates.iter().map(|c| c.id.as_str()).collect()
}
