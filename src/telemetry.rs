//! Logging setup and the request id that ties a response, its log lines and
//! its audit event together.

use crate::domain::redact::Redactor;
use std::borrow::Cow;
use std::io::Write;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{fmt, EnvFilter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

tokio::task_local! {
    static REQUEST_ID: String;
}

pub fn new_request_id() -> String {
    format!("req_{}", uuid::Uuid::new_v4().simple())
}

/// Runs `fut` with `id` as the current request id.
pub async fn with_request_id<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The current request's id; outside a request, a fresh one (every envelope has one).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(|id| id.clone()).unwrap_or_else(|_| new_request_id())
}

/// Writes log lines with every secret redacted: each line is built whole
/// before it is written, so this is the one place every line passes.
#[derive(Clone)]
pub struct RedactingWriter<M> {
    inner: M,
    redactor: std::sync::Arc<Redactor>,
}

impl<M> RedactingWriter<M> {
    pub fn new(inner: M, redactor: Redactor) -> Self {
        RedactingWriter { inner, redactor: std::sync::Arc::new(redactor) }
    }
}

pub struct RedactedLine<W> {
    inner: W,
    redactor: std::sync::Arc<Redactor>,
}

impl<W: Write> Write for RedactedLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf).map(|line| self.redactor.text(line)) {
            Ok(Cow::Owned(clean)) => self.inner.write_all(clean.as_bytes()),
            _ => self.inner.write_all(buf),
        }?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingWriter<M> {
    type Writer = RedactedLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactedLine { inner: self.inner.make_writer(), redactor: self.redactor.clone() }
    }
}

/// Installs the global subscriber once. `serve` logs JSON by default.
pub fn init(format: LogFormat, redactor: Redactor) {
    let filter = EnvFilter::try_from_env("KEYWARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(RedactingWriter::new(std::io::stderr, redactor));
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
