//! Port forwarding over WebSocket, as the kubelet serves it and kube-rs speaks it
//! (subprotocol `v4.channel.k8s.io`).
//!
//! Each requested port `i` has a data channel `2i` and an error channel `2i+1`. Every binary
//! message starts with its channel byte; the server's first message on each channel carries
//! the port as two little-endian bytes. The forward to each port is one TCP connection opened
//! with the WebSocket; the WebSocket closes when every port's connection has ended, and the
//! connections close when the client closes the WebSocket.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use kip_portforward::{End, Pump, Role};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::backend::Target;

/// How long to wait for the client's answer to our close before dropping the connection.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The most bytes read from a backend into one message.
const CHUNK: usize = 64 * 1024;

fn framed(channel: u8, payload: &[u8]) -> Message {
    let mut bin = Vec::with_capacity(payload.len() + 1);
    bin.push(channel);
    bin.extend_from_slice(payload);
    Message::binary(bin)
}

/// Serves one port-forward WebSocket until both sides are done.
pub async fn serve<S>(ws: WebSocketStream<S>, ports: Vec<u16>, target: Target)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut incoming) = ws.split();
    let (out, mut outgoing) = mpsc::channel::<Message>(64);
    // One writer keeps messages of all ports in the order they were queued.
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            if message.is_close() || sink.send(message).await.is_err() {
                break;
            }
        }
        // Closing the sink starts the closing handshake, or answers the client's close
        // (sending a Close message after the client's would be refused).
        let _ = sink.close().await;
    });

    for (i, port) in ports.iter().enumerate() {
        let prefix = port.to_le_bytes();
        let _ = out.send(framed(2 * i as u8, &prefix)).await;
        let _ = out.send(framed(2 * i as u8 + 1, &prefix)).await;
    }

    let (done_tx, mut done_rx) = mpsc::channel::<usize>(ports.len().max(1));
    let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::with_capacity(ports.len());
    let mut readers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        match target.connect(*port).await {
            Ok(stream) => {
                let (mut read, write) = stream.into_split();
                writers.push(Some(write));
                let out = out.clone();
                let done = done_tx.clone();
                readers.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; CHUNK];
                    loop {
                        match read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if out.send(framed(2 * i as u8, &buf[..n])).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    // Sent after the last data, so the data is queued before any close.
                    let _ = done.send(i).await;
                }));
            }
            Err(message) => {
                writers.push(None);
                let _ = out.send(framed(2 * i as u8 + 1, message.as_bytes())).await;
            }
        }
    }
    drop(done_tx);

    let mut open = writers.iter().filter(|w| w.is_some()).count();
    let mut client_closed = false;
    while open > 0 {
        tokio::select! {
            message = incoming.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    let Some((&channel, payload)) = data.split_first() else { continue };
                    // Odd channels are the server's error channels: nothing to read there.
                    if channel % 2 != 0 || payload.is_empty() {
                        continue;
                    }
                    let Some(slot) = writers.get_mut(usize::from(channel / 2)) else { continue };
                    if let Some(writer) = slot
                        && writer.write_all(payload).await.is_err()
                    {
                        *slot = None;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    client_closed = true;
                    break;
                }
                Some(Ok(_)) => {}
            },
            Some(i) = done_rx.recv() => {
                if let Some(writer) = writers.get_mut(i).and_then(Option::take) {
                    let mut writer = writer;
                    let _ = writer.shutdown().await;
                }
                open -= 1;
            }
        }
    }
    drop(writers);
    for reader in &readers {
        if client_closed {
            reader.abort();
        }
    }
    let _ = out.send(Message::Close(None)).await;
    drop(out);
    let _ = writer.await;
    if !client_closed {
        // Read until the client answers our close, so it sees a clean closing handshake.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = incoming.next().await {}
        })
        .await;
    }
    for reader in readers {
        reader.abort();
    }
}

/// Serves a port-forward WebSocket for one port (what kube-rs and `kip tunnel` ask for) on the
/// upgraded connection `ws`: the bytes carried both ways in this one task by the shared pump,
/// which frames in place (see `kip_portforward`).
pub async fn serve_one<S>(ws: S, port: u16, target: Target)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let prefix = port.to_le_bytes();
    match target.connect(port).await {
        Ok(backend) => {
            let mut pump = Pump::new(backend, ws, Role::Server, 0);
            pump.queue_binary(&[0, prefix[0], prefix[1]]);
            pump.queue_binary(&[1, prefix[0], prefix[1]]);
            // Either side ending ends the forward: a port-forward has no half-close.
            let end = pump.run().await;
            let _ = pump.local_mut().shutdown().await;
            // Starts the closing handshake (and waits for the answer), or answers the client's.
            pump.close(&end, CLOSE_GRACE).await;
        }
        Err(message) => {
            let mut pump = Pump::new(tokio::io::empty(), ws, Role::Server, 0);
            pump.queue_binary(&[0, prefix[0], prefix[1]]);
            pump.queue_binary(&[1, prefix[0], prefix[1]]);
            let mut error = vec![1];
            error.extend_from_slice(message.as_bytes());
            pump.queue_binary(&error);
            pump.close(&End::Local, CLOSE_GRACE).await;
        }
    }
}

/// A SPDY session's byte stream carried in WebSocket binary messages, as kubectl tunnels it
/// (subprotocol `SPDY/3.1+portforward.k8s.io`). Returns the SPDY side of the tunnel.
pub fn tunnel<S>(ws: WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut read, mut write) = tokio::io::split(theirs);
    let (mut sink, mut incoming) = ws.split();
    tokio::spawn(async move {
        let inbound = async move {
            while let Some(Ok(message)) = incoming.next().await {
                match message {
                    Message::Binary(data) if write.write_all(&data).await.is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = write.shutdown().await;
        };
        let outbound = async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sink
                            .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            let _ = sink.close().await;
        };
        tokio::pin!(inbound, outbound);
        tokio::select! {
            _ = &mut inbound => outbound.await,
            // Our close is sent: wait a little for the client's, not forever.
            _ = &mut outbound => {
                let _ = tokio::time::timeout(CLOSE_GRACE, inbound).await;
            }
        }
    });
    ours
}
