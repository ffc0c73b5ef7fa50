//! The gateway's HTTP/1.1 client side: one request to a cluster and its response, written and
//! read by the task that serves the client connection.
//!
//! Why not hyper's client: its connection runs as a task of its own, joined to the caller by a
//! dispatch channel, a oneshot and a body channel, so every proxied request woke two tasks and
//! went through three channels; with the allocations that come with them that was the largest
//! user-space cost per request in a profile, and what kept the gateway below nginx, which
//! proxies in one event handler. Here the exchange runs inside the client's own task. Parsing
//! is httparse's (hyper's parser); framing follows RFC 9112 §6.

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Headers in one response head, at most (as hyper's client).
const MAX_HEADERS: usize = 100;
/// The largest response head accepted from a cluster.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Read size for bodies: large bodies stream through in pieces of at most this.
const READ_CHUNK: usize = 64 * 1024;
/// The longest chunk-size or trailer line accepted.
const MAX_LINE_BYTES: usize = 4096;

/// A connection to a cluster, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(tcp) => tcp.is_write_vectored(),
            Stream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why an exchange with a cluster failed.
#[derive(Debug)]
pub enum ExchangeError {
    /// The connection failed before any byte of a response arrived: on a reused connection
    /// that is usually the cluster having closed it while idle.
    Unanswered(io::Error),
    /// No response head within the response timeout.
    TimedOut,
    /// Anything later: a broken or malformed response.
    Failed(String),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Unanswered(err) => write!(f, "no response: {err}"),
            ExchangeError::TimedOut => f.write_str("no response within the response timeout"),
            ExchangeError::Failed(msg) => f.write_str(msg),
        }
    }
}

/// One connection to a cluster and the bytes read from it that nobody took yet.
pub struct Conn {
    /// The cluster's address and whether the connection is TLS: its pool key.
    pub key: (SocketAddr, bool),
    stream: Stream,
    buf: BytesMut,
    /// Room for the next request head, kept to reuse its allocation.
    wbuf: BytesMut,
    /// When the response head of the current request is due.
    deadline: Instant,
    /// Fires at or before `deadline`. Made once per connection and moved only when it
    /// fires, so a request costs no timer registration (see [`Conn::poll_deadline`]).
    timer: Option<Pin<Box<Sleep>>>,
}

impl Conn {
    /// Boxed: a connection moves through the pool, the exchange and the response body on
    /// every request, and a pointer is cheaper to move than the connection's ~200 bytes.
    pub fn new(key: (SocketAddr, bool), stream: Stream) -> Box<Conn> {
        Box::new(Conn {
            key,
            stream,
            buf: BytesMut::new(),
            wbuf: BytesMut::new(),
            deadline: Instant::now(),
            timer: None,
        })
    }

    /// The buffer the last request head was written from, emptied, to write the next one.
    pub fn take_head_buffer(&mut self) -> BytesMut {
        let mut buf = std::mem::take(&mut self.wbuf);
        buf.clear();
        buf
    }

    /// Keeps `buf` for the next request head.
    pub fn keep_head_buffer(&mut self, buf: BytesMut) {
        self.wbuf = buf;
    }

