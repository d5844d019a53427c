//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "ferry", description = "ferry's HTTP API: tasks, routes and webhooks (v1). Every call needs an API token (Authorization: Bearer ferry_…; create one with `ferry tokens create`) or a signed-in session, except /healthz, this document, and webhooks with a secret. Viewers read; operators also skip, retry, run and feed webhooks; admins also manage users and tokens and reset since marks (POST /api/v1/incoming/{id}/reset-since). A missing or bad credential is 401, a role that may not act 403."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(
        crate::tasks::list,
        crate::tasks::counts,
        crate::tasks::detail,
        crate::tasks::messages,
        crate::tasks::history,
        crate::tasks::skip_one,
        crate::tasks::retry_one,
        crate::tasks::bulk_skip,
        crate::tasks::bulk_retry,
        crate::jobs::start,
        crate::jobs::list,
        crate::jobs::one,
        crate::jobs::cancel,
        crate::jobs::resume,
        crate::audit::list,
        crate::access::list_users,
        crate::access::add_user,
        crate::access::change_user,
        crate::access::list_tokens,
        crate::access::create_token,
        crate::access::revoke_token,
        crate::routes::list,
        crate::routes::one,
        crate::routes::run,
        crate::routes::try_route,
        crate::routes::run_incoming,
        crate::routes::reset_since,
        crate::routes::retention,
        crate::connections::list,
        crate::connections::test,
        crate::webhooks::receive,
        crate::health,
    ),
    tags(
        (name = "tasks", description = "Find, inspect, skip and retry tasks"),
        (name = "routes", description = "Routes and their runs"),
        (name = "webhooks", description = "Entities pushed in"),
        (name = "audit", description = "Who did what, when and from where"),
        (name = "access", description = "Users and API tokens (admin role)"),
        (name = "service", description = "Liveness and this document"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme every operation uses.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    /// Declares the scheme, and the 401 and 403 answers on every operation that needs
    /// a credential (all but liveness).
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ];
            for operation in operations.into_iter().flatten() {
                if path == "/healthz" {
                    operation.security = Some(Vec::new());
                    continue;
                }
                let responses = &mut operation.responses.responses;
                for (code, text) in [
                    (
                        "401",
                        "no credential, or an unknown, revoked or expired one",
                    ),
                    ("403", "the caller's role may not do this"),
                ] {
                    responses
                        .entry(code.to_owned())
                        .or_insert_with(|| error(text).into());
                }
            }
        }
    }
}
