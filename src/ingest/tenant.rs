//! vminsert's tenant paths: `POST /insert/<accountID>[:<projectID>]/prometheus/api/v1/write`
//! (also `.../api/v1/push`, `.../prometheus` and `.../prometheus/`, as vmagent accepts them) and
//! `.../prometheus/api/v1/import/prometheus`. The same handlers as the plain paths, with the
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

use super::{IngestState, import, refuse, remote_write};
use crate::forward::Tenant;
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
}

async fn remote_write(
    State(st): State<Arc<IngestState>>,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match parse(&st, tenant) {
        Ok(t) => remote_write::remote_write_of(&st, Some(t), &headers, body).await,
        Err(refused) => refused,
    }
}

async fn import_text(
    State(st): State<Arc<IngestState>>,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match parse(&st, tenant) {
        Ok(t) => import::import_text_of(&st, Some(t), &headers, body).await,
        Err(refused) => refused,
    }
}

/// The path's tenant, or the 400 that refuses it (counted as `bad_tenant`).
fn parse(
    st: &IngestState,
    tenant: Result<Path<String>, PathRejection>,
) -> Result<Tenant, Response> {
    let bad = |why: &dyn std::fmt::Display| refuse(&st.metrics, Reject::BadTenant, why);
    let Path(text) = tenant.map_err(|e| bad(&format_args!("tenant in the path: {e}")))?;
    if text == "multitenant" {
        // vmagent's label-based tenants (vm_account_id, vm_project_id) are not supported.
        return Err(bad(
            &"tenant \"multitenant\" is not supported: push to /insert/<accountID>[:<projectID>]/...",
        ));
    }
    text.parse::<Tenant>().map_err(|e| bad(&e))
}
