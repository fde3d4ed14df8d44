CREATE TABLE IF NOT EXISTS dps_instances (
    name TEXT PRIMARY KEY NOT NULL,
    id_scope TEXT NOT NULL UNIQUE,
    global_endpoint TEXT NOT NULL,
    service_endpoint TEXT NOT NULL,
    region TEXT NOT NULL,
    allowed_tenants TEXT NOT NULL,
    registration_cap BIGINT NOT NULL,
    rate_limit_per_minute BIGINT NOT NULL,
    state TEXT NOT NULL,
    registrations BIGINT NOT NULL DEFAULT 0 CHECK (registrations >= 0),
    rate_minute BIGINT NOT NULL DEFAULT 0,
    rate_count BIGINT NOT NULL DEFAULT 0,
    rate_previous_count BIGINT NOT NULL DEFAULT 0,
    service_policy_name TEXT,
    service_key TEXT,
    service_resource_uri TEXT,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS allowlist (
    registration_id TEXT PRIMARY KEY NOT NULL,
    tenant TEXT NOT NULL,
    label TEXT,
    imported_at_ms BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS allowlist_by_tenant ON allowlist (tenant, registration_id);

CREATE TABLE IF NOT EXISTS assignments (
    tenant TEXT NOT NULL,
    registration_id TEXT NOT NULL,
    dps_instance TEXT NOT NULL,
    id_scope TEXT NOT NULL,
    global_endpoint TEXT NOT NULL,
    region TEXT NOT NULL,
    status TEXT NOT NULL,
    generation BIGINT NOT NULL,
    assigned_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, registration_id)
);

CREATE INDEX IF NOT EXISTS assignments_by_registration ON assignments (registration_id);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response TEXT,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, idempotency_key)
);

CREATE TABLE IF NOT EXISTS ticket_keys (
    key_id TEXT PRIMARY KEY NOT NULL,
    private_pkcs8_pem TEXT NOT NULL,
    public_key TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS one_current_ticket_key ON ticket_keys (state)
    WHERE state = 'current';