    /// Ready once `deadline` has passed. The timer still set for an earlier request's
    /// deadline is moved on when it fires early.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            ready!(timer.as_mut().poll(cx));
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            timer.as_mut().reset(deadline);
        }
    }

    /// Whether an idle connection can carry another request: the cluster neither closed it
    /// nor sent anything since its last response. Costs no system call when the runtime
    /// already knows the socket has nothing to read (the usual case: the last read was short).
    pub fn is_reusable(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        match self.stream.tcp().poll_peek(&mut cx, &mut probe) {
            Poll::Pending => true,
            // A TLS connection may carry records of the protocol itself (session tickets);
            // the TLS layer reads them with the next response. A close gives end of file.
            Poll::Ready(Ok(n)) => n > 0 && matches!(self.stream, Stream::Tls(_)),
            Poll::Ready(Err(_)) => false,
        }
    }

    /// Reads more from the cluster into `buf`, making room for `want` bytes first.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        self.buf.reserve(want);
        let read = self.stream.read_buf(&mut self.buf);
        std::pin::pin!(read).poll(cx)
    }

    /// Reads until a whole response head is in `buf`, and takes it. Interim (1xx) responses
    /// other than 101 are read and dropped.
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        got_bytes: &mut bool,
    ) -> Poll<Result<Head, ExchangeError>> {
        loop {
            if !self.buf.is_empty() {
                *got_bytes = true;
                match parse_head(&mut self.buf)? {
                    Some(head)
                        if head.status.is_informational()
                            && head.status != StatusCode::SWITCHING_PROTOCOLS =>
                    {
                        continue;
                    }
                    Some(head) => return Poll::Ready(Ok(head)),
                    None if self.buf.len() >= MAX_HEAD_BYTES => {
                        return Poll::Ready(Err(ExchangeError::Failed(format!(
                            "the response head is larger than {MAX_HEAD_BYTES} bytes"
                        ))));
                    }
                    None => {}
                }
            }
            let n = ready!(self.poll_fill(cx, 8 * 1024)).map_err(|err| {
                if *got_bytes {
                    ExchangeError::Failed(format!("reading the response: {err}"))
                } else {
                    ExchangeError::Unanswered(err)
                }
            })?;
            if n == 0 {
                let closed = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the cluster closed the connection",
                );
                return Poll::Ready(Err(if *got_bytes {
                    ExchangeError::Failed(
                        "the cluster closed the connection inside a response head".into(),
                    )
                } else {
                    ExchangeError::Unanswered(closed)
                }));
            }
        }
    }
}

/// A parsed response head.
struct Head {
    status: StatusCode,
    http10: bool,
    headers: HeaderMap,
}

/// Parses and removes one response head from the front of `buf`; `None` if it is not all
/// there yet.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, ExchangeError> {
    let bad = |what: String| {
        ExchangeError::Failed(format!("malformed response from the cluster: {what}"))
    };
    // Left uninitialised: httparse writes the headers it finds (no 4 KiB cleared per response).
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parser = httparse::ParserConfig::default();
    let len = match parser.parse_response_with_uninit_headers(&mut response, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(bad(err.to_string())),
    };
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| bad("no valid status code".into()))?;
    let http10 = response.version == Some(0);
    // Header values become slices of the head's bytes, not copies: first where each header
    // lies (the parsed headers borrow `buf`), then the head is split off and sliced. Offsets
    // fit in u32: a head is at most MAX_HEAD_BYTES.
    let base = buf.as_ptr() as usize;
    let offset = |part: &[u8]| (part.as_ptr() as usize - base) as u32;
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let count = response.headers.len();
    for (span, h) in spans.iter_mut().zip(response.headers.iter()) {
        *span = (
            offset(h.name.as_bytes()),
            h.name.len() as u32,
            offset(h.value),
            h.value.len() as u32,
        );
    }
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    for &(name_at, name_len, value_at, value_len) in &spans[..count] {
        let (name_at, name_len) = (name_at as usize, name_len as usize);
        let (value_at, value_len) = (value_at as usize, value_len as usize);
        let name = &head[name_at..name_at + name_len];
        let name = HeaderName::from_bytes(name)
            .map_err(|_| bad(format!("header name {:?}", String::from_utf8_lossy(name))))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len))
            .map_err(|_| bad(format!("value of {name}")))?;
        headers.append(name, value);
    }
    Ok(Some(Head {
        status,
        http10,
        headers,
    }))
}

/// How the request body goes to the cluster.
pub struct Upload {
    body: Incoming,
    chunked: bool,
    /// What is still to be written of the current piece.
    pending: Vec<Bytes>,
    finished: bool,
}

