//! What goes to stdout: human text, or NDJSON with `--json` (see `docs/cli.md` for the schema).
//!
//! Logs and progress bars go to stderr; stdout carries only results, so `--json` output can be
//! piped into `jq` line by line.

use std::{
    io::Write,
    sync::{Arc, Mutex, PoisonError},
};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::exit::{CliError, Exit};

/// Version of the `--json` schema; bumped only on incompatible changes.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// Where stdout lines go (the process's stdout, or a buffer in tests).
pub type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

/// The stdout printer.
#[derive(Clone)]
pub struct Output {
    json: bool,
    quiet: bool,
    sink: Sink,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("json", &self.json)
            .field("quiet", &self.quiet)
            .finish_non_exhaustive()
    }
}

impl Output {
    /// Prints to the process's stdout.
    pub fn stdout(json: bool, quiet: bool) -> Self {
        Self::to_sink(
            json,
            quiet,
            Arc::new(Mutex::new(Box::new(std::io::stdout()))),
        )
    }

    /// Prints to `sink`.
    pub fn to_sink(json: bool, quiet: bool, sink: Sink) -> Self {
        Self { json, quiet, sink }
    }

    /// Whether `--json` was given.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Whether `-q` was given.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    fn write_line(&self, line: &str) {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        // A closed stdout (`| head`) is not an error worth failing the commissioning for.
        let _ = writeln!(sink, "{line}");
        let _ = sink.flush();
    }

    /// A line of human output (suppressed with `--json`).
    pub fn line(&self, text: impl std::fmt::Display) {
        if !self.json {
            self.write_line(&text.to_string());
        }
    }

    /// A line of human output that `-q` suppresses too.
    pub fn info(&self, text: impl std::fmt::Display) {
        if !self.quiet {
            self.line(text);
        }
    }

    /// One NDJSON object of type `kind` (only with `--json`); `body`'s fields are merged in.
    pub fn event(&self, kind: &str, body: &impl Serialize) {
        if !self.json {
            return;
        }
        let mut object = Map::new();
        object.insert("type".into(), json!(kind));
        match serde_json::to_value(body) {
            Ok(Value::Object(fields)) => object.extend(fields),
            Ok(other) => {
                object.insert("data".into(), other);
            }
            Err(error) => {
                object.insert("serialization_error".into(), json!(error.to_string()));
            }
        }
        self.write_line(&Value::Object(object).to_string());
    }

    /// The final `result` object (only with `--json`): `{type, schema, command, ok, exit_code,
    /// ...body}`.
    pub fn result(&self, command: &str, exit: Exit, body: Value) {
        if !self.json {
            return;
        }
        let mut object = Map::new();
        object.insert("type".into(), json!("result"));
        object.insert("schema".into(), json!(JSON_SCHEMA_VERSION));
        object.insert("command".into(), json!(command));
        object.insert("ok".into(), json!(exit == Exit::Success));
        object.insert("exit_code".into(), json!(exit.code()));
        if let Value::Object(fields) = body {
            object.extend(fields);
        }
        self.write_line(&Value::Object(object).to_string());
    }

    /// The final `result` object for a failed command.
    pub fn error_result(&self, command: &str, error: &CliError) {
        self.result(command, error.exit, json!({ "error": error.to_json() }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_mode_prints_typed_ndjson_and_no_text() {
        let buffer = Buffer::default();
        let output = Output::to_sink(true, false, Arc::new(Mutex::new(Box::new(buffer.clone()))));
        output.line("hidden");
        output.event("progress", &json!({"step": "scanning"}));
        output.result("demo", Exit::Partial, json!({"devices": []}));
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], json!({"type": "progress", "step": "scanning"}));
        assert_eq!(lines[1]["type"], "result");
        assert_eq!(lines[1]["ok"], false);
        assert_eq!(lines[1]["exit_code"], 3);
        assert_eq!(lines[1]["schema"], 1);
    }
}
