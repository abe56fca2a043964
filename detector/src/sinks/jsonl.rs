//! Append-only JSON-lines files: standalone mode's stand-in for Kafka
//! topics and ClickHouse tables. One record per line, flushed per batch so
//! `tail -f` and `jq` see alerts as they happen.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// An append-only JSON-lines file.
pub struct JsonLinesFile {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
}

impl JsonLinesFile {
    /// Opens `path` for appending, creating it and its directory.
    pub fn append(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonLinesFile {
            path: path.to_owned(),
            out: BufWriter::with_capacity(256 * 1024, file),
            written: 0,
        })
    }

    /// Writes one record; `line` must not contain a newline (serde_json
    /// output never does).
    pub fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records written through this handle.
    pub fn written(&self) -> u64 {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_record_per_line() {
        let dir = std::env::temp_dir().join(format!("qalqan-jsonl-{}", std::process::id()));
        let path = dir.join("sub/alerts.jsonl");
        let _ = std::fs::remove_file(&path);
        {
            let mut f = JsonLinesFile::append(&path).expect("open");
            f.write_line("{\"a\":1}").expect("write");
            f.flush().expect("flush");
        }
        let mut f = JsonLinesFile::append(&path).expect("reopen");
        f.write_line("{\"a\":2}").expect("write");
        f.flush().expect("flush");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(f.written(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
