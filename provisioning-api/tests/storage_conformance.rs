//! One conformance suite for the [`Storage`] trait, run against SQLite and PostgreSQL.
//!
//! Each check is a function generic over `&dyn Storage`; the macro at the bottom instantiates
//! every check for both backends (PostgreSQL in its own fresh schema per test). The
//! secrets-at-rest checks take the whole [`TestStorage`] (they read columns with plain SQL and
//! reopen the database with other keys).

mod support;

use std::{collections::HashMap, sync::Arc};

use fieldlink_provisioning_api::{
    allocation::AllocationRefusal,
    model::{AllowlistEntry, AssignmentStatus, InstanceState, NewDpsInstance},
    storage::{
        AssignError, AssignKind, AssignMode, AssignRequest, ClaimOutcome, DeviceLookup,
        IdempotencyClaim, PoolError, SecretsKey, SecretsKeyring, Storage, StorageError,
        StoredTicketKey, TicketKeyState,
    },
    ticketing::generate_key,
};
use support::{Backend, TestStorage, device_ids, fresh_secrets, instance_spec};

const NOW: i64 = 1_800_000_000_000;

fn spec(name: &str, cap: u64, rate: u64) -> NewDpsInstance {
    serde_json::from_value(instance_spec(name, "weu", cap, rate, &[])).expect("spec")
}

fn request(tenant: &str, id: &str, mode: AssignMode) -> AssignRequest {
    AssignRequest {
        tenant: tenant.to_owned(),
        registration_id: id.to_owned(),
        region: None,
        mode,
        require_allowlisted: true,
        now_ms: NOW,
    }
}

async fn list(storage: &dyn Storage, tenant: &str, ids: &[String]) {
    let entries = ids
        .iter()
        .map(|id| AllowlistEntry {
            registration_id: id.clone(),
            label: None,
        })
        .collect();
    storage
        .import_allowlist(tenant, entries, NOW)
        .await
        .expect("import");
}

async fn pool_lifecycle(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    let added = s.add_instance(spec("a", 10, 100), NOW).await.expect("add");
    assert_eq!(added.state, InstanceState::Active);
    assert_eq!(added.registrations, 0);
    assert!(added.service_credentials.is_some());
    assert!(matches!(
        s.add_instance(spec("a", 10, 100), NOW).await,
        Err(PoolError::AlreadyExists)
    ));
    let mut same_scope = spec("b", 10, 100);
    same_scope.id_scope = added.id_scope.clone();
    assert!(matches!(
        s.add_instance(same_scope, NOW).await,
        Err(PoolError::AlreadyExists)
    ));
    s.add_instance(spec("b", 10, 100), NOW)
        .await
        .expect("add b");
    let names: Vec<String> = s
        .list_instances()
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    let drained = s
        .set_instance_state("a", InstanceState::Draining)
        .await
        .expect("drain");
    assert_eq!(drained.state, InstanceState::Draining);
    assert!(matches!(
        s.set_instance_state("zz", InstanceState::Draining).await,
        Err(PoolError::NotFound(_))
    ));
    s.remove_instance("a").await.expect("remove empty");
    assert!(s.instance("a").await.expect("get").is_none());
    assert!(matches!(
        s.remove_instance("a").await,
        Err(PoolError::NotFound(_))
    ));
    s.ping().await.expect("ping");
}

