//! Embeds the built operator console (`admin-ui/dist`, made by `scripts/setup.sh` with Vite)
//! into the binary: writes `$OUT_DIR/admin_ui_files.rs`, a table of
//! `(path inside dist, content type, bytes through include_bytes!)` that `http::admin_ui` serves.
//! Without a dist folder the table is empty and the console's routes answer 503
//! `console_not_built`: the gateway still compiles on a machine without Node.js.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dist = manifest_dir.join("admin-ui").join("dist");

    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        // The folder itself (files added or removed) and every file in it.
        println!("cargo:rerun-if-changed={}", dist.display());
        collect(&dist, &dist, &mut files);
        files.sort();
    } else {
        // A missing folder would make cargo rerun this script on every build; the console's
        // source folder exists and changes when dist appears in it.
        println!(
            "cargo:rerun-if-changed={}",
            manifest_dir.join("admin-ui").display()
        );
    }

    let mut table = String::from(
        "/// The built operator console: (path inside dist, content type, bytes).\n\
         pub static FILES: &[(&str, &str, &[u8])] = &[\n",
    );
    for (relative, absolute) in &files {
        println!("cargo:rerun-if-changed={}", absolute.display());
        writeln!(
            table,
            "    ({relative:?}, {content_type:?}, include_bytes!({absolute:?})),",
            content_type = content_type(relative),
            absolute = absolute.display().to_string(),
        )
        .expect("write to a string");
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("admin_ui_files.rs"), table).expect("write admin_ui_files.rs");
}

/// Every file under `dir` as (path relative to `root` with `/`, absolute path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|error| panic!("read {}: {error}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let relative = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((relative, path));
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
