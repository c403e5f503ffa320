//! The patient web app: `GET /join/{code}` returns its page, `/assets/{file}` its scripts and
//! styles (built by `npm run build` in `ui/` into `server.ui_dir`), and `/content/{file}`
//! the clinic's own waiting-room videos and captions (next to `server.clinic_content`).
//!
//! The page itself knows nothing about the link: the app asks `/api/v1/join/{code}` and
//! shows the friendly page for an unknown, expired or cancelled link. HTML is never cached;
//! hashed assets are cached for a year.

use std::path::{Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::extract::Path;
use crate::AppState;
use crate::clinic_content::is_plain_file_name;
use crate::error::ApiError;

/// The patient app's page inside `ui_dir`.
pub const PATIENT_PAGE: &str = "patient.html";

/// The page a patient's or guest's link opens.
#[utoipa::path(get, path = "/join/{code}", tag = "patient pages", params(("code" = String, Path)),
    responses((status = 200, content_type = "text/html", body = String), (status = 503, content_type = "text/html", body = String)))]
pub async fn join_page(State(state): State<AppState>, Path(_code): Path<String>) -> Response {
    let path = ui_dir(&state).join(PATIENT_PAGE);
    match tokio::fs::read(&path).await {
        Ok(html) => {
            let mut response = (StatusCode::OK, Html(html)).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "the patient web app is not built");
            not_built()
        }
    }
}

/// A script, style sheet, font or image of the patient app.
#[utoipa::path(get, path = "/assets/{file}", tag = "patient pages", params(("file" = String, Path)),
    responses((status = 200, description = "The file"), (status = 404, body = rounds_proto::Problem)))]
pub async fn asset(
    State(state): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let dir = ui_dir(&state).join("assets");
    // Vite names every built file after its content, so a name never changes meaning.
    serve_file(&dir, &file, "public, max-age=31536000, immutable", &headers).await
}

/// A clinic's waiting-room video or captions file.
#[utoipa::path(get, path = "/content/{file}", tag = "patient pages", params(("file" = String, Path)),
    responses((status = 200, description = "The file"), (status = 206, description = "Part of the file"), (status = 404, body = rounds_proto::Problem)))]
pub async fn content_file(
    State(state): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(content) =
        crate::clinic_content::configured(state.config.server.clinic_content.as_deref())
    else {
        return missing();
    };
    serve_file(&content.media_dir, &file, "public, max-age=3600", &headers).await
}

/// The configured folder; left at its default and missing from the current directory (a
/// `cargo run` from elsewhere), the source tree this binary was built from is tried too.
fn ui_dir(state: &AppState) -> PathBuf {
    let configured = &state.config.server.ui_dir;
    if configured == FsPath::new(DEFAULT_UI_DIR) && !configured.exists() {
        let built_from = FsPath::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(DEFAULT_UI_DIR);
        if built_from.exists() {
            return built_from;
        }
    }
    configured.clone()
}

const DEFAULT_UI_DIR: &str = "ui/dist";

fn missing() -> Response {
    ApiError::not_found("no-such-file", "There is no such file. Reload the page.").into_response()
}

/// What a patient sees when the server was started without the built web app.
fn not_built() -> Response {
    let html = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
        <title>Video visit: not available right now</title>\
        <style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1d2b2a;font-size:1.125rem}</style>\
        </head><body><main><h1>Your video visit page is not available right now</h1>\
        <p>This is a problem on the clinic's side, not with your phone or computer.</p>\
        <p>Please call your clinic. They can help you join, or see you another way.</p>\
        <hr><p lang=\"es\"><strong>La página de su consulta por video no está disponible ahora.</strong> \
        El problema es de la clínica, no de su teléfono ni de su computadora. Por favor, llame a su clínica.</p>\
        </main></body></html>";
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Html(html)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    response
}

/// The content type of a file the patient pages use, by its extension.
pub fn content_type(name: &str) -> &'static str {
    match name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .as_deref()
    {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("ogg" | "oga") => "audio/ogg",
        Some("webm") => "video/webm",
        Some("mp4" | "m4v") => "video/mp4",
        Some("vtt") => "text/vtt; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Serves one file of `dir` (no sub-folders), with single byte ranges for video seeking.
async fn serve_file(
    dir: &FsPath,
    name: &str,
    cache: &'static str,
    headers: &HeaderMap,
) -> Response {
    if !is_plain_file_name(name) {
        return missing();
    }
    let path = dir.join(name);
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return missing();
    };
    let total = bytes.len() as u64;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, total));
    let (status, body, content_range) = match range {
        None | Some(Range::Ignore) => (StatusCode::OK, bytes, None),
        Some(Range::Unsatisfiable) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return response;
        }
        Some(Range::Bytes(start, end)) => (
            StatusCode::PARTIAL_CONTENT,
            bytes[start as usize..=end as usize].to_vec(),
            Some(format!("bytes {start}-{end}/{total}")),
        ),
    };
    let mut response = (status, Body::from(body)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(v) = content_range.and_then(|r| HeaderValue::from_str(&r).ok()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    response
}

#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// Not a single byte range we understand: send the whole file.
    Ignore,
    Unsatisfiable,
    /// Inclusive.
    Bytes(u64, u64),
}

fn parse_range(header: &str, total: u64) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Range::Ignore;
    };
    if spec.contains(',') {
        return Range::Ignore;
    }
    let Some((start, end)) = spec.split_once('-') else {
        return Range::Ignore;
    };
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => match suffix.parse::<u64>() {
            Ok(0) => return Range::Unsatisfiable,
            Ok(n) => (total.saturating_sub(n), total.saturating_sub(1)),
            Err(_) => return Range::Ignore,
        },
        (s, "") => match s.parse::<u64>() {
            Ok(s) => (s, total.saturating_sub(1)),
            Err(_) => return Range::Ignore,
        },
        (s, e) => match (s.parse::<u64>(), e.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => (s, e.min(total.saturating_sub(1))),
            _ => return Range::Ignore,
        },
    };
    if total == 0 || start >= total {
        Range::Unsatisfiable
    } else {
        Range::Bytes(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Range::Bytes(0, 99));
        assert_eq!(parse_range("bytes=900-", 1000), Range::Bytes(900, 999));
        assert_eq!(parse_range("bytes=-100", 1000), Range::Bytes(900, 999));
        assert_eq!(parse_range("bytes=990-2000", 1000), Range::Bytes(990, 999));
        assert_eq!(parse_range("bytes=1000-", 1000), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Range::Ignore);
        assert_eq!(parse_range("items=0-1", 1000), Range::Ignore);
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type("index-3f2a.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("a.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type("talk.webm"), "video/webm");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