impl Upload {
    /// The request's body, if it has one, and the framing headers set to match: its exact
    /// length when known (as from an HTTP/1.1 `Content-Length`), else chunked. Whatever
    /// framing headers the client sent are replaced, so a request can never reach a cluster
    /// with two framings (request smuggling).
    pub fn prepare(body: Incoming, headers: &mut HeaderMap) -> Option<Box<Upload>> {
        headers.remove(header::TRANSFER_ENCODING);
        if body.is_end_stream() {
            return None;
        }
        let chunked = match body.size_hint().exact() {
            Some(len) => {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                false
            }
            None => {
                headers.remove(header::CONTENT_LENGTH);
                headers.insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
                true
            }
        };
        Some(Box::new(Upload {
            body,
            chunked,
            pending: Vec::new(),
            finished: false,
        }))
    }

    fn is_done(&self) -> bool {
        self.finished && self.pending.is_empty()
    }

    /// Writes as much of the body as is available and the cluster accepts.
    fn poll_write(&mut self, stream: &mut Stream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            while let Some(first) = self.pending.first_mut() {
                if first.is_empty() {
                    self.pending.remove(0);
                    continue;
                }
                // At most three pieces: a chunk's size line, its data and its line end.
                let mut slices = [io::IoSlice::new(&[]); 3];
                for (slice, piece) in slices.iter_mut().zip(&self.pending) {
                    *slice = io::IoSlice::new(piece);
                }
                let used = self.pending.len().min(3);
                let mut n =
                    ready!(Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..used]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                while n > 0 {
                    let first = &mut self.pending[0];
                    let take = n.min(first.len());
                    let _ = first.split_to(take);
                    n -= take;
                    if first.is_empty() {
                        self.pending.remove(0);
                    }
                }
            }
            if self.finished {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers are dropped: an HTTP/1.1 cluster only gets them if the client
                    // announced it reads them, and the gateway does not (`TE` is per hop).
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        if self.chunked {
                            self.pending
                                .push(Bytes::from(format!("{:x}\r\n", data.len())));
                            self.pending.push(data);
                            self.pending.push(Bytes::from_static(b"\r\n"));
                        } else {
                            self.pending.push(data);
                        }
                    }
                }
                Some(Err(err)) => return Poll::Ready(Err(io::Error::other(err))),
                None => {
                    if self.chunked {
                        self.pending.push(Bytes::from_static(b"0\r\n\r\n"));
                    }
                    self.finished = true;
                }
            }
        }
    }
}

