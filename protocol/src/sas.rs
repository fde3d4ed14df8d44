//! Azure DPS shared-access-signature (SAS) tokens.