async fn allowlist_ownership(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    let ids = device_ids("own", 4);
    let mut with_duplicate = ids.clone();
    with_duplicate.push(ids[0].clone());
    let entries: Vec<AllowlistEntry> = with_duplicate
        .iter()
        .map(|id| AllowlistEntry {
            registration_id: id.clone(),
            label: Some(format!("l-{id}")),
        })
        .collect();
    let outcome = s
        .import_allowlist("acme", entries, NOW)
        .await
        .expect("import");
    assert_eq!((outcome.added, outcome.already_listed), (4, 1));
    let outcome = s
        .import_allowlist(
            "globex",
            vec![
                AllowlistEntry {
                    registration_id: ids[1].clone(),
                    label: None,
                },
                AllowlistEntry {
                    registration_id: "globex-1".into(),
                    label: None,
                },
            ],
            NOW,
        )
        .await
        .expect("import");
    assert_eq!(outcome.added, 1);
    assert_eq!(outcome.owned_by_other_tenant, vec![ids[1].clone()]);
    let page = s.allowlist_page("acme", None, 3).await.expect("page");
    assert_eq!(page.len(), 3);
    assert_eq!(page[0].label.as_deref(), Some("l-own-00000"));
    let rest = s
        .allowlist_page("acme", Some(page[2].registration_id.clone()), 3)
        .await
        .expect("page");
    assert_eq!(rest.len(), 1);
    assert_eq!(
        s.device("acme", &ids[0]).await.expect("lookup"),
        DeviceLookup::Owned {
            allowlisted: true,
            assignment: None
        }
    );
    assert_eq!(
        s.device("globex", &ids[0]).await.expect("lookup"),
        DeviceLookup::OtherTenant
    );
    assert_eq!(
        s.device("acme", "nobody").await.expect("lookup"),
        DeviceLookup::Unknown
    );
    assert!(
        !s.remove_from_allowlist("globex", &ids[0])
            .await
            .expect("remove")
    );
    assert!(
        s.remove_from_allowlist("acme", &ids[0])
            .await
            .expect("remove")
    );
    assert_eq!(
        s.device("acme", &ids[0]).await.expect("lookup"),
        DeviceLookup::Unknown
    );
}

async fn assignment_lifecycle(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    s.add_instance(spec("a", 10, 100), NOW).await.expect("add");
    s.add_instance(spec("b", 10, 100), NOW).await.expect("add");
    let ids = device_ids("life", 2);
    list(s, "acme", &ids).await;
    assert!(matches!(
        s.assign(request("acme", "unlisted", AssignMode::Sticky))
            .await,
        Err(AssignError::NotAllowlisted)
    ));
    assert!(matches!(
        s.assign(request("globex", &ids[0], AssignMode::Sticky))
            .await,
        Err(AssignError::OtherTenant)
    ));
    assert!(matches!(
        s.assign(request(
            "acme",
            &ids[0],
            AssignMode::MoveToAnother { target: None }
        ))
        .await,
        Err(AssignError::NotAssigned)
    ));
    let first = s
        .assign(request("acme", &ids[0], AssignMode::Sticky))
        .await
        .expect("assign");
    assert_eq!(first.kind, AssignKind::Created);
    assert_eq!(first.assignment.dps_instance, "a");
    assert_eq!(first.assignment.generation, 1);
    let again = s
        .assign(request("acme", &ids[0], AssignMode::Sticky))
        .await
        .expect("again");
    assert_eq!(again.kind, AssignKind::Existing);
    assert_eq!(again.assignment, first.assignment);
    let moved = s
        .assign(request(
            "acme",
            &ids[0],
            AssignMode::MoveToAnother {
                target: Some("b".into()),
            },
        ))
        .await
        .expect("move");
    assert_eq!(moved.kind, AssignKind::Moved { from: "a".into() });
    assert_eq!(moved.assignment.generation, 2);
    let counts: HashMap<String, u64> = s
        .list_instances()
        .await
        .expect("list")
        .into_iter()
        .map(|i| (i.name, i.registrations))
        .collect();
    assert_eq!((counts["a"], counts["b"]), (0, 1));
    let gone = s
        .deprovision("acme", &ids[0], NOW + 1)
        .await
        .expect("deprovision");
    assert_eq!(gone.status, AssignmentStatus::Deprovisioned);
    assert_eq!(gone.updated_at_ms, NOW + 1);
    let twice = s
        .deprovision("acme", &ids[0], NOW + 2)
        .await
        .expect("idempotent");
    assert_eq!(twice.updated_at_ms, NOW + 1);
    assert!(matches!(
        s.deprovision("acme", &ids[1], NOW).await,
        Err(AssignError::NotAssigned)
    ));
    assert_eq!(
        s.instance("b").await.expect("b").expect("b").registrations,
        0
    );
    let back = s
        .assign(request("acme", &ids[0], AssignMode::Sticky))
        .await
        .expect("back");
    assert_eq!(back.kind, AssignKind::Created);
    assert_eq!(back.assignment.generation, 3);
    match s.device("acme", &ids[0]).await.expect("lookup") {
        DeviceLookup::Owned {
            assignment: Some(a),
            ..
        } => assert_eq!(a, back.assignment),
        other => panic!("unexpected {other:?}"),
    }
}