/// Writes the request head of `parts` (origin-form target, HTTP/1.1) into `dst`.
pub fn encode_head(parts: &Parts, dst: &mut BytesMut) {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let size = parts.method.as_str().len()
        + target.len()
        + 13
        + parts
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>()
        + 2;
    dst.reserve(size);
    dst.extend_from_slice(parts.method.as_str().as_bytes());
    dst.extend_from_slice(b" ");
    dst.extend_from_slice(target.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// Whether a request may be sent again after its connection failed without an answer: only
/// methods the client may repeat itself (RFC 9110 §9.2.2), and only without a body, which
/// would be half consumed.
pub fn may_retry(method: &Method, has_body: bool) -> bool {
    !has_body
        && matches!(
            *method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        )
}

/// Sends the request (its head already encoded) on `conn` and reads the response head. The
/// request body, if any, is written while the response is awaited (a cluster may answer
/// before it read the whole body) and then alongside the response body.
pub async fn exchange(
    mut conn: Box<Conn>,
    head: &[u8],
    upload: Option<Box<Upload>>,
    head_request: bool,
    timeout: Duration,
) -> Result<Answer, ExchangeError> {
    conn.stream
        .write_all(head)
        .await
        .map_err(ExchangeError::Unanswered)?;
    conn.deadline = Instant::now() + timeout;
    let mut upload = upload;
    let mut upload_failed: Option<io::Error> = None;
    let mut got_bytes = false;
    let head = std::future::poll_fn(|cx| {
        if let Some(up) = upload.as_mut()
            && upload_failed.is_none()
            && let Poll::Ready(Err(err)) = up.poll_write(&mut conn.stream, cx)
        {
            // The cluster may have answered and stopped reading (413…): read the answer.
            upload_failed = Some(err);
        }
        match conn.poll_head(cx, &mut got_bytes) {
            Poll::Pending if conn.poll_deadline(cx).is_ready() => {
                Poll::Ready(Err(ExchangeError::TimedOut))
            }
            other => other,
        }
    })
    .await;
    let head = match (head, &upload_failed) {
        (Ok(head), _) => head,
        (Err(ExchangeError::Unanswered(_)), Some(err)) => {
            return Err(ExchangeError::Failed(format!(
                "sending the request body: {err}"
            )));
        }
        (Err(err), _) => return Err(err),
    };
    let framing = Framing::of(&head, head_request)?;
    let mut response = Response::new(());
    *response.status_mut() = head.status;
    *response.version_mut() = Version::HTTP_11;
    let keep_alive = !head.http10 && !has_token(&head.headers, header::CONNECTION, "close")
        || head.http10 && has_token(&head.headers, header::CONNECTION, "keep-alive");
    *response.headers_mut() = head.headers;
    // The cluster did not get the whole request: answer the client, then close.
    let framing = if keep_alive && upload_failed.is_none() {
        framing
    } else {
        framing.last()
    };
    Ok(Answer {
        response,
        framing,
        conn,
        upload,
    })
}

/// A response head from a cluster, and what its body needs.
pub struct Answer {
    pub response: Response<()>,
    pub framing: Framing,
    pub conn: Box<Conn>,
    /// The rest of the request body, if the cluster answered before it had all of it.
    pub upload: Option<Box<Upload>>,
}

/// Whether the comma-separated header `name` lists `token`.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// How the response body is delimited (RFC 9112 §6.3), and whether the connection can carry
/// another request afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304, `Content-Length: 0`).
    Empty { reuse: bool },
    /// `Content-Length` bytes.
    Length { remaining: u64, reuse: bool },
    /// Chunked transfer coding.
    Chunked { state: ChunkState, reuse: bool },
    /// Until the cluster closes the connection.
    UntilClose,
    /// 101: the connection now belongs to another protocol.
    Upgraded,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

impl Framing {
    fn of(head: &Head, head_request: bool) -> Result<Framing, ExchangeError> {
        let status = head.status;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Framing::Upgraded);
        }
        if head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok(Framing::Empty { reuse: true });
        }
        let headers = &head.headers;
        if headers.contains_key(header::TRANSFER_ENCODING) {
            let chunked_last = headers
                .get_all(header::TRANSFER_ENCODING)
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
            if !chunked_last {
                return Ok(Framing::UntilClose);
            }
            // Both framings: read as chunked, but never trust the connection again.
            let reuse = !headers.contains_key(header::CONTENT_LENGTH);
            return Ok(Framing::Chunked {
                state: ChunkState::Size,
                reuse,
            });
        }
        let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
        match lengths.next() {
            None => Ok(Framing::UntilClose),
            Some(first) => {
                let parse = |v: &HeaderValue| {
                    std::str::from_utf8(v.as_bytes())
                        .ok()
                        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|s| s.parse::<u64>().ok())
                };
                let len = parse(first).ok_or_else(|| {
                    ExchangeError::Failed("malformed Content-Length from the cluster".into())
                })?;
                if lengths.any(|other| parse(other) != Some(len)) {
                    return Err(ExchangeError::Failed(
                        "conflicting Content-Length from the cluster".into(),
                    ));
                }
                Ok(if len == 0 {
                    Framing::Empty { reuse: true }
                } else {
                    Framing::Length {
                        remaining: len,
                        reuse: true,
                    }
                })
            }
        }
    }

    /// The same framing on a connection that must close after this response.
    fn last(self) -> Framing {
        match self {
            Framing::Empty { .. } => Framing::Empty { reuse: false },
            Framing::Length { remaining, .. } => Framing::Length {
                remaining,
                reuse: false,
            },
            Framing::Chunked { state, .. } => Framing::Chunked {
                state,
                reuse: false,
            },
            other => other,
        }
    }
}

