//! vminsert's tenant paths: `POST /insert/<accountID>[:<projectID>]/prometheus/api/v1/write`
//! (also `.../api/v1/push`, `.../prometheus` and `.../prometheus/`, as vmagent accepts them),
//! `.../prometheus/api/v1/import/prometheus`, and OTLP at `.../opentelemetry/v1/metrics` and
//! `.../opentelemetry/api/v1/push`. The same handlers as the plain paths, with the
//! tenant parsed from the path as VictoriaMetrics parses it ([`Tenant`]'s `FromStr`); a tenant
//! it refuses gets 400 with the reason, before the body is looked at.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;

use super::{IngestState, import, otlp, refuse, remote_write};
use crate::forward::{Tenant, TenantError};
use crate::stats::Reject;

/// The tenant routes, to merge into the ingest router.
pub(super) fn routes() -> Router<Arc<IngestState>> {
    Router::new()
        .route("/insert/{tenant}/prometheus", post(remote_write))
        .route("/insert/{tenant}/prometheus/", post(remote_write))
        .route(
            "/insert/{tenant}/prometheus/api/v1/write",
            post(remote_write),
        )
        .route(
            "/insert/{tenant}/prometheus/api/v1/push",
            post(remote_write),
        )
        .route(
            "/insert/{tenant}/prometheus/api/v1/import/prometheus",
            post(import_text),
        )
        .route(
            "/insert/{tenant}/opentelemetry/v1/metrics",
            post(otlp_metrics),
        )
        .route(
            "/insert/{tenant}/opentelemetry/api/v1/push",
            post(otlp_metrics),
        )
}

async fn remote_write(
    State(st): State<Arc<IngestState>>,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match parse(tenant) {
        Ok(t) => remote_write::remote_write_of(&st, Some(t), &headers, body).await,
        Err(e) => refuse(&st.metrics, Reject::BadTenant, e),
    }
}

async fn import_text(
    State(st): State<Arc<IngestState>>,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match parse(tenant) {
        Ok(t) => import::import_text_of(&st, Some(t), &headers, body).await,
        Err(e) => refuse(&st.metrics, Reject::BadTenant, e),
    }
}

async fn otlp_metrics(
    State(st): State<Arc<IngestState>>,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match parse(tenant) {
        Ok(t) => otlp::otlp_metrics_of(&st, Some(t), &headers, body).await,
        Err(e) => otlp::refused(&headers, refuse(&st.metrics, Reject::BadTenant, e)).await,
    }
}

/// Why the tenant in a path was refused (400, counted as `bad_tenant`).
#[derive(Debug, thiserror::Error)]
enum BadTenant {
    /// The path segment could not be read (not UTF-8 once percent-decoded).
    #[error("tenant in the path: {0}")]
    Path(String),
    /// `multitenant`: vmagent reads the tenant from `vm_account_id`/`vm_project_id` labels then;
    /// promrelay does not.
    #[error(
        "tenant \"multitenant\" (tenants from labels) is not supported: push to /insert/<accountID>[:<projectID>]/..."
    )]
    FromLabels,
    /// Not `accountID[:projectID]` as VictoriaMetrics reads it.
    #[error(transparent)]
    Id(#[from] TenantError),
}

/// The path's tenant.
fn parse(tenant: Result<Path<String>, PathRejection>) -> Result<Tenant, BadTenant> {
    let Path(text) = tenant.map_err(|e| BadTenant::Path(e.body_text()))?;
    if text == "multitenant" {
        return Err(BadTenant::FromLabels);
    }
    Ok(text.parse::<Tenant>()?)
}
