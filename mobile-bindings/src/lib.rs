//! fieldlink uniffi bindings.
