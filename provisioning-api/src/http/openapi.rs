//! The OpenAPI 3 document, generated from the handlers' annotations.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{allowlist, assignments, devices, dto, ops, pool};
use crate::{
    error::ErrorBody,
    model::{NewDpsInstance, ServiceCredentials},
};

/// Adds the bearer-JWT security scheme.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT from a trusted issuer: signature checked against the issuer's \
                         JWKS; iss, aud and exp checked; tenant and role claims required.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "fieldlink provisioning API",
        description = "Assigns devices to Azure DPS instances and signs commissioning tickets.",
        version = "1.0.0",
        license(name = "Apache-2.0")
    ),
    paths(
        assignments::create,
        devices::get_device,
        devices::deprovision,
        devices::reprovision,
        devices::registration,
        allowlist::import,
        allowlist::list,
        allowlist::remove,
        pool::list,
        pool::add,
        pool::get_instance,
        pool::drain,
        pool::activate,
        pool::remove,
        pool::rotate_ticket_key,
        pool::retire_ticket_key,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi,
        ops::ticket_keys,
    ),
    components(schemas(
        ErrorBody,
        NewDpsInstance,
        ServiceCredentials,
        dto::AssignmentRequest,
        dto::AssignmentResponse,
        dto::AssignmentOutcome,
        dto::ReprovisionRequest,
        dto::AssignmentView,
        dto::DeviceView,
        dto::RegistrationStatusView,
        dto::InstanceView,
        dto::InstanceList,
        dto::ImportReport,
        dto::AllowlistItem,
        dto::AllowlistPage,
        dto::TicketKeyView,
        dto::TicketKeySet,
        dto::HealthView,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "assignments", description = "Device placement and tickets"),
        (name = "devices", description = "Device lifecycle and DPS registration status"),
        (name = "allowlist", description = "Per-tenant device allowlists"),
        (name = "pool", description = "DPS pool administration"),
        (name = "ticket-keys", description = "Ticket signing keys"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;
