//! Parsing labelled training files: JSON Lines `{"text": "...", "label": "..."}` and CSV
//! `text,label` (RFC 4180 quoting, optional header). Every bad line is reported with its number;
//! nothing panics on bad input.

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

/// Parses a training file. Blank lines are skipped. Returns every example, or every error.
pub fn parse_examples(content: &str, format: TrainingFormat) -> Result<Vec<Example>, ParseErrors> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    match format {
        TrainingFormat::JsonLines => parse_jsonl(content),
        TrainingFormat::Csv => parse_csv(content),
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

fn parse_jsonl(content: &str) -> Result<Vec<Example>, ParseErrors> {
    #[derive(Deserialize)]
    struct Line {
        text: Option<serde_json::Value>,
        label: Option<serde_json::Value>,
    }
    let mut examples = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in content.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let parsed: Line = match serde_json::from_str(raw) {
            Ok(parsed) => parsed,
            Err(e) => {
                errors.push(LineError {
                    line,
                    message: format!("invalid json: {e}"),
                });
                continue;
            }
        };
        let text = match parsed.text {
            Some(serde_json::Value::String(s)) => s,
            Some(_) => {
                errors.push(LineError {
                    line,
                    message: "field text is not a string".into(),
                });
                continue;
            }
            None => {
                errors.push(LineError {
                    line,
                    message: "missing field text".into(),
                });
                continue;
            }
        };
        let label = match parsed.label {
            Some(serde_json::Value::String(s)) => s,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(_) => {
                errors.push(LineError {
                    line,
                    message: "field label is not a string".into(),
                });
                continue;
            }
            None => {
                errors.push(LineError {
                    line,
                    message: "missing field label".into(),
                });
                continue;
            }
        };
        match check(&text, &label) {
            Ok(example) => examples.push(example),
            Err(message) => errors.push(LineError { line, message }),
        }
    }
    finish(examples, errors)
}

fn finish(examples: Vec<Example>, errors: Vec<LineError>) -> Result<Vec<Example>, ParseErrors> {
    if errors.is_empty() {
        Ok(examples)
    } else {
        Err(ParseErrors { errors })
    }
}

/// Splits CSV content into records of fields, each with the line it starts on.
fn csv_records(content: &str) -> Vec<(usize, Result<Vec<String>, String>)> {
    let mut records = Vec::new();
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
                    records.push((record_line, result));
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
        records.push((record_line, Err("unterminated quoted field".into())));
    } else if record_has_content || !field.is_empty() {
        fields.push(field);
        let result = match error {
            Some(e) => Err(e),
            None => Ok(fields),
        };
        records.push((record_line, result));
    }
    records
}

fn parse_csv(content: &str) -> Result<Vec<Example>, ParseErrors> {
    let mut examples = Vec::new();
    let mut errors = Vec::new();
    for (position, (line, record)) in csv_records(content).into_iter().enumerate() {
        let fields = match record {
            Ok(fields) => fields,
            Err(message) => {
                errors.push(LineError { line, message });
                continue;
            }
        };
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if position == 0 && fields.len() == 2 && fields[0].trim().eq_ignore_ascii_case("text") {
            continue; // header: text,label or text,category
        }
        if fields.len() != 2 {
            errors.push(LineError {
                line,
                message: format!("expected 2 fields (text,label), found {}", fields.len()),
            });
            continue;
        }
        match check(&fields[0], &fields[1]) {
            Ok(example) => examples.push(example),
            Err(message) => errors.push(LineError { line, message }),
        }
    }
    finish(examples, errors)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_reports_each_bad_line() {
        let input = "{\"text\":\"hi\",\"label\":\"greeting\"}\n\nnot json\n{\"text\":\"x\"}\n{\"text\":\"\",\"label\":\"a\"}\n";
        let err = parse_examples(input, TrainingFormat::JsonLines).unwrap_err();
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
        let err = parse_examples(input, TrainingFormat::Csv).unwrap_err();
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
}
