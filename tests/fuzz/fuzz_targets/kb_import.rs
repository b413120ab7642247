//! Knowledge-base imports: CSV, JSON Lines and XLSX (zip bombs, huge dimensions), by the
//! declared format the first byte picks, or sniffed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_knowledge::{parse_import, ImportFormat};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let format = match choice % 4 {
        0 => None,
        1 => Some(ImportFormat::Csv),
        2 => Some(ImportFormat::Jsonl),
        _ => Some(ImportFormat::Xlsx),
    };
    let _ = parse_import(bytes, format);
});
