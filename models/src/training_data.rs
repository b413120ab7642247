//! Parsing labelled training files: JSON Lines `{"text": "...", "label": "..."}` and CSV
//! `text,label` (RFC 4180 quoting, optional header). Every bad line is reported with its number;
//! nothing panics on bad input. A training set is bounded ([`MAX_EXAMPLES`], [`MAX_LABELS`]):
//! parsing stops at the first record over a bound, before anything is embedded or trained.

use std::collections::HashSet;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

/// One labelled example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub text: String,
    pub label: String,
}

impl Example {
    pub fn new(text: impl Into<String>, label: impl Into<String>) -> Self {
        Example {
            text: text.into(),
            label: label.into(),
        }
    }
}

/// The two accepted training file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingFormat {
    JsonLines,
    Csv,
}

impl TrainingFormat {
    /// Guesses from a file name (`.jsonl`/`.ndjson`/`.json` or `.csv`), else from the first
    /// non-blank character of the content (`{` means JSON Lines).
    pub fn detect(file_name: Option<&str>, content: &str) -> TrainingFormat {
        if let Some(name) = file_name.map(str::to_ascii_lowercase) {
            if name.ends_with(".jsonl") || name.ends_with(".ndjson") || name.ends_with(".json") {
                return TrainingFormat::JsonLines;
            }
            if name.ends_with(".csv") {
                return TrainingFormat::Csv;
            }
        }
        if content
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('{')
        {
            TrainingFormat::JsonLines
        } else {
            TrainingFormat::Csv
        }
    }
}

/// One rejected line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based line number where the record starts.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// All rejected lines of a file; parsing does not stop at the first one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{} invalid line(s), first: {}", errors.len(), errors.first().map(ToString::to_string).unwrap_or_default())]
pub struct ParseErrors {
    pub errors: Vec<LineError>,
}

/// Longest accepted text, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Longest accepted label, in bytes.
pub const MAX_LABEL_BYTES: usize = 128;
/// Most examples in one training set (records of a file, bad ones included): every one is
/// embedded in the training process (384 f32 each), so this bounds its memory and time. The
/// gateway's 32 MiB training file is sized for it.
pub const MAX_EXAMPLES: usize = 100_000;
/// Most distinct labels in one training set (the head's output layer grows with them).
pub const MAX_LABELS: usize = 500;

/// Why a training file or set is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrainingFileError {
    /// Bad lines, each with its number.
    #[error(transparent)]
    Lines(#[from] ParseErrors),
    /// Over [`MAX_EXAMPLES`]; `line`: the first record over it (for a set: its position).
    #[error("a training set has at most {MAX_EXAMPLES} examples (line {line} is one more)")]
    TooManyExamples { line: usize },
    /// Over [`MAX_LABELS`]; `line`: the record with the first label over it.
    #[error("a training set has at most {MAX_LABELS} distinct labels (line {line} has one more)")]
    TooManyLabels { line: usize },
}

impl TrainingFileError {
    /// The stable code callers match on.
    pub fn code(&self) -> &'static str {
        match self {
            TrainingFileError::Lines(_) => "bad_training_file",
            TrainingFileError::TooManyExamples { .. } => "too_many_examples",
            TrainingFileError::TooManyLabels { .. } => "too_many_labels",
        }
    }
}

/// Counts records and distinct labels against [`MAX_EXAMPLES`] and [`MAX_LABELS`].
#[derive(Default)]
struct Bounds {
    records: usize,
    labels: HashSet<String>,
}

impl Bounds {
    /// Admits one more record (`label`: its label when it is valid).
    fn admit(&mut self, line: usize, label: Option<&str>) -> Result<(), TrainingFileError> {
        if self.records >= MAX_EXAMPLES {
            return Err(TrainingFileError::TooManyExamples { line });
        }
        self.records += 1;
        if let Some(label) = label {
            if !self.labels.contains(label) {
                if self.labels.len() >= MAX_LABELS {
                    return Err(TrainingFileError::TooManyLabels { line });
                }
                self.labels.insert(label.to_owned());
            }
        }
        Ok(())
    }
}