/// Where a connection goes once its response was read completely and it can carry another
/// request: the pool it came from.
pub trait Release: Send + Sync + 'static {
    fn release(&self, conn: Box<Conn>);
}

/// A response body read from the cluster as the client takes it.
pub struct ResponseBody {
    conn: Option<Box<Conn>>,
    framing: Framing,
    upload: Option<Box<Upload>>,
    release: Option<Arc<dyn Release>>,
}

impl ResponseBody {
    /// The body of a response read by [`exchange`]; `release` gets the connection back once
    /// the body is read and the connection can carry another request.
    pub fn new(
        conn: Box<Conn>,
        framing: Framing,
        upload: Option<Box<Upload>>,
        release: Arc<dyn Release>,
    ) -> ResponseBody {
        let mut body = ResponseBody {
            conn: Some(conn),
            framing,
            upload,
            release: Some(release),
        };
        if matches!(framing, Framing::Empty { .. }) {
            body.finish();
        }
        body
    }

    /// The connection of a 101 response and what the cluster already sent on it in the new
    /// protocol.
    pub fn take_upgraded(&mut self) -> Option<(Stream, Bytes)> {
        if self.framing != Framing::Upgraded {
            return None;
        }
        let conn = self.conn.take()?;
        Some((conn.stream, conn.buf.freeze()))
    }

    /// The body is complete: the connection goes back if it can carry another request (the
    /// response asked for no close, the whole request went out, nothing extra arrived).
    fn finish(&mut self) {
        let reuse = match self.framing {
            Framing::Empty { reuse }
            | Framing::Length { reuse, .. }
            | Framing::Chunked { reuse, .. } => reuse,
            Framing::UntilClose | Framing::Upgraded => false,
        };
        self.framing = Framing::Empty { reuse: false };
        let conn = self.conn.take();
        let upload_done = self.upload.as_deref().is_none_or(Upload::is_done);
        if let (true, true, Some(conn), Some(release)) =
            (reuse, upload_done, conn, self.release.take())
            && conn.buf.is_empty()
        {
            release.release(conn);
        }
    }

