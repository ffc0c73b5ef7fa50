use super::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;

const GRACE: Duration = Duration::from_secs(5);

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// A server pump for port 5432 whose backend is an echo of what it receives.
fn echo_server(ws: DuplexStream) -> tokio::task::JoinHandle<End> {
    tokio::spawn(async move {
        let (backend, mut echo) = duplex(64 * 1024);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            loop {
                match echo.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if echo.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut pump = Pump::new(backend, ws, Role::Server, 0);
        pump.queue_binary(&[0, 0x38, 0x15]);
        pump.queue_binary(&[1, 0x38, 0x15]);
        let end = pump.run().await;
        pump.close(&end, GRACE).await;
        end
    })
}

#[tokio::test]
async fn client_and_server_pumps_carry_bytes_both_ways() {
    let (ws_client, ws_server) = duplex(100 * 1024);
    let server = echo_server(ws_server);
    let (local, mut app) = duplex(100 * 1024);
    let client = tokio::spawn(async move {
        let mut pump = Pump::new(local, ws_client, Role::Client, 42);
        let end = pump.run().await;
        pump.close(&end, GRACE).await;
        end
    });
    for len in [1, 125, 126, 65535, 65536, 1 << 20] {
        let data = payload(len);
        let writer = {
            let data = data.clone();
            let (mut r, mut w) = tokio::io::split(&mut app);
            let mut got = vec![0u8; len];
            let (written, read) = tokio::join!(w.write_all(&data), r.read_exact(&mut got));
            written.expect("write");
            read.expect("read");
            got
        };
        assert_eq!(writer, data, "{len} bytes echoed");
    }
    drop(app);
    assert_eq!(client.await.expect("client"), End::Local);
    assert_eq!(server.await.expect("server"), End::PeerClosed);
}

#[tokio::test]
async fn the_client_reports_the_port_error_and_skips_the_prefixes() {
    let (ws_client, ws_server) = duplex(4096);
    tokio::spawn(async move {
        let mut ws = WebSocketStream::from_raw_socket(ws_server, WsRole::Server, None).await;
        // The port comes split over two messages on the data channel.
        for m in [
            &[0u8, 0x38][..],
            &[0, 0x15, b'h'],
            &[0, b'i'],
            &[1, 0x38, 0x15],
        ] {
            ws.send(Message::binary(m.to_vec())).await.expect("send");
        }
        ws.send(Message::Ping(vec![7].into())).await.expect("ping");
        ws.send(Message::binary(b"\x01no such port".to_vec()))
            .await
            .expect("send");
        // The pong, then the client's close.
        let mut pong = false;
        while let Some(Ok(m)) = ws.next().await {
            match m {
                Message::Pong(p) => pong = p[..] == [7],
                Message::Close(_) => break,
                _ => {}
            }
        }
        assert!(pong, "pong answered");
    });
    let (local, mut app) = duplex(4096);
    let mut pump = Pump::new(local, ws_client, Role::Client, 7);
    let end = pump.run().await;
    assert_eq!(end, End::PortError("no such port".into()));
    pump.close(&end, GRACE).await;
    drop(pump);
    let mut got = Vec::new();
    app.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, b"hi");
}

#[tokio::test]
async fn the_server_pump_speaks_to_tungstenite_and_answers_its_close() {
    let (ws_client, ws_server) = duplex(100 * 1024);
    let server = echo_server(ws_server);
    let mut ws = WebSocketStream::from_raw_socket(ws_client, WsRole::Client, None).await;
    let mut first = Vec::new();
    for _ in 0..2 {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => first.push(b.to_vec()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(first, vec![vec![0, 0x38, 0x15], vec![1, 0x38, 0x15]]);
    let mut data = vec![0u8];
    data.extend(payload(300_000));
    ws.send(Message::binary(data.clone())).await.expect("send");
    let mut echoed = Vec::new();
    while echoed.len() < data.len() - 1 {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                assert_eq!(b[0], 0);
                echoed.extend_from_slice(&b[1..]);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(echoed, data[1..]);
    ws.close(None).await.expect("close");
    while let Some(Ok(_)) = ws.next().await {}
    assert_eq!(server.await.expect("server"), End::PeerClosed);
}

#[test]
fn headers_and_masks() {
    for len in [0, 125, 126, 65535, 65536, 1 << 24] {
        for mask in [None, Some([1, 2, 3, 4])] {
            let mut h = [0u8; MAX_HEADER];
            let n = encode_header(&mut h, OP_BINARY, len, mask);
            assert_eq!(n, header_len(len, mask.is_some()));
            let (used, frame) = parse_header(&h[..n]).expect("valid").expect("complete");
            assert_eq!((used, frame.remaining, frame.mask), (n, len as u64, mask));
            assert!(parse_header(&h[..n - 1]).expect("valid").is_none());
        }
    }
    let data = payload(1001);
    let mut masked = data.clone();
    apply_mask(&mut masked, [9, 8, 7, 6], 0);
    // Unmasking in two pieces at an odd offset gives the data back.
    apply_mask(&mut masked[..333], [9, 8, 7, 6], 0);
    apply_mask(&mut masked[333..], [9, 8, 7, 6], 333);
    assert_eq!(masked, data);
    assert!(parse_header(&[0x83, 0]).is_err(), "reserved opcode");
    assert!(parse_header(&[0x09, 0]).is_err(), "fragmented ping");
}