/// Checks an already parsed training set against [`MAX_EXAMPLES`] and [`MAX_LABELS`] (the
/// positions in the error are 1-based example numbers).
pub fn check_training_set(examples: &[Example]) -> Result<(), TrainingFileError> {
    let mut bounds = Bounds::default();
    for (index, example) in examples.iter().enumerate() {
        bounds.admit(index + 1, Some(&example.label))?;
    }
    Ok(())
}

/// Parses a training file. Blank lines are skipped. Returns every example, or every bad line,
/// or stops at the first record over [`MAX_EXAMPLES`] or [`MAX_LABELS`].
pub fn parse_examples(
    content: &str,
    format: TrainingFormat,
) -> Result<Vec<Example>, TrainingFileError> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    match format {
        TrainingFormat::JsonLines => parse_jsonl(content),
        TrainingFormat::Csv => parse_csv(content),
    }
}

/// The examples and bad lines of a file as it is read, within the bounds.
#[derive(Default)]
struct Collected {
    examples: Vec<Example>,
    errors: Vec<LineError>,
    bounds: Bounds,
}

impl Collected {
    fn add(
        &mut self,
        line: usize,
        outcome: Result<Example, String>,
    ) -> Result<(), TrainingFileError> {
        match outcome {
            Ok(example) => {
                self.bounds.admit(line, Some(&example.label))?;
                self.examples.push(example);
            }
            Err(message) => {
                self.bounds.admit(line, None)?;
                self.errors.push(LineError { line, message });
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Vec<Example>, TrainingFileError> {
        if self.errors.is_empty() {
            Ok(self.examples)
        } else {
            Err(ParseErrors {
                errors: self.errors,
            }
            .into())
        }
    }
}

fn check(text: &str, label: &str) -> Result<Example, String> {
    let text = text.trim();
    let label = label.trim();
    if text.is_empty() {
        return Err("empty text".into());
    }
    if label.is_empty() {
        return Err("empty label".into());
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(format!("text longer than {MAX_TEXT_BYTES} bytes"));
    }
    if label.len() > MAX_LABEL_BYTES {
        return Err(format!("label longer than {MAX_LABEL_BYTES} bytes"));
    }
    if label.chars().any(char::is_control) {
        return Err("label contains control characters".into());
    }
    Ok(Example::new(text, label))
}

fn parse_jsonl(content: &str) -> Result<Vec<Example>, TrainingFileError> {
    #[derive(Deserialize)]
    struct Line {
        text: Option<serde_json::Value>,
        label: Option<serde_json::Value>,
    }
    let mut collected = Collected::default();
    for (index, raw) in content.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let outcome = match serde_json::from_str::<Line>(raw) {
            Err(e) => Err(format!("invalid json: {e}")),
            Ok(parsed) => match (parsed.text, parsed.label) {
                (None, _) => Err("missing field text".into()),
                (Some(serde_json::Value::String(text)), label) => match label {
                    Some(serde_json::Value::String(label)) => check(&text, &label),
                    Some(serde_json::Value::Number(n)) => check(&text, &n.to_string()),
                    Some(_) => Err("field label is not a string".into()),
                    None => Err("missing field label".into()),
                },
                (Some(_), _) => Err("field text is not a string".into()),
            },
        };
        collected.add(line, outcome)?;
    }
    collected.finish()
}

/// Splits CSV content into records of fields, each with the line it starts on, and hands each
/// to `each` until it breaks.
fn csv_records<B>(
    content: &str,
    mut each: impl FnMut(usize, Result<Vec<String>, String>) -> ControlFlow<B>,
) -> ControlFlow<B> {
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut quoted_field = false;
    let mut error: Option<String> = None;
    let mut line = 1;
    let mut record_line = 1;
    let mut chars = content.chars().peekable();
    let mut record_has_content = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !quoted_field => {
                in_quotes = true;
                quoted_field = true;
                record_has_content = true;
            }
            '"' => {
                if error.is_none() {
                    error = Some("stray quote inside an unquoted field".into());
                }
                field.push(c);
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                quoted_field = false;
                record_has_content = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if record_has_content || !field.is_empty() {
                    fields.push(std::mem::take(&mut field));
                    let result = match error.take() {
                        Some(e) => Err(e),
                        None => Ok(std::mem::take(&mut fields)),
                    };
                    each(record_line, result)?;
                }
                fields.clear();
                field.clear();
                quoted_field = false;
                record_has_content = false;
                line += 1;
                record_line = line;
            }
            _ => {
                if quoted_field {
                    if !c.is_whitespace() && error.is_none() {
                        error = Some("text after a closing quote".into());
                    }
                } else {
                    field.push(c);
                    record_has_content = true;
                }
            }
        }
    }
    if in_quotes {
        each(record_line, Err("unterminated quoted field".into()))?;
    } else if record_has_content || !field.is_empty() {
        fields.push(field);
        let result = match error {
            Some(e) => Err(e),
            None => Ok(fields),
        };
        each(record_line, result)?;
    }
    ControlFlow::Continue(())
}

