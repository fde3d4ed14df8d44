//! fieldlink-provisioning-api.
