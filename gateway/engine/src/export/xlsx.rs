//! An XLSX workbook written as it goes: a zip stream (entries with data descriptors, so nothing
//! is ever seeked back to) whose worksheets are written row by row with inline strings. Memory
//! stays at the deflater's window whatever the number of rows.
//!
//! A worksheet holds at most 1,048,576 rows (Excel's limit, the header included): past it the
//! rows go on in a new worksheet (`messages`, `messages 2`, ...) that repeats the header. The
//! workbook part listing the sheets is written last, when their number is known.

use std::io::Write;

use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

use super::cell::Cell;

/// Excel's most rows in one worksheet.
pub const MAX_SHEET_ROWS: u32 = 1_048_576;
/// Excel's most characters (UTF-16 units) in one cell; longer text is cut and ends with `…`.
pub const MAX_CELL_CHARS: usize = 32_767;

const NS_MAIN: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
const NS_REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
const NS_PKG_REL: &str = "http://schemas.openxmlformats.org/package/2006/relationships";
const XML_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#;

pub struct Workbook<W: Write> {
    zip: ZipWriter<StreamWriter<W>>,
    name: &'static str,
    header: Vec<&'static str>,
    max_rows: u32,
    sheets: u32,
    rows_in_sheet: u32,
    /// Reused for each row's XML.
    line: String,
}

fn zip_error(error: zip::result::ZipError) -> std::io::Error {
    std::io::Error::other(error)
}

impl<W: Write> Workbook<W> {
    /// A workbook whose sheets are called `name` and start with `header`; at most `max_rows`
    /// rows per sheet, the header included ([`MAX_SHEET_ROWS`] but in tests).
    pub fn new(
        out: W,
        name: &'static str,
        header: Vec<&'static str>,
        max_rows: u32,
    ) -> std::io::Result<Self> {
        let mut workbook = Workbook {
            zip: ZipWriter::new_stream(out),
            name,
            header,
            max_rows: max_rows.max(2),
            sheets: 0,
            rows_in_sheet: 0,
            line: String::new(),
        };
        workbook.start_sheet()?;
        Ok(workbook)
    }

    fn sheet_options() -> SimpleFileOptions {
        SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            // A sheet may pass 4 GiB of XML (long transcripts): zip64 sizes.
            .large_file(true)
    }

    fn start_sheet(&mut self) -> std::io::Result<()> {
        self.sheets += 1;
        self.rows_in_sheet = 0;
        self.zip
            .start_file(
                format!("xl/worksheets/sheet{}.xml", self.sheets),
                Self::sheet_options(),
            )
            .map_err(zip_error)?;
        write!(
            self.zip,
            r#"{XML_HEAD}<worksheet xmlns="{NS_MAIN}"><sheetData>"#
        )?;
        let header: Vec<Cell> = self.header.iter().map(|name| Cell::text(*name)).collect();
        self.write_row(&header)
    }

    fn end_sheet(&mut self) -> std::io::Result<()> {
        self.zip.write_all(b"</sheetData></worksheet>")
    }

    /// Appends one row, starting a new sheet when this one is full.
    pub fn row(&mut self, cells: &[Cell]) -> std::io::Result<()> {
        if self.rows_in_sheet >= self.max_rows {
            self.end_sheet()?;
            self.start_sheet()?;
        }
        self.write_row(cells)
    }

