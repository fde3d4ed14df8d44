//! The data the commands exchange with the UI. Each type derives `ts_rs::TS`; the TypeScript
//! declarations in `ui/src/generated/types.ts` are generated from them ([`crate::bindings`]).
//!
//! The core's own types are mirrored here, field by field, with exhaustive destructuring in the
//! `From` impls: a field added to the core breaks this crate's build instead of silently missing
//! from the UI.

pub mod batch;
pub mod device;
pub mod history;
pub mod progress;
pub mod result;
pub mod settings;