fn parse_csv(content: &str) -> Result<Vec<Example>, TrainingFileError> {
    let mut collected = Collected::default();
    let mut position = 0;
    let read = csv_records(content, |line, record| {
        let first = position == 0;
        position += 1;
        let outcome = match record {
            Err(message) => Err(message),
            Ok(fields) if fields.iter().all(|f| f.trim().is_empty()) => {
                return ControlFlow::Continue(())
            }
            // header: text,label or text,category
            Ok(fields)
                if first && fields.len() == 2 && fields[0].trim().eq_ignore_ascii_case("text") =>
            {
                return ControlFlow::Continue(())
            }
            Ok(fields) if fields.len() != 2 => Err(format!(
                "expected 2 fields (text,label), found {}",
                fields.len()
            )),
            Ok(fields) => check(&fields[0], &fields[1]),
        };
        match collected.add(line, outcome) {
            Ok(()) => ControlFlow::Continue(()),
            Err(over) => ControlFlow::Break(over),
        }
    });
    match read {
        ControlFlow::Break(over) => Err(over),
        ControlFlow::Continue(()) => collected.finish(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bad_lines(error: TrainingFileError) -> ParseErrors {
        match error {
            TrainingFileError::Lines(errors) => errors,
            other => panic!("expected bad lines, got {other}"),
        }
    }

    #[test]
    fn jsonl_reports_each_bad_line() {
        let input = "{\"text\":\"hi\",\"label\":\"greeting\"}\n\nnot json\n{\"text\":\"x\"}\n{\"text\":\"\",\"label\":\"a\"}\n";
        let err = bad_lines(parse_examples(input, TrainingFormat::JsonLines).unwrap_err());
        let lines: Vec<usize> = err.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(err.errors[1].message.contains("missing field label"));
        let ok = parse_examples(
            "{\"text\":\"你好\",\"label\":\"greeting\"}",
            TrainingFormat::JsonLines,
        )
        .unwrap();
        assert_eq!(ok, vec![Example::new("你好", "greeting")]);
    }

    #[test]
    fn csv_quotes_header_and_errors() {
        let input = "text,category\n\"hello, there\",greeting\n\"say \"\"hi\"\"\",greeting\r\nthree,fields,here\n\"open,label\n";
        let err = bad_lines(parse_examples(input, TrainingFormat::Csv).unwrap_err());
        assert_eq!(err.errors.len(), 2);
        assert_eq!(err.errors[0].line, 4);
        assert_eq!(err.errors[1].line, 5);
        let ok = parse_examples(
            "text,label\n\"hello, there\",greeting\n\"say \"\"hi\"\"\",greeting\n",
            TrainingFormat::Csv,
        )
        .unwrap();
        assert_eq!(ok[0].text, "hello, there");
        assert_eq!(ok[1].text, "say \"hi\"");
    }

    #[test]
    fn detects_format() {
        assert_eq!(
            TrainingFormat::detect(Some("a.CSV"), "{"),
            TrainingFormat::Csv
        );
        assert_eq!(
            TrainingFormat::detect(None, "  {\"text\":1}"),
            TrainingFormat::JsonLines
        );
        assert_eq!(
            TrainingFormat::detect(None, "text,label"),
            TrainingFormat::Csv
        );
    }

    /// `count` CSV lines after a header, the i-th labelled `label(i)`.
    fn csv(count: usize, label: impl Fn(usize) -> String) -> String {
        let mut out = String::from("text,label\n");
        for i in 0..count {
            out.push_str(&format!("t{i},{}\n", label(i)));
        }
        out
    }

    #[test]
    fn a_file_over_the_example_bound_is_refused_at_its_first_record_too_many() {
        let fits = csv(MAX_EXAMPLES, |i| format!("L{}", i % 3));
        assert_eq!(
            parse_examples(&fits, TrainingFormat::Csv).unwrap().len(),
            MAX_EXAMPLES
        );
        let over = csv(MAX_EXAMPLES + 1, |i| format!("L{}", i % 3));
        let error = parse_examples(&over, TrainingFormat::Csv).unwrap_err();
        // The header is line 1: the first record over the bound is on line MAX_EXAMPLES + 2.
        assert_eq!(
            error,
            TrainingFileError::TooManyExamples {
                line: MAX_EXAMPLES + 2
            }
        );
        assert_eq!(error.code(), "too_many_examples");
        assert!(error.to_string().contains("100000"), "{error}");
        // Bad records count too: a file of bad lines cannot pile up errors without end.
        let bad = "a,b,c\n".repeat(MAX_EXAMPLES + 1);
        assert_eq!(
            parse_examples(&bad, TrainingFormat::Csv)
                .unwrap_err()
                .code(),
            "too_many_examples"
        );
        let jsonl = "{\"text\":\"t\",\"label\":\"a\"}\n".repeat(MAX_EXAMPLES + 1);
        assert_eq!(
            parse_examples(&jsonl, TrainingFormat::JsonLines).unwrap_err(),
            TrainingFileError::TooManyExamples {
                line: MAX_EXAMPLES + 1
            }
        );
    }

    #[test]
    fn a_file_over_the_label_bound_is_refused_at_its_first_label_too_many() {
        let fits = csv(2 * MAX_LABELS, |i| format!("L{}", i % MAX_LABELS));
        assert_eq!(
            parse_examples(&fits, TrainingFormat::Csv).unwrap().len(),
            2 * MAX_LABELS
        );
        let over = csv(MAX_LABELS + 1, |i| format!("L{i}"));
        let error = parse_examples(&over, TrainingFormat::Csv).unwrap_err();
        assert_eq!(
            error,
            TrainingFileError::TooManyLabels {
                line: MAX_LABELS + 2
            }
        );
        assert_eq!(error.code(), "too_many_labels");
        assert!(error.to_string().contains("500"), "{error}");
        let jsonl: String = (0..=MAX_LABELS)
            .map(|i| format!("{{\"text\":\"t\",\"label\":\"L{i}\"}}\n"))
            .collect();
        assert_eq!(
            parse_examples(&jsonl, TrainingFormat::JsonLines)
                .unwrap_err()
                .code(),
            "too_many_labels"
        );
    }

    #[test]
    fn a_parsed_set_is_checked_against_the_same_bounds() {
        let set = |count: usize, labels: usize| -> Vec<Example> {
            (0..count)
                .map(|i| Example::new("t", format!("L{}", i % labels)))
                .collect()
        };
        assert_eq!(check_training_set(&set(MAX_EXAMPLES, MAX_LABELS)), Ok(()));
        assert_eq!(
            check_training_set(&set(MAX_EXAMPLES + 1, 2)),
            Err(TrainingFileError::TooManyExamples {
                line: MAX_EXAMPLES + 1
            })
        );
        assert_eq!(
            check_training_set(&set(MAX_LABELS + 1, MAX_LABELS + 1)),
            Err(TrainingFileError::TooManyLabels {
                line: MAX_LABELS + 1
            })
        );
    }
}
