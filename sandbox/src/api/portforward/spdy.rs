//! Port forwarding over SPDY, as the kubelet serves it to `kubectl port-forward`.
//!
//! For every local connection kubectl opens two streams carrying the headers `streamtype`
//! (`error`, then `data`), `port` and `requestid`. Once both of a request have arrived, the
//! sandbox connects to what stands for the port and copies bytes between the data stream and
//! that connection; a failure is written on the error stream. Both streams are then closed.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::backend::Target;
use crate::spdy::{self, Decoder, Encoder, FLAG_FIN, Frame};

/// After one direction of a forward ends, how long the other may go on (the kubelet's
/// container runtimes allow one second, like socat).
const HALF_CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The most bytes read from a backend into one DATA frame.
const CHUNK: usize = 32 * 1024;
/// The most requests of one connection waiting for their second stream.
const MAX_PENDING: usize = 1024;

/// What the client sent on a data stream.
enum Inbound {
    Data(Bytes),
    Fin,
    Reset,
}

/// A request whose two streams have not both arrived yet.
#[derive(Default)]
struct Pending {
    port: u16,
    data: Option<(u32, mpsc::Receiver<Inbound>)>,
    error: Option<u32>,
}

/// The headers of one stream kubectl opens.
struct StreamHeaders {
    kind: StreamKind,
    port: u16,
    request: String,
}

#[derive(PartialEq)]
enum StreamKind {
    Data,
    Error,
}

fn stream_headers(stream: u32, headers: &spdy::Headers) -> Option<StreamHeaders> {
    let kind = match spdy::header(headers, "streamtype")? {
        "data" => StreamKind::Data,
        "error" => StreamKind::Error,
        _ => return None,
    };
    let port = spdy::header(headers, "port")?
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)?;
    // Clients older than request ids pair an error stream with the data stream opened next
    // (stream ids of one side go up by two), as the kubelet does for them.
    let request = match spdy::header(headers, "requestid") {
        Some(id) => id.to_string(),
        None if kind == StreamKind::Data => format!("stream-{}", stream.saturating_sub(2)),
        None => format!("stream-{stream}"),
    };
    Some(StreamHeaders {
        kind,
        port,
        request,
    })
}

/// Serves one SPDY port-forward connection until the client closes it.
pub async fn serve<S>(io: S, target: Target)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut read, mut write) = tokio::io::split(io);
    let (out, mut outgoing) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut encoder = Encoder::new();
        let mut buf = BytesMut::new();
        while let Some(frame) = outgoing.recv().await {
            if encoder.encode(&frame, &mut buf).is_err() {
                break;
            }
            // Batch what is already queued into one write.
            while buf.len() < 256 * 1024 {
                let Ok(frame) = outgoing.try_recv() else {
                    break;
                };
                if encoder.encode(&frame, &mut buf).is_err() {
                    break;
                }
            }
            if write.write_all(&buf).await.is_err() || write.flush().await.is_err() {
                break;
            }
            buf.clear();
        }
        let _ = write.shutdown().await;
    });

    let mut decoder = Decoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut routes: HashMap<u32, mpsc::Sender<Inbound>> = HashMap::new();
    let mut workers = Vec::new();
    'session: loop {
        let frame = match decoder.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => match read.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            },
            Err(e) => {
                tracing::debug!("port-forward: {e}");
                let _ = out
                    .send(Frame::GoAway {
                        last_good: 0,
                        status: 1,
                    })
                    .await;
                break;
            }
        };
        match frame {
            Frame::SynStream {
                stream, headers, ..
            } => {
                let Some(h) = stream_headers(stream, &headers) else {
                    let _ = out
                        .send(Frame::RstStream {
                            stream,
                            status: spdy::PROTOCOL_ERROR,
                        })
                        .await;
                    continue;
                };
                // A client opening halves of requests it never completes must not grow us
                // without bound; kubectl completes each request at once.
                if pending.len() >= MAX_PENDING && !pending.contains_key(&h.request) {
                    let _ = out
                        .send(Frame::RstStream {
                            stream,
                            status: spdy::REFUSED_STREAM,
                        })
                        .await;
                    continue;
                }
                let reply = Frame::SynReply {
                    stream,
                    flags: 0,
                    headers: Vec::new(),
                };
                if out.send(reply).await.is_err() {
                    break;
                }
                let entry = pending.entry(h.request.clone()).or_default();
                entry.port = h.port;
                match h.kind {
                    StreamKind::Error => entry.error = Some(stream),
                    StreamKind::Data => {
                        let (tx, rx) = mpsc::channel(16);
                        routes.insert(stream, tx);
                        entry.data = Some((stream, rx));
                    }
                }
                if entry.data.is_some() && entry.error.is_some() {
                    let Some(Pending {
                        port,
                        data: Some((data, inbound)),
                        error: Some(error),
                    }) = pending.remove(&h.request)
                    else {
                        continue;
                    };
                    let (out, target) = (out.clone(), target.clone());
                    workers.push(tokio::spawn(forward(
                        port, data, error, inbound, out, target,
                    )));
                    workers.retain(|w| !w.is_finished());
                }
            }
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                if let Some(route) = routes.get(&stream) {
                    if !data.is_empty() && route.send(Inbound::Data(data)).await.is_err() {
                        routes.remove(&stream);
                        continue;
                    }
                    if flags & FLAG_FIN != 0
                        && let Some(route) = routes.remove(&stream)
                    {
                        let _ = route.send(Inbound::Fin).await;
                    }
                }
            }
            Frame::RstStream { stream, .. } => {
                if let Some(route) = routes.remove(&stream) {
                    let _ = route.send(Inbound::Reset).await;
                }
            }
            Frame::Ping { id } => {
                if out.send(Frame::Ping { id }).await.is_err() {
                    break 'session;
                }
            }
            Frame::GoAway { .. } => break,
            Frame::SynReply { .. }
            | Frame::Settings { .. }
            | Frame::Headers { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Unknown { .. } => {}
        }
    }
    // The connection is gone: every forward on it ends.
    drop(routes);
    drop(pending);
    for worker in workers {
        worker.abort();
    }
    drop(out);
    let _ = writer.await;
}

