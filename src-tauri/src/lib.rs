//! fieldlink desktop shell.