async fn caps_and_rates_hold(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    s.add_instance(spec("tiny", 2, 1_000), NOW)
        .await
        .expect("add");
    s.add_instance(spec("slow", 100, 1), NOW)
        .await
        .expect("add");
    let ids = device_ids("caps", 6);
    list(s, "acme", &ids).await;
    let mut placed = Vec::new();
    for id in &ids[..3] {
        placed.push(
            s.assign(request("acme", id, AssignMode::Sticky))
                .await
                .expect("room")
                .assignment
                .dps_instance,
        );
    }
    placed.sort();
    assert_eq!(placed, ["slow", "tiny", "tiny"]);
    match s.assign(request("acme", &ids[3], AssignMode::Sticky)).await {
        Err(AssignError::Refused(AllocationRefusal::RateLimited { retry_after_ms })) => {
            assert!(retry_after_ms > 0)
        }
        other => panic!("expected the rate limit, got {other:?}"),
    }
    let mut later = request("acme", &ids[3], AssignMode::Sticky);
    later.now_ms = NOW + 120_000;
    assert_eq!(
        s.assign(later)
            .await
            .expect("window moved")
            .assignment
            .dps_instance,
        "slow"
    );
    s.set_instance_state("slow", InstanceState::Draining)
        .await
        .expect("drain");
    assert!(matches!(
        s.assign(request("acme", &ids[4], AssignMode::Sticky)).await,
        Err(AssignError::Refused(AllocationRefusal::CapacityExhausted))
    ));
    s.set_instance_state("tiny", InstanceState::Draining)
        .await
        .expect("drain");
    assert!(matches!(
        s.assign(request("acme", &ids[4], AssignMode::Sticky)).await,
        Err(AssignError::Refused(AllocationRefusal::NoEligibleInstance))
    ));
    assert!(matches!(
        s.remove_instance("tiny").await,
        Err(PoolError::NotEmpty { registrations: 2 })
    ));
}

