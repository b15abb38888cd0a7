//! The body of `POST /api/classify`: a multipart form whose `file` field holds the film, whose
//! optional `input` field says how to read it and whose optional `case_code` field carries the
//! study's code for the film. Its own file so that the parser the server runs
//! can be driven without a server: [`parse_upload`] builds the same axum extractor from a body
//! and its content type and reads it with the same [`read_upload`] as the handler (the fuzz
//! target `upload` and `tests/fuzz_corpus.rs` use it).

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{header, StatusCode};

use crate::analysis::InputMode;

/// What an upload carries to the model.
#[derive(Debug)]
pub struct Upload {
    /// The `file` field's bytes; never empty.
    pub bytes: Vec<u8>,
    /// The `input` field (digital, film-photo or auto; auto when absent or empty).
    pub mode: InputMode,
    /// The `case_code` field as sent (checked against the unit's rule by the handler).
    pub case_code: Option<String>,
}

/// Why an upload was refused: the HTTP status and the message the client is shown.
#[derive(Debug)]
pub struct UploadRefused {
    /// The status answered (400 for a malformed form, 413 for a body over the limit, ...).
    pub status: StatusCode,
    /// What was wrong with the upload, in words.
    pub message: String,
}

fn refused(status: StatusCode, message: impl Into<String>) -> UploadRefused {
    UploadRefused {
        status,
        message: message.into(),
    }
}

/// Parse a whole request body as the server does: `content_type` is the request's
/// `Content-Type` header (which names the multipart boundary). No router layer applies here, so
/// the body limit is axum's default (2 MB) rather than the server's `max_upload_mb`.
pub async fn parse_upload(content_type: &str, body: Vec<u8>) -> Result<Upload, UploadRefused> {
    let req = Request::builder()
        .method("POST")
        .uri("/api/classify")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .map_err(|e| refused(StatusCode::BAD_REQUEST, format!("bad request: {e}")))?;
    let form = Multipart::from_request(req, &())
        .await
        .map_err(|r| refused(r.status(), r.body_text()))?;
    read_upload(form).await
}

/// The upload: the `file` field's bytes and the `input` mode. Unknown fields are read and
/// dropped; they never reach the model.
pub async fn read_upload(mut form: Multipart) -> Result<Upload, UploadRefused> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        refused(e.status(), format!("bad upload: {}", e.body_text()))
    };
    let mut file = None;
    let mut mode = InputMode::Auto;
    let mut case_code = None;
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("file") => file = Some(field.bytes().await.map_err(bad)?.to_vec()),
            Some("input") => {
                let text = field.text().await.map_err(bad)?;
                mode = match text.trim() {
                    "digital" => InputMode::Digital,
                    "film-photo" => InputMode::FilmPhoto,
                    "auto" | "" => InputMode::Auto,
                    other => {
                        return Err(refused(
                            StatusCode::BAD_REQUEST,
                            format!("input '{other}' is not digital, film-photo or auto"),
                        ))
                    }
                };
            }
            Some("case_code") => {
                let bytes = field.bytes().await.map_err(bad)?;
                // Longer than any code: refused by the rule, without keeping it all.
                let keep = &bytes[..bytes.len().min(crate::case::MAX_LEN + 1)];
                case_code = Some(String::from_utf8_lossy(keep).into_owned());
            }
            _ => {
                let _ = field.bytes().await;
            }
        }
    }
    match file {
        Some(bytes) if !bytes.is_empty() => Ok(Upload {
            bytes,
            mode,
            case_code,
        }),
        Some(_) => Err(refused(
            StatusCode::BAD_REQUEST,
            "the uploaded file is empty",
        )),
        None => Err(refused(
            StatusCode::BAD_REQUEST,
            "no file: send it as the multipart field 'file'",
        )),
    }
}
