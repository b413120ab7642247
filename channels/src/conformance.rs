//! The conformance check every webhook adapter passes against its recorded fixtures.
//!
//! A fixture is one JSON file: the app's settings, one recorded request, what in it is signed,
//! and what must come out. For each fixture the check asserts that
//! 1. `verify` accepts the request as recorded,
//! 2. `verify` refuses it once any signed part is tampered with (each signed query value,
//!    each signed header, and the body when it is signed), with an error, never a panic,
//! 3. `handle` (verify, decode, normalize) gives exactly the expected outcome, or the expected
//!    error code for fixtures that record a refusal,
//! 4. `encode` gives exactly the expected provider request for each recorded reply.
//!
//! ```text
//! { "description": "...", "source": "where the bytes come from",
//!   "app": { ...adapter settings, read by the test's builder... },
//!   "request": { "method": "POST", "query": {..}, "headers": {..}, "body": "..." },
//!   "signed": { "query": ["signature", "timestamp", "nonce"], "headers": [], "body": false },
//!   "expect": { "outcome": "message", "message": {..}, "reply_context": {..} },
//!   "expect_error": "wrong_app",
//!   "encode": [ { "outbound": {..}, "context": {..}, "expected": { "path": "..", "body": {..} } } ] }
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::adapter::{
    ChannelAdapter, EncodedRequest, ReplyContext, WebhookOutcome, WebhookRequest,
};
use crate::OutboundMessage;

#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    /// The file name, filled in by [`load_fixtures`].
    #[serde(skip)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Where the recorded bytes come from (official docs, SDK samples, or recorded here).
    #[serde(default)]
    pub source: String,
    /// The app's settings; the caller's builder turns them into an adapter.
    #[serde(default)]
    pub app: serde_json::Value,
    pub request: WebhookRequest,
    #[serde(default)]
    pub signed: Signed,
    #[serde(default)]
    pub expect: Option<WebhookOutcome>,
    /// The [`crate::adapter::WebhookError::code`] `handle` must answer instead of an outcome.
    #[serde(default)]
    pub expect_error: Option<String>,
    #[serde(default)]
    pub encode: Vec<EncodeCase>,
}

/// Which parts of the request the provider's signature covers.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Signed {
    #[serde(default)]
    pub query: Vec<String>,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub body: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EncodeCase {
    pub outbound: OutboundMessage,
    #[serde(default)]
    pub context: Option<ReplyContext>,
    pub expected: EncodedRequest,
}

/// Reads every `*.json` file in `dir`, sorted by name.
pub fn load_fixtures(dir: &Path) -> Result<Vec<Fixture>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|error| format!("cannot read {}: {error}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    paths.sort();
    let mut fixtures = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let mut fixture: Fixture = serde_json::from_str(&text)
            .map_err(|error| format!("{} is not a fixture: {error}", path.display()))?;
        fixture.name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        fixtures.push(fixture);
    }
    Ok(fixtures)
}

/// What the check found.
#[derive(Debug, Default)]
pub struct ConformanceReport {
    pub checks: usize,
    pub failures: Vec<String>,
}

impl ConformanceReport {
    fn check(&mut self, passed: bool, failure: impl FnOnce() -> String) {
        self.checks += 1;
        if !passed {
            self.failures.push(failure());
        }
    }

    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Panics listing every failure; for tests.
    #[allow(clippy::panic)]
    pub fn assert_passed(&self) {
        assert!(
            self.passed(),
            "{} of {} conformance checks failed:\n{}",
            self.failures.len(),
            self.checks,
            self.failures.join("\n")
        );
    }
}

/// Runs the conformance check over `fixtures`, building each fixture's adapter with `build`.
pub fn check_fixtures<A, F>(fixtures: &[Fixture], build: F) -> ConformanceReport
where
    A: ChannelAdapter,
    F: Fn(&serde_json::Value) -> Result<A, String>,
{
    let mut report = ConformanceReport::default();
    report.check(!fixtures.is_empty(), || "no fixtures".to_owned());
    for fixture in fixtures {
        let name = &fixture.name;
        let adapter = match build(&fixture.app) {
            Ok(adapter) => adapter,
            Err(error) => {
                report.check(false, || {
                    format!("{name}: adapter cannot be built: {error}")
                });
                continue;
            }
        };
        check_one(&adapter, fixture, &mut report);
    }
    report
}