/// 200 different devices race for 50 slots: exactly 50 win, the counter says 50.
async fn concurrent_race_for_the_last_slots(storage: Arc<dyn Storage>) {
    storage
        .add_instance(spec("one", 30, 100_000), NOW)
        .await
        .expect("add");
    storage
        .add_instance(spec("two", 20, 100_000), NOW)
        .await
        .expect("add");
    let ids = device_ids("race", 200);
    list(storage.as_ref(), "acme", &ids).await;
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let storage = storage.clone();
            let id = id.clone();
            tokio::spawn(async move {
                storage
                    .assign(request("acme", &id, AssignMode::Sticky))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(outcome) => {
                assert_eq!(outcome.kind, AssignKind::Created);
                won += 1;
            }
            Err(AssignError::Refused(AllocationRefusal::CapacityExhausted)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 50);
    let instances = storage.list_instances().await.expect("list");
    assert_eq!(
        instances
            .iter()
            .map(|i| i.registrations)
            .collect::<Vec<_>>(),
        [30, 20]
    );
}

/// The same device requested 100 times concurrently: one placement.
async fn concurrent_duplicates_one_placement(storage: Arc<dyn Storage>) {
    for name in ["p", "q", "r"] {
        storage
            .add_instance(spec(name, 1_000, 100_000), NOW)
            .await
            .expect("add");
    }
    let ids = device_ids("dup", 1);
    list(storage.as_ref(), "acme", &ids).await;
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let storage = storage.clone();
            let id = ids[0].clone();
            tokio::spawn(async move {
                storage
                    .assign(request("acme", &id, AssignMode::Sticky))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    let mut instances = std::collections::HashSet::new();
    for task in tasks {
        let outcome = task.await.expect("task").expect("assigned");
        created += usize::from(outcome.kind == AssignKind::Created);
        instances.insert(outcome.assignment.dps_instance);
    }
    assert_eq!(created, 1);
    assert_eq!(instances.len(), 1);
    let total: u64 = storage
        .list_instances()
        .await
        .expect("list")
        .iter()
        .map(|i| i.registrations)
        .sum();
    assert_eq!(total, 1);
}

async fn idempotency_claims(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    let claim = |key: &str, fingerprint: &str, now_ms: i64| IdempotencyClaim {
        tenant: "acme".into(),
        key: key.into(),
        fingerprint: fingerprint.into(),
        now_ms,
        stale_after_ms: 1_000,
        expires_at_ms: now_ms + 10_000,
    };
    assert_eq!(
        s.claim_idempotency_key(claim("k", "f", NOW))
            .await
            .expect("claim"),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        s.claim_idempotency_key(claim("k", "f", NOW + 1))
            .await
            .expect("claim"),
        ClaimOutcome::InProgress
    );
    assert_eq!(
        s.claim_idempotency_key(claim("k", "g", NOW + 1))
            .await
            .expect("claim"),
        ClaimOutcome::Mismatch
    );
    // The holder died: the claim is taken over after the stale period.
    assert_eq!(
        s.claim_idempotency_key(claim("k", "f", NOW + 1_001))
            .await
            .expect("claim"),
        ClaimOutcome::Claimed
    );
    s.complete_idempotency_key("acme", "k", "{\"ok\":1}")
        .await
        .expect("complete");
    assert_eq!(
        s.claim_idempotency_key(claim("k", "f", NOW + 2_000))
            .await
            .expect("claim"),
        ClaimOutcome::Completed {
            response: "{\"ok\":1}".into()
        }
    );
    // Release only drops pending claims.
    s.release_idempotency_key("acme", "k")
        .await
        .expect("release");
    assert!(matches!(
        s.claim_idempotency_key(claim("k", "f", NOW + 2_000))
            .await
            .expect("claim"),
        ClaimOutcome::Completed { .. }
    ));
    assert_eq!(
        s.claim_idempotency_key(claim("p", "f", NOW))
            .await
            .expect("claim"),
        ClaimOutcome::Claimed
    );
    s.release_idempotency_key("acme", "p")
        .await
        .expect("release");
    assert_eq!(
        s.claim_idempotency_key(claim("p", "f", NOW))
            .await
            .expect("claim"),
        ClaimOutcome::Claimed
    );
    // Expired records are forgotten and purged.
    assert_eq!(
        s.claim_idempotency_key(claim("k", "other", NOW + 20_000))
            .await
            .expect("claim"),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        s.purge_idempotency_keys(NOW + 100_000)
            .await
            .expect("purge"),
        2
    );
    // Keys are per tenant.
    let mut other = claim("k", "zzz", NOW + 100_001);
    other.tenant = "globex".into();
    assert_eq!(
        s.claim_idempotency_key(other).await.expect("claim"),
        ClaimOutcome::Claimed
    );
}

async fn ticket_keys_rotate(storage: Arc<dyn Storage>) {
    let s = storage.as_ref();
    assert!(s.ticket_keys().await.expect("keys").is_empty());
    let first = generate_key(NOW).expect("key");
    assert!(s.put_ticket_key(first.clone(), false).await.expect("put"));
    assert!(
        !s.put_ticket_key(generate_key(NOW).expect("key"), false)
            .await
            .expect("second current refused")
    );
    let second = generate_key(NOW + 1).expect("key");
    assert!(
        s.put_ticket_key(second.clone(), true)
            .await
            .expect("rotate")
    );
    let keys = s.ticket_keys().await.expect("keys");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].key_id, second.key_id);
    assert_eq!(keys[0].state, TicketKeyState::Current);
    assert_eq!(keys[1].state, TicketKeyState::Previous);
    assert_eq!(keys[1].public_key, first.public_key);
    assert_eq!(keys[1].private_pkcs8_pem, first.private_pkcs8_pem);
    assert!(
        !s.retire_ticket_key(&second.key_id)
            .await
            .expect("current stays")
    );
    assert!(s.retire_ticket_key(&first.key_id).await.expect("retire"));
    assert_eq!(s.ticket_keys().await.expect("keys").len(), 1);
}

/// The DPS service key every test instance carries (`instance_spec`), and its decoded text.
const SERVICE_KEY: &str = "c2VjcmV0LWtleQ==";
const SERVICE_KEY_TEXT: &str = "secret-key";

fn pem_body_lines(key: &StoredTicketKey) -> Vec<String> {
    key.private_pkcs8_pem
        .expose()
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .map(str::to_owned)
        .collect()
}

async fn raw_pem(store: &TestStorage, key_id: &str) -> String {
    store
        .raw_column(&format!(
            "SELECT private_pkcs8_pem FROM ticket_keys WHERE key_id = '{key_id}'"
        ))
        .await
        .into_iter()
        .next()
        .flatten()
        .expect("stored ticket key")
}

async fn raw_service_key(store: &TestStorage, name: &str) -> String {
    store
        .raw_column(&format!(
            "SELECT service_key FROM dps_instances WHERE name = '{name}'"
        ))
        .await
        .into_iter()
        .next()
        .flatten()
        .expect("stored service key")
}

fn assert_sealed(raw: &str, secrets: &SecretsKeyring, secret_parts: &[String]) {
    assert!(
        raw.starts_with(&format!("sealed:v1:{}:", secrets.current_id())),
        "not sealed with the current key: {raw}"
    );
    assert!(!raw.contains("PRIVATE KEY"), "PEM armour at rest: {raw}");
    for part in secret_parts {
        assert!(
            !raw.contains(part.as_str()),
            "secret {part:?} at rest in {raw}"
        );
    }
}

async fn service_key_of(storage: &dyn Storage, name: &str) -> Result<String, StorageError> {
    Ok(storage
        .instance(name)
        .await?
        .expect("instance")
        .service_credentials
        .expect("credentials")
        .key
        .expose()
        .to_owned())
}

/// Sealed at rest, readable through the store, and a mismatched KEK is a typed start-up error.
async fn secrets_are_sealed_at_rest(store: &TestStorage) {
    let s = store.storage.as_ref();
    s.add_instance(spec("a", 10, 100), NOW).await.expect("add");
    let key = generate_key(NOW).expect("key");
    assert!(s.put_ticket_key(key.clone(), false).await.expect("put"));

    let raw = raw_pem(store, &key.key_id).await;
    assert_sealed(&raw, &store.secrets, &pem_body_lines(&key));
    let raw_service = raw_service_key(store, "a").await;
    assert_sealed(
        &raw_service,
        &store.secrets,
        &[
            SERVICE_KEY.to_owned(),
            SERVICE_KEY[..12].to_owned(),
            SERVICE_KEY_TEXT.to_owned(),
        ],
    );

    let keys = s.ticket_keys().await.expect("keys");
    assert_eq!(keys[0].private_pkcs8_pem, key.private_pkcs8_pem);
    assert_eq!(service_key_of(s, "a").await.expect("opens"), SERVICE_KEY);
    assert_eq!(s.list_instances().await.expect("list").len(), 1);

    // Restarting with the same key changes nothing (the migration is idempotent).
    let again = store.reopen(store.secrets.clone()).await.expect("same key");
    assert_eq!(raw_pem(store, &key.key_id).await, raw);
    assert_eq!(raw_service_key(store, "a").await, raw_service);
    assert_eq!(
        service_key_of(again.as_ref(), "a").await.expect("opens"),
        SERVICE_KEY
    );

    // Another key is refused at start-up with a typed error naming both key ids.
    let wrong = fresh_secrets();
    let refused = store
        .reopen(wrong.clone())
        .await
        .err()
        .expect("wrong key refused");
    assert_eq!(refused.code(), "secrets_key_mismatch", "{refused}");
    assert!(matches!(refused, StorageError::SecretsKeyMismatch { .. }));
    let message = refused.to_string();
    assert!(message.contains(store.secrets.current_id()), "{message}");
    assert!(message.contains(wrong.current_id()), "{message}");
    // An ephemeral key is "another key" too.
    assert_eq!(
        store
            .reopen(SecretsKeyring::ephemeral())
            .await
            .err()
            .expect("ephemeral refused")
            .code(),
        "secrets_key_mismatch"
    );
    // Nothing was rewritten by the refused starts.
    assert_eq!(raw_pem(store, &key.key_id).await, raw);
}

/// A previous KEK opens, and start-up re-seals everything with the current one.
async fn secrets_key_rotation_reseals(store: &TestStorage) {
    let s = store.storage.as_ref();
    s.add_instance(spec("a", 10, 100), NOW).await.expect("add");
    let key = generate_key(NOW).expect("key");
    s.put_ticket_key(key.clone(), false).await.expect("put");

    let old = store.secrets.clone();
    let new_key = SecretsKey::generate();
    let rotating = SecretsKeyring::new(new_key.clone()).with_previous(store.secrets_key.clone());
    let rotated = store
        .reopen(rotating.clone())
        .await
        .expect("rotation start");
    let raw = raw_pem(store, &key.key_id).await;
    assert_sealed(&raw, &rotating, &pem_body_lines(&key));
    assert_sealed(
        &raw_service_key(store, "a").await,
        &rotating,
        &[SERVICE_KEY.to_owned()],
    );
    assert_eq!(
        rotated.ticket_keys().await.expect("keys")[0].private_pkcs8_pem,
        key.private_pkcs8_pem
    );
    assert_eq!(
        service_key_of(rotated.as_ref(), "a").await.expect("opens"),
        SERVICE_KEY
    );
    // The new key alone now suffices; the old one alone no longer does.
    let after = store
        .reopen(SecretsKeyring::new(new_key))
        .await
        .expect("new key alone");
    assert_eq!(
        service_key_of(after.as_ref(), "a").await.expect("opens"),
        SERVICE_KEY
    );
    assert_eq!(
        store.reopen(old).await.err().expect("old key alone").code(),
        "secrets_key_mismatch"
    );
}

/// Rows written in plaintext before sealing existed are sealed at the next start.
async fn plaintext_legacy_rows_are_migrated(store: &TestStorage) {
    let s = store.storage.as_ref();
    s.add_instance(spec("a", 10, 100), NOW).await.expect("add");
    let key = generate_key(NOW + 5).expect("key");
    let pem = key.private_pkcs8_pem.expose().to_owned();
    store
        .raw_execute(&format!(
            "INSERT INTO ticket_keys (key_id, private_pkcs8_pem, public_key, state, \
             created_at_ms) VALUES ('{}', '{pem}', '{}', 'current', {}); \
             UPDATE dps_instances SET service_key = '{SERVICE_KEY}' WHERE name = 'a';",
            key.key_id,
            hex::encode(key.public_key),
            NOW + 5
        ))
        .await;
    // Until the migration runs, plaintext is refused rather than trusted.
    assert_eq!(
        s.ticket_keys().await.expect_err("plaintext refused").code(),
        "secret_not_sealed"
    );
    // An ephemeral key never seals legacy plaintext (it would be lost at exit).
    assert_eq!(
        store
            .reopen(SecretsKeyring::ephemeral())
            .await
            .err()
            .expect("ephemeral refused")
            .code(),
        "secrets_key_required"
    );
    let migrated = store.reopen(store.secrets.clone()).await.expect("migrates");
    let raw = raw_pem(store, &key.key_id).await;
    assert_sealed(&raw, &store.secrets, &pem_body_lines(&key));
    let raw_service = raw_service_key(store, "a").await;
    assert_sealed(&raw_service, &store.secrets, &[SERVICE_KEY.to_owned()]);
    assert_eq!(
        migrated.ticket_keys().await.expect("keys")[0]
            .private_pkcs8_pem
            .expose(),
        pem
    );
    assert_eq!(service_key_of(s, "a").await.expect("opens"), SERVICE_KEY);
    // Idempotent: a second start leaves the sealed values as they are.
    store.reopen(store.secrets.clone()).await.expect("again");
    assert_eq!(raw_pem(store, &key.key_id).await, raw);
    assert_eq!(raw_service_key(store, "a").await, raw_service);
}

/// A sealed value copied into another row does not open there.
async fn sealed_values_are_bound_to_their_row(store: &TestStorage) {
    let s = store.storage.as_ref();
    s.add_instance(spec("a", 10, 100), NOW)
        .await
        .expect("add a");
    s.add_instance(spec("b", 10, 100), NOW)
        .await
        .expect("add b");
    let first = generate_key(NOW).expect("key");
    let second = generate_key(NOW + 1).expect("key");
    s.put_ticket_key(first.clone(), false).await.expect("put");
    s.put_ticket_key(second.clone(), true)
        .await
        .expect("rotate");
    assert_eq!(s.ticket_keys().await.expect("keys").len(), 2);

    store
        .raw_execute(
            "UPDATE dps_instances SET service_key = \
             (SELECT service_key FROM dps_instances WHERE name = 'a') WHERE name = 'b'",
        )
        .await;
    let moved = service_key_of(s, "b").await.expect_err("moved key refused");
    assert_eq!(moved.code(), "sealed_secret_invalid", "{moved}");
    assert!(moved.to_string().contains("\"b\""), "{moved}");
    assert_eq!(
        service_key_of(s, "a").await.expect("a still opens"),
        SERVICE_KEY
    );

    store
        .raw_execute(&format!(
            "UPDATE ticket_keys SET private_pkcs8_pem = \
             (SELECT private_pkcs8_pem FROM ticket_keys WHERE key_id = '{}') \
             WHERE key_id = '{}'",
            first.key_id, second.key_id
        ))
        .await;
    let error = s.ticket_keys().await.expect_err("moved ticket key refused");
    assert!(
        matches!(error, StorageError::SealedSecretInvalid { .. }),
        "{error}"
    );
    // And a restart refuses the database instead of signing with a swapped key.
    assert_eq!(
        store
            .reopen(store.secrets.clone())
            .await
            .err()
            .expect("refused at start")
            .code(),
        "sealed_secret_invalid"
    );
}

macro_rules! secrets_at_rest {
    ($($check:ident),* $(,)?) => {
        mod sealing_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let store = super::TestStorage::open(super::Backend::Sqlite).await.expect("sqlite");
                    super::$check(&store).await;
                    store.cleanup().await;
                }
            )*
        }
        mod sealing_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    if let Some(store) = super::TestStorage::open(super::Backend::Postgres).await {
                        super::$check(&store).await;
                        store.cleanup().await;
                    }
                }
            )*
        }
    };
}

secrets_at_rest!(
    secrets_are_sealed_at_rest,
    secrets_key_rotation_reseals,
    plaintext_legacy_rows_are_migrated,
    sealed_values_are_bound_to_their_row,
);

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let store = super::TestStorage::open(super::Backend::Sqlite).await.expect("sqlite");
                    super::$check(store.storage.clone()).await;
                    store.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    if let Some(store) = super::TestStorage::open(super::Backend::Postgres).await {
                        super::$check(store.storage.clone()).await;
                        store.cleanup().await;
                    }
                }
            )*
        }
    };
}

conformance!(
    pool_lifecycle,
    allowlist_ownership,
    assignment_lifecycle,
    caps_and_rates_hold,
    concurrent_race_for_the_last_slots,
    concurrent_duplicates_one_placement,
    idempotency_claims,
    ticket_keys_rotate,
);
