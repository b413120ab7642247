//! The encoder's vectors of an evaluation set, cached in `.cache/embeddings/` under the
//! model's checksum (shared by the evaluation examples).

use std::path::{Path, PathBuf};
use std::time::Instant;

use switchboard_models::Encoder;

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub struct Cache {
    dir: PathBuf,
    key: String,
}

impl Cache {
    pub fn new(encoder: &Encoder) -> Result<Cache, String> {
        let dir = project_root().join(".cache/embeddings");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let meta = encoder.files().model.with_file_name("encoder.json");
        let key = std::fs::read_to_string(&meta)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| {
                v["files"]["encoder.int8.onnx"]
                    .as_str()
                    .map(|s| s[..12].to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Ok(Cache { dir, key })
    }

    pub fn embed(
        &self,
        encoder: &Encoder,
        name: &str,
        data: &[(String, String)],
    ) -> Result<Vec<Vec<f32>>, String> {
        let path = self.dir.join(format!("{name}.{}.f32", self.key));
        let dim = encoder.dimension();
        if let Ok(bytes) = std::fs::read(&path) {
            if bytes.len() == data.len() * dim * 4 {
                let floats: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                return Ok(floats.chunks(dim).map(<[f32]>::to_vec).collect());
            }
        }
        let t = Instant::now();
        let texts: Vec<&str> = data.iter().map(|(t, _)| t.as_str()).collect();
        let vectors = encoder.embed_blocking(&texts).map_err(|e| e.to_string())?;
        println!(
            "  embedded {name}: {} texts in {:.1} s",
            texts.len(),
            t.elapsed().as_secs_f32()
        );
        let mut bytes = Vec::with_capacity(data.len() * dim * 4);
        for v in &vectors {
            for x in v {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
        std::fs::write(&path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(vectors)
    }
}