/// One forwarded connection: the data stream `data` to what stands for `port`.
async fn forward(
    port: u16,
    data: u32,
    error: u32,
    mut inbound: mpsc::Receiver<Inbound>,
    out: mpsc::Sender<Frame>,
    target: Target,
) {
    let fin = |stream: u32| Frame::Data {
        stream,
        flags: FLAG_FIN,
        data: Bytes::new(),
    };
    let tcp = match target.connect(port).await {
        Ok(tcp) => tcp,
        Err(message) => {
            tracing::debug!("port-forward: {message}");
            let _ = out
                .send(Frame::Data {
                    stream: error,
                    flags: 0,
                    data: Bytes::from(message),
                })
                .await;
            let _ = out.send(fin(data)).await;
            let _ = out.send(fin(error)).await;
            return;
        }
    };
    let (mut from_backend, mut to_backend) = tcp.into_split();
    // Client to backend. Ends with the client's FIN (returns true) or its reset (false).
    let mut up = tokio::spawn(async move {
        while let Some(message) = inbound.recv().await {
            match message {
                Inbound::Data(bytes) => {
                    if to_backend.write_all(&bytes).await.is_err() {
                        return false;
                    }
                }
                Inbound::Fin => {
                    let _ = to_backend.shutdown().await;
                    return true;
                }
                Inbound::Reset => return false,
            }
        }
        false
    });
    let down_out = out.clone();
    // Backend to client, until the backend stops sending.
    let down = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from_backend.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => {
                    let frame = Frame::Data {
                        stream: data,
                        flags: 0,
                        data: Bytes::copy_from_slice(&buf[..n]),
                    };
                    if down_out.send(frame).await.is_err() {
                        return false;
                    }
                }
            }
        }
    };
    tokio::pin!(down);
    tokio::select! {
        finished = &mut down => {
            if finished {
                let _ = out.send(fin(data)).await;
            }
            let _ = tokio::time::timeout(HALF_CLOSE_GRACE, &mut up).await;
        }
        sent_fin = &mut up => {
            if matches!(sent_fin, Ok(true))
                && tokio::time::timeout(HALF_CLOSE_GRACE, &mut down).await == Ok(true)
            {
                let _ = out.send(fin(data)).await;
            }
        }
    }
    up.abort();
    // kubectl reads the error stream to its end before it lets go of the connection.
    let _ = out.send(fin(error)).await;
}
