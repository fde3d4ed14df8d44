//! fieldlink-device-agent.
