//! The HTTP edge: routes, OpenAPI, and the middleware every request passes through
//! (request ids, tracing without PHI, security headers, body and time limits, metrics, and
//! turning every error into `application/problem+json`).

mod api;
mod ehr;
pub mod extract;
mod oidc;
mod ops;
mod pages;
mod patient_api;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use rounds_proto::Problem;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{PROBLEM_JSON, problem_response};

#[derive(OpenApi)]
#[openapi(
    info(title = "Rounds API", description = "The Rounds companion server: clinician sessions, visits, the waiting room, invitations and tokens. Every error is application/problem+json."),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api::login))
        .routes(routes!(api::refresh))
        .routes(routes!(api::logout))
        .routes(routes!(oidc::sign_in_info))
        .routes(routes!(oidc::sign_in))
        .routes(routes!(api::issue_ticket))
        .routes(routes!(api::redeem_ticket))
        .routes(routes!(api::events))
        .routes(routes!(api::queue, api::create_visit))
        .routes(routes!(api::get_visit))
        .routes(routes!(api::provider_token))
        .routes(routes!(api::admit))
        .routes(routes!(api::deny))
        .routes(routes!(api::remove))
        .routes(routes!(api::end))
        .routes(routes!(api::running_late))
        .routes(routes!(api::reissue_link, api::revoke_link))
        .routes(routes!(api::invite))
        .routes(routes!(api::join_info, api::join))
        .routes(routes!(api::guest_token))
        .routes(routes!(api::me))
        .routes(routes!(api::leave))
        .routes(routes!(api::participants))
        .routes(routes!(api::device_check))
        .routes(routes!(api::chat_log, api::chat_post))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::jwks))
        .routes(routes!(ops::connectivity))
        .routes(routes!(pages::join_page))
        .routes(routes!(pages::asset))
        .routes(routes!(pages::content_file))
        .routes(routes!(patient_api::content))
        .routes(routes!(patient_api::network_test))
        .routes(routes!(patient_api::network_test_download))
        .routes(routes!(patient_api::network_test_upload))
        .routes(routes!(patient_api::check_in))
        .routes(routes!(patient_api::wait))
        .routes(routes!(patient_api::survey))
        .routes(routes!(patient_api::visit_check_in))
        .routes(routes!(ehr::options))
        .routes(routes!(ehr::launch))
        .routes(routes!(ehr::standalone))
        .routes(routes!(ehr::callback))
        .routes(routes!(ops::openapi))
        .routes(routes!(crate::signaling::rtc))
}

/// The OpenAPI document of every route.
pub fn api_doc() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| router().split_for_parts().1)
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application, ready to serve (tests call it without a socket too).
pub fn app(state: AppState) -> Router {
    let _ = crate::metrics::handle();
    let max_body = state.config.limits.max_body_bytes;
    let timeout = Duration::from_secs(u64::from(state.config.limits.request_timeout_secs));
    let hsts = state.config.public_url().starts_with("https://");
    let (router, _) = router().split_for_parts();
    router
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(middleware::from_fn(record_metrics))
        .layer(middleware::from_fn(move |req, next| security_headers(req, next, hsts)))
        .layer(middleware::from_fn_with_state(max_body, problems))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // The matched route, never the raw URI: join codes and ids of people stay out.
                    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
                    let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("http", method = %req.method(), route = %route, request_id = %id)
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), ms = latency.as_millis() as u64, "request");
                })
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
}

async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::not_found(
        "no-such-route",
        "There is nothing at this address. Check the link or the API path.",
    )
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("rounds_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("rounds_http_request_duration_seconds", "method" => method, "route" => route).record(start.elapsed().as_secs_f64());
    response
}

async fn security_headers(req: Request, next: Next, hsts: bool) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
    );
    set(
        h,
        HeaderName::from_static("permissions-policy"),
        "camera=(self), microphone=(self), display-capture=(self), geolocation=()",
    );
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(h, header::CACHE_CONTROL, "no-store");
    if hsts {
        set(
            h,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    response
}

/// Every error response leaves as a problem document carrying the request id.
async fn problems(State(max_body): State<usize>, req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // Pages written for people (the patient pages' "not available" page) stay pages.
    if response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"))
    {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let (parts, body) = response.into_parts();
    let mut problem = if is_problem {
        match axum::body::to_bytes(body, 64 * 1024)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<Problem>(&b).ok())
        {
            Some(p) => p,
            None => generic(status, max_body),
        }
    } else {
        generic(status, max_body)
    };
    problem.request_id = request_id;
    let mut rebuilt = problem_response(&problem);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt
                .headers_mut()
                .entry(name.clone())
                .or_insert(value.clone());
        }
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The body was refused unread, so this connection cannot carry another request; say
        // so, or the client reuses it and its next request fails with a broken pipe.
        rebuilt
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    rebuilt
}

fn generic(status: StatusCode, max_body: usize) -> Problem {
    let (slug, detail) = match status {
        StatusCode::NOT_FOUND => ("no-such-route", "There is nothing at this address. Check the link or the API path.".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "This address does not accept that kind of request.".to_owned()),
        StatusCode::PAYLOAD_TOO_LARGE => ("body-too-large", format!("The request body is too large; the limit is {max_body} bytes.")),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "The request took too long and was stopped. Try again.".to_owned()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("json-required", "Send the request body as JSON, with the header Content-Type: application/json.".to_owned()),
        s if s.is_server_error() => ("internal", "Something went wrong on the server. Try again; if it keeps happening, contact your clinic's IT team and quote the request id.".to_owned()),
        _ => ("bad-request", "The server could not accept this request.".to_owned()),
    };
    Problem {
        kind: format!("https://rounds.health/problems/{slug}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        request_id: None,
        retry_after: None,
    }
}