    fn write_row(&mut self, cells: &[Cell]) -> std::io::Result<()> {
        self.rows_in_sheet += 1;
        let number = self.rows_in_sheet;
        let line = &mut self.line;
        line.clear();
        line.push_str(&format!(r#"<row r="{number}">"#));
        for (index, cell) in cells.iter().enumerate() {
            let reference = format!("{}{number}", column_name(index));
            match cell {
                Cell::Empty => {}
                Cell::Int(value) => {
                    line.push_str(&format!(r#"<c r="{reference}"><v>{value}</v></c>"#))
                }
                Cell::Number(value) if value.is_finite() => {
                    line.push_str(&format!(r#"<c r="{reference}"><v>{value}</v></c>"#))
                }
                Cell::Number(_) => {}
                Cell::Text(text) => {
                    line.push_str(&format!(
                        r#"<c r="{reference}" t="inlineStr"><is><t xml:space="preserve">"#
                    ));
                    push_escaped(line, text);
                    line.push_str("</t></is></c>");
                }
            }
        }
        line.push_str("</row>");
        self.zip.write_all(self.line.as_bytes())
    }

    /// Ends the last sheet, writes the workbook's parts and the zip's directory; answers the
    /// output and how many sheets were written.
    pub fn finish(mut self) -> std::io::Result<(W, u32)> {
        self.end_sheet()?;
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        let sheets = self.sheets;
        let mut sheet_list = String::new();
        let mut sheet_rels = String::new();
        let mut overrides = String::new();
        for index in 1..=sheets {
            let name = if index == 1 {
                self.name.to_owned()
            } else {
                format!("{} {index}", self.name)
            };
            sheet_list.push_str(&format!(
                r#"<sheet name="{name}" sheetId="{index}" r:id="rId{index}"/>"#
            ));
            sheet_rels.push_str(&format!(
                r#"<Relationship Id="rId{index}" Type="{NS_REL}/worksheet" Target="worksheets/sheet{index}.xml"/>"#
            ));
            overrides.push_str(&format!(
                r#"<Override PartName="/xl/worksheets/sheet{index}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#
            ));
        }
        let parts = [
            (
                "xl/workbook.xml",
                format!(
                    r#"{XML_HEAD}<workbook xmlns="{NS_MAIN}" xmlns:r="{NS_REL}"><sheets>{sheet_list}</sheets></workbook>"#
                ),
            ),
            (
                "xl/_rels/workbook.xml.rels",
                format!(
                    r#"{XML_HEAD}<Relationships xmlns="{NS_PKG_REL}">{sheet_rels}</Relationships>"#
                ),
            ),
            (
                "_rels/.rels",
                format!(
                    r#"{XML_HEAD}<Relationships xmlns="{NS_PKG_REL}"><Relationship Id="rId1" Type="{NS_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
                ),
            ),
            (
                "[Content_Types].xml",
                format!(
                    r#"{XML_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>{overrides}</Types>"#
                ),
            ),
        ];
        for (name, text) in parts {
            self.zip.start_file(name, options).map_err(zip_error)?;
            self.zip.write_all(text.as_bytes())?;
        }
        let out = self.zip.finish().map_err(zip_error)?.into_inner();
        Ok((out, sheets))
    }

    /// The writer underneath (to flush what was written so far).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.zip.flush()
    }
}

/// `A`, `B`, ..., `Z`, `AA`, ... for a 0-based column.
fn column_name(index: usize) -> String {
    let mut index = index + 1;
    let mut name = Vec::new();
    while index > 0 {
        let rest = (index - 1) % 26;
        name.push(b'A' + rest as u8);
        index = (index - 1) / 26;
    }
    name.reverse();
    String::from_utf8(name).unwrap_or_default()
}

/// XML text: `&`, `<`, `>` escaped; characters XML 1.0 cannot carry dropped; cut at Excel's
/// cell limit.
fn push_escaped(out: &mut String, text: &str) {
    let limit = if text.encode_utf16().count() > MAX_CELL_CHARS {
        MAX_CELL_CHARS - 1
    } else {
        usize::MAX
    };
    let mut units = 0;
    for ch in text.chars() {
        units += ch.len_utf16();
        if units > limit {
            out.push('…');
            return;
        }
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(ch),
            ch if (ch as u32) < 0x20 || ch == '\u{FFFE}' || ch == '\u{FFFF}' => {}
            ch => out.push(ch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_go_past_z() {
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(25), "Z");
        assert_eq!(column_name(26), "AA");
        assert_eq!(column_name(27), "AB");
        assert_eq!(column_name(701), "ZZ");
        assert_eq!(column_name(702), "AAA");
    }

    #[test]
    fn text_is_escaped_stripped_and_cut() {
        let mut out = String::new();
        push_escaped(&mut out, "a<b>&c\u{1}d\ne");
        assert_eq!(out, "a&lt;b&gt;&amp;cd\ne");
        let mut full = String::new();
        push_escaped(&mut full, &"x".repeat(MAX_CELL_CHARS));
        assert_eq!(full.chars().count(), MAX_CELL_CHARS);
        assert!(!full.ends_with('…'));
        let mut long = String::new();
        push_escaped(&mut long, &"x".repeat(MAX_CELL_CHARS + 10));
        assert_eq!(long.chars().count(), MAX_CELL_CHARS);
        assert!(long.ends_with('…'));
    }
}
