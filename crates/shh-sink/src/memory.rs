//! A sink in memory: results are kept as maps of file names to bytes, for in-process callers
//! (tests; the server, which streams a result to its client).

use crate::{Result, SinkError, SinkFile, Staged, check_file_name, check_result_name};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type Files = BTreeMap<String, Bytes>;

/// Results in memory; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    results: Arc<Mutex<BTreeMap<String, Files>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The committed result `name`: file name → bytes.
    pub fn result(&self, name: &str) -> Option<Files> {
        lock(&self.results).get(name).cloned()
    }

    /// The names of the committed results.
    pub fn names(&self) -> Vec<String> {
        lock(&self.results).keys().cloned().collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait::async_trait]
impl crate::Sink for MemorySink {
    fn location(&self) -> String {
        "memory".into()
    }

    async fn stage(&self, name: &str) -> Result<Box<dyn Staged>> {
        check_result_name(name)?;
        if lock(&self.results).contains_key(name) {
            return Err(SinkError::Exists {
                name: name.to_owned(),
                location: format!("memory:{name}"),
            });
        }
        Ok(Box::new(MemoryStaged {
            sink: self.clone(),
            name: name.to_owned(),
            files: Arc::new(Mutex::new(Files::new())),
        }))
    }
}

#[derive(Debug)]
struct MemoryStaged {
    sink: MemorySink,
    name: String,
    files: Arc<Mutex<Files>>,
}

#[async_trait::async_trait]
impl Staged for MemoryStaged {
    fn location(&self) -> String {
        format!("memory:{}", self.name)
    }

    async fn create(&self, name: &str) -> Result<Box<dyn SinkFile>> {
        check_file_name(name)?;
        if lock(&self.files).contains_key(name) {
            return Err(SinkError::Exists {
                name: name.to_owned(),
                location: format!("memory:{}/{name}", self.name),
            });
        }
        Ok(Box::new(MemoryFile {
            files: self.files.clone(),
            name: name.to_owned(),
            buf: Vec::new(),
        }))
    }

    async fn commit(self: Box<Self>) -> Result<String> {
        let mut results = lock(&self.sink.results);
        if results.contains_key(&self.name) {
            return Err(SinkError::Exists {
                name: self.name.clone(),
                location: self.location(),
            });
        }
        results.insert(self.name.clone(), std::mem::take(&mut *lock(&self.files)));
        Ok(self.location())
    }

    async fn abort(self: Box<Self>) {}
}

#[derive(Debug)]
struct MemoryFile {
    files: Arc<Mutex<Files>>,
    name: String,
    buf: Vec<u8>,
}

#[async_trait::async_trait]
impl SinkFile for MemoryFile {
    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<()> {
        let mut files = lock(&self.files);
        if files.contains_key(&self.name) {
            return Err(SinkError::Exists {
                name: self.name.clone(),
                location: self.name.clone(),
            });
        }
        files.insert(self.name, Bytes::from(self.buf));
        Ok(())
    }
}
