//! The Tauri commands: thin wrappers that parse, call the core (through [`crate::run`] and
//! [`crate::site`]) and convert. Each returns `Result<_, CommandError>`.

pub mod app;
pub mod batch;
pub mod commission;
pub mod devices;
pub mod history;
pub mod session;

#[cfg(test)]
mod tests;