    fn fail(&mut self, msg: String) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.conn = None;
        self.framing = Framing::Empty { reuse: false };
        Poll::Ready(Some(Err(io::Error::other(msg))))
    }
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(upload) = this.upload.as_mut()
            && !upload.is_done()
            && let Poll::Ready(Err(_)) = upload.poll_write(&mut conn.stream, cx)
        {
            // The cluster stopped reading the request; its response may still be whole.
            this.upload = None;
            this.framing = this.framing.last();
        }
        loop {
            match this.framing {
                Framing::Empty { .. } | Framing::Upgraded => return Poll::Ready(None),
                Framing::Length { remaining, reuse } => {
                    if conn.buf.is_empty() {
                        let want = usize::try_from(remaining)
                            .unwrap_or(READ_CHUNK)
                            .min(READ_CHUNK);
                        match ready!(conn.poll_fill(cx, want)) {
                            Ok(0) => {
                                return this.fail(
                                    "the cluster closed the connection inside a response body"
                                        .into(),
                                );
                            }
                            Ok(_) => {}
                            Err(err) => {
                                return this.fail(format!("reading the response body: {err}"));
                            }
                        }
                    }
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(conn.buf.len());
                    let data = conn.buf.split_to(take).freeze();
                    let remaining = remaining - take as u64;
                    this.framing = Framing::Length { remaining, reuse };
                    if remaining == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::UntilClose => {
                    if conn.buf.is_empty() {
                        match ready!(conn.poll_fill(cx, READ_CHUNK)) {
                            Ok(0) => {
                                this.finish();
                                return Poll::Ready(None);
                            }
                            Ok(_) => {}
                            Err(err) => {
                                return this.fail(format!("reading the response body: {err}"));
                            }
                        }
                    }
                    let data = conn.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Chunked { state, reuse } => {
                    let step = match chunk_step(&mut conn.buf, state) {
                        Ok(step) => step,
                        Err(msg) => return this.fail(msg),
                    };
                    match step {
                        ChunkStep::Data(data, next) => {
                            this.framing = Framing::Chunked { state: next, reuse };
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        ChunkStep::Next(next) => {
                            this.framing = Framing::Chunked { state: next, reuse }
                        }
                        ChunkStep::Done => {
                            this.finish();
                            return Poll::Ready(None);
                        }
                        ChunkStep::NeedMore => {
                            if conn.buf.len() > MAX_LINE_BYTES
                                && !matches!(state, ChunkState::Data(_))
                            {
                                return this
                                    .fail("a chunk line from the cluster is too long".into());
                            }
                            match ready!(conn.poll_fill(cx, READ_CHUNK)) {
                                Ok(0) => {
                                    return this.fail(
                                        "the cluster closed the connection inside a chunked body"
                                            .into(),
                                    );
                                }
                                Ok(_) => {}
                                Err(err) => {
                                    return this.fail(format!("reading the response body: {err}"));
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || matches!(self.framing, Framing::Empty { .. } | Framing::Upgraded)
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty { .. } | Framing::Upgraded => SizeHint::with_exact(0),
            Framing::Length { remaining, .. } => SizeHint::with_exact(remaining),
            _ => SizeHint::default(),
        }
    }
}

/// What the next step through a chunked body gives.
enum ChunkStep {
    Data(Bytes, ChunkState),
    Next(ChunkState),
    Done,
    NeedMore,
}

/// One step of decoding a chunked body from `buf`.
fn chunk_step(buf: &mut BytesMut, state: ChunkState) -> Result<ChunkStep, String> {
    let bad = |what: &str| format!("malformed chunked body from the cluster: {what}");
    Ok(match state {
        ChunkState::Size => match httparse::parse_chunk_size(buf) {
            Ok(httparse::Status::Complete((used, size))) => {
                let _ = buf.split_to(used);
                ChunkStep::Next(if size == 0 {
                    ChunkState::Trailers
                } else {
                    ChunkState::Data(size)
                })
            }
            Ok(httparse::Status::Partial) => ChunkStep::NeedMore,
            Err(_) => return Err(bad("chunk size")),
        },
        ChunkState::Data(remaining) => {
            if buf.is_empty() {
                return Ok(ChunkStep::NeedMore);
            }
            let take = usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let data = buf.split_to(take).freeze();
            let left = remaining - take as u64;
            let next = if left == 0 {
                ChunkState::DataEnd
            } else {
                ChunkState::Data(left)
            };
            ChunkStep::Data(data, next)
        }
        ChunkState::DataEnd => {
            if buf.len() < 2 {
                return Ok(ChunkStep::NeedMore);
            }
            if &buf[..2] != b"\r\n" {
                return Err(bad("no line end after a chunk"));
            }
            let _ = buf.split_to(2);
            ChunkStep::Next(ChunkState::Size)
        }
        // Trailer fields are dropped (see `Upload::poll_write`); the body ends at the empty line.
        ChunkState::Trailers => match buf.windows(2).position(|w| w == b"\r\n") {
            None => ChunkStep::NeedMore,
            Some(0) => {
                let _ = buf.split_to(2);
                ChunkStep::Done
            }
            Some(end) => {
                let _ = buf.split_to(end + 2);
                ChunkStep::Next(ChunkState::Trailers)
            }
        },
    })
}

/// The cluster-response parsers on bytes alone, without a connection: for the fuzz targets in
/// `gateway/fuzz/` (built with `--cfg fuzzing`, which `gateway/fuzz/run` sets) and the tests.
#[cfg(any(test, fuzzing))]
pub mod bytes_only {
    use super::*;

    /// Reads one response head from the front of `bytes`: its status, the framing of the body
    /// that follows (as for a `HEAD` request if `head_request`) and the bytes after the head.
    /// `Ok(None)` if the head is not complete.
    pub fn response_head(
        bytes: &[u8],
        head_request: bool,
    ) -> Result<Option<(StatusCode, Framing, Vec<u8>)>, String> {
        let mut buf = BytesMut::from(bytes);
        let Some(head) = parse_head(&mut buf).map_err(|err| err.to_string())? else {
            return Ok(None);
        };
        let framing = Framing::of(&head, head_request).map_err(|err| err.to_string())?;
        Ok(Some((head.status, framing, buf.to_vec())))
    }

    /// Decodes a chunked body that starts at the front of `bytes`; `Ok(None)` if it does not
    /// end within them.
    pub fn chunked_body(bytes: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let mut buf = BytesMut::from(bytes);
        let mut state = ChunkState::Size;
        let mut body = Vec::new();
        loop {
            match chunk_step(&mut buf, state)? {
                ChunkStep::Data(data, next) => {
                    body.extend_from_slice(&data);
                    state = next;
                }
                ChunkStep::Next(next) => state = next,
                ChunkStep::Done => return Ok(Some(body)),
                ChunkStep::NeedMore => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a cluster sends, reading it as a response head or a chunked body ends
        /// in a value or an error, never a panic.
        #[test]
        fn arbitrary_cluster_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
            let _ = bytes_only::response_head(&bytes, false);
            let _ = bytes_only::chunked_body(&bytes);
        }

        /// Any body cut into chunks decodes back to itself.
        #[test]
        fn chunked_bodies_round_trip(pieces in vec(vec(any::<u8>(), 1..64), 0..8)) {
            let mut wire = Vec::new();
            for piece in &pieces {
                wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                wire.extend_from_slice(piece);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            prop_assert_eq!(chunked(&wire).unwrap(), pieces.concat());
        }
    }

    fn chunked(input: &[u8]) -> Result<Vec<u8>, String> {
        bytes_only::chunked_body(input)?.ok_or_else(|| "incomplete".into())
    }

    #[test]
    fn chunked_bodies_decode_with_extensions_and_trailers() {
        assert_eq!(
            chunked(b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\n\r\n").unwrap(),
            b"hello!"
        );
        assert_eq!(chunked(b"0\r\nx-trailer: 1\r\n\r\n").unwrap(), b"");
        assert!(chunked(b"5\r\nhello!!0\r\n\r\n").is_err());
        assert!(chunked(b"zz\r\n").is_err());
        assert_eq!(chunked(b"5\r\nhel").unwrap_err(), "incomplete");
    }

    #[test]
    fn response_heads_parse_into_headers_sharing_the_bytes() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello"[..],
        );
        let head = parse_head(&mut buf).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(&buf[..], b"hello");
        assert_eq!(
            Framing::of(&head, false).unwrap(),
            Framing::Length {
                remaining: 5,
                reuse: true
            }
        );
        assert_eq!(
            Framing::of(&head, true).unwrap(),
            Framing::Empty { reuse: true }
        );
        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-"[..]);
        assert!(parse_head(&mut partial).unwrap().is_none());
    }

    #[test]
    fn conflicting_or_malformed_lengths_are_refused() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            &b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n"[..],
        ] {
            let head = parse_head(&mut BytesMut::from(raw)).unwrap().unwrap();
            assert!(Framing::of(&head, false).is_err());
        }
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        let head = parse_head(&mut BytesMut::from(&both[..])).unwrap().unwrap();
        assert_eq!(
            Framing::of(&head, false).unwrap(),
            Framing::Chunked {
                state: ChunkState::Size,
                reuse: false
            }
        );
    }
}
