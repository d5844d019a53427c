//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "ferry", description = "ferry's HTTP API: tasks, routes and webhooks (v1)."),
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
        crate::audit::list,
        crate::routes::list,
        crate::routes::one,
        crate::routes::run,
        crate::routes::run_incoming,
        crate::routes::retention,
        crate::webhooks::receive,
        crate::health,
    ),
    tags(
        (name = "tasks", description = "Find, inspect, skip and retry tasks"),
        (name = "routes", description = "Routes and their runs"),
        (name = "webhooks", description = "Entities pushed in"),
        (name = "service", description = "Liveness and this document"),
    )
)]
pub struct ApiDoc;
