//! The console's static files, built into the binary: no CDN, no front-end build. htmx
//! (`server/assets/htmx.min.js`, 0BSD, from the npm package `htmx.org`; its version and
//! checksum are in `server/assets/README.md`) makes links and forms swap pages in place; the
//! pages work without it.

use std::io::Write;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/htmx.min.js"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/console.css"),
    ),
];

/// The files gzipped, made on first use (htmx: 52 KB → 17 KB).
fn gzipped(index: usize) -> &'static [u8] {
    static ZIPPED: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let all = ZIPPED.get_or_init(|| {
        FILES
            .iter()
            .map(|(_, _, body)| {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                // Writing into a Vec cannot fail.
                let _ = encoder.write_all(body);
                encoder.finish().unwrap_or_default()
            })
            .collect()
    });
    &all[index]
}

pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(index) = FILES.iter().position(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    let (_, kind, body) = FILES[index];
    let takes_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let zipped = if takes_gzip { gzipped(index) } else { &[] };
    let common = [
        (header::CONTENT_TYPE, kind),
        (header::CACHE_CONTROL, "public, max-age=3600"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::VARY, "Accept-Encoding"),
    ];
    if zipped.is_empty() {
        (common, body).into_response()
    } else {
        (common, [(header::CONTENT_ENCODING, "gzip")], zipped).into_response()
    }
}