fn check_one<A: ChannelAdapter>(adapter: &A, fixture: &Fixture, report: &mut ConformanceReport) {
    let name = &fixture.name;
    let request = &fixture.request;
    let outcome = adapter.handle(request);

    if let Some(code) = &fixture.expect_error {
        report.check(
            outcome.as_ref().err().map(|error| error.code()) == Some(code.as_str()),
            || format!("{name}: expected error `{code}`, got {outcome:?}"),
        );
    } else {
        let verified = adapter.verify(request);
        report.check(verified.is_ok(), || {
            format!("{name}: verify refused the recorded request: {verified:?}")
        });
        match &fixture.expect {
            Some(expected) => report.check(outcome.as_ref() == Ok(expected), || {
                format!("{name}: outcome differs\n  expected {expected:?}\n  got      {outcome:?}")
            }),
            None => report.check(false, || {
                format!("{name}: fixture has neither expect nor expect_error")
            }),
        }
    }

    for tampered in tampered_requests(request, &fixture.signed) {
        let (what, tampered) = tampered;
        let verified = adapter.verify(&tampered);
        report.check(verified.is_err(), || {
            format!("{name}: verify accepted a request with {what} tampered")
        });
    }

    for (index, case) in fixture.encode.iter().enumerate() {
        let encoded = adapter.encode(&case.outbound, case.context.as_ref());
        report.check(encoded.as_ref() == Ok(&case.expected), || {
            format!(
                "{name}: encode case {index} differs\n  expected {:?}\n  got      {encoded:?}",
                case.expected
            )
        });
    }
}

/// One copy of the request per signed part, with that part changed.
fn tampered_requests(request: &WebhookRequest, signed: &Signed) -> Vec<(String, WebhookRequest)> {
    let mut out = Vec::new();
    for name in &signed.query {
        if let Some(value) = request.query.get(name) {
            let mut copy = request.clone();
            copy.query.insert(name.clone(), tamper_text(value));
            out.push((format!("query `{name}`"), copy));
        }
    }
    for name in &signed.headers {
        let name = name.to_ascii_lowercase();
        if let Some(value) = request.headers.get(&name) {
            let mut copy = request.clone();
            copy.headers.insert(name.clone(), tamper_text(value));
            out.push((format!("header `{name}`"), copy));
        }
    }
    if signed.body {
        let mut copy = request.clone();
        if let Some(position) = middle_of_longest_alphanumeric_run(&copy.body) {
            copy.body[position] = flip(copy.body[position]);
            out.push(("the body".to_owned(), copy));
        }
    }
    out
}

/// Changes the last character to another of the same class (digit, letter), so the value stays
/// well-formed and only its meaning changes.
fn tamper_text(value: &str) -> String {
    let mut bytes = value.as_bytes().to_vec();
    match bytes.last_mut() {
        Some(last) if last.is_ascii_alphanumeric() => *last = flip(*last),
        _ => bytes.push(b'0'),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn flip(byte: u8) -> u8 {
    match byte {
        b'0'..=b'8' | b'a'..=b'y' | b'A'..=b'Y' => byte + 1,
        b'9' => b'0',
        b'z' => b'a',
        b'Z' => b'A',
        other => other ^ 1,
    }
}

/// The body's signed content is its longest alphanumeric run (ciphertext, a message's text):
/// changing a byte there changes what the provider signed without breaking the framing.
fn middle_of_longest_alphanumeric_run(body: &[u8]) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    let mut start = 0;
    for index in 0..=body.len() {
        let in_run = body.get(index).is_some_and(u8::is_ascii_alphanumeric);
        if !in_run {
            let length = index - start;
            if length > 0 && best.is_none_or(|(_, best_length)| length > best_length) {
                best = Some((start, length));
            }
            start = index + 1;
        }
    }
    best.map(|(start, length)| start + length / 2)
}
