//! The byte pump of a one-port port-forward WebSocket (`v4.channel.k8s.io`), the client side
//! (`kip tunnel`) and the server side (the sandbox) alike.
//!
//! The v4 channel protocol for one port: binary messages whose first byte is the channel, 0
//! for data and 1 for the server's errors; the server's first message on each channel is the
//! port (two bytes, little-endian). A port-forward has no half-close: either side ending ends
//! the forward.
//!
//! Why not tungstenite's stream: this pump frames and parses WebSocket frames in place, in one
//! task, with one `read` and one `write` per message and no copy in user space besides the
//! mask. A data frame is read from the local socket straight behind room for its header (the
//! header is written in front of it and the frame leaves in one `write`); an incoming frame's
//! payload is unmasked where it was read and written to the local socket from there, in pieces
//! as it arrives, so a frame larger than the buffer streams through. tungstenite zero-fills its
//! 128 KiB read buffer before every `read`, copies each outgoing frame into a buffer of its
//! own and, split in two halves, takes a lock per poll: together a tenth of the CPU of a small
//! request through the tunnel.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes read from the local socket into one message (and read from the WebSocket at
/// once): large enough that a bulk transfer costs few system calls per megabyte.
pub const CHUNK: usize = 256 * 1024;

/// The longest frame header: 2 bytes, an 8-byte length and a 4-byte mask.
const MAX_HEADER: usize = 14;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// The data channel of the one port forwarded; its error channel is 1.
const DATA: u8 = 0;
const ERROR: u8 = 1;

/// Which end of the WebSocket this pump is: a client masks what it sends and skips the port
/// each channel starts with; a server expects masked frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// Why the pump stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The local socket ended (end of file or an error).
    Local,
    /// The peer sent a Close frame.
    PeerClosed,
    /// The WebSocket connection ended or failed without a Close frame, or broke the protocol.
    PeerGone,
    /// The server reported an error for the port on the error channel (client role only).
    PortError(String),
}

/// What one step of a direction did.
enum Step {
    Progress,
    Blocked,
    Done(End),
}

/// A one-port port-forward over a WebSocket `ws` (already upgraded), for the socket `local`.
pub struct Pump<L, W> {
    local: L,
    ws: W,
    role: Role,
    out: Outgoing,
    inc: Incoming,
    local_eof: bool,
}

struct Outgoing {
    /// A data frame is assembled here: its payload (channel byte then data) from
    /// `MAX_HEADER`, its header just in front.
    buf: Box<[u8]>,
    /// The part of `buf` still to write.
    start: usize,
    end: usize,
    /// Frames queued by the pump itself (port prefixes, errors, pongs, close), written between
    /// data frames.
    queued: Vec<u8>,
    queued_pos: usize,
    needs_flush: bool,
    /// xorshift64* state for the client's masking keys.
    rng: u64,
}

struct Incoming {
    buf: Box<[u8]>,
    /// Read but not yet parsed.
    start: usize,
    end: usize,
    /// Payload waiting to be written to the local socket, inside `buf`.
    deliver_start: usize,
    deliver_end: usize,
    frame: Option<Frame>,
    /// A data message is in progress (continuation frames belong to it).
    in_message: bool,
    /// The channel of the data message in progress, once its first byte is read.
    channel: Option<u8>,
    /// Port bytes still to skip on channels 0 and 1 (client role).
    skip: [usize; 2],
    /// The payload of the control frame in progress.
    control: Vec<u8>,
    /// The error channel's message in progress (client role).
    error: Vec<u8>,
    /// Past the end: payloads are dropped (waiting for the peer's Close).
    discard: bool,
}

enum Parsed {
    /// A header or payload was taken.
    Consumed,
    /// A header (or the current frame's payload) is not all read yet.
    NeedMore,
    End(End),
    /// The peer broke the protocol.
    Broken,
}

struct Frame {
    opcode: u8,
    fin: bool,
    remaining: u64,
    mask: Option<[u8; 4]>,
    mask_pos: usize,
}

impl<L, W> Pump<L, W>
where
    L: AsyncRead + AsyncWrite + Unpin,
    W: AsyncRead + AsyncWrite + Unpin,
{
    /// A pump for `local` over `ws`. `seed` seeds the client's masking keys (pass a random
    /// number); a server ignores it.
    pub fn new(local: L, ws: W, role: Role, seed: u64) -> Self {
        let skip = match role {
            Role::Client => [2, 2],
            Role::Server => [0, 0],
        };
        Pump {
            local,
            ws,
            role,
            out: Outgoing {
                buf: vec![0; MAX_HEADER + 1 + CHUNK].into_boxed_slice(),
                start: 0,
                end: 0,
                queued: Vec::new(),
                queued_pos: 0,
                needs_flush: false,
                rng: seed | 1,
            },
            inc: Incoming {
                buf: vec![0; CHUNK + MAX_HEADER].into_boxed_slice(),
                start: 0,
                end: 0,
                deliver_start: 0,
                deliver_end: 0,
                frame: None,
                in_message: false,
                channel: None,
                skip,
                control: Vec::new(),
                error: Vec::new(),
                discard: false,
            },
            local_eof: false,
        }
    }

    /// The local socket, to shut it down once the pump is done.
    pub fn local_mut(&mut self) -> &mut L {
        &mut self.local
    }

    /// Queues one binary message (channel byte included), sent before any data read after.
    pub fn queue_binary(&mut self, message: &[u8]) {
        self.queue(OP_BINARY, message);
    }

    fn queue(&mut self, opcode: u8, payload: &[u8]) {
        let mask = self.mask_key();
        let mut header = [0u8; MAX_HEADER];
        let h = encode_header(&mut header, opcode, payload.len(), mask);
        let queued = &mut self.out.queued;
        if self.out.queued_pos == queued.len() {
            queued.clear();
            self.out.queued_pos = 0;
        }
        queued.extend_from_slice(&header[..h]);
        let at = queued.len();
        queued.extend_from_slice(payload);
        if let Some(mask) = mask {
            apply_mask(&mut queued[at..], mask, 0);
        }
    }

    fn mask_key(&mut self) -> Option<[u8; 4]> {
        if self.role == Role::Server {
            return None;
        }
        let rng = &mut self.out.rng;
        *rng ^= *rng >> 12;
        *rng ^= *rng << 25;
        *rng ^= *rng >> 27;
        let key = rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
        Some((key as u32).to_ne_bytes())
    }

    /// Carries bytes both ways until one side ends; says which.
    pub async fn run(&mut self) -> End {
        poll_fn(|cx| self.poll_run(cx)).await
    }

    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        // Bounded, so a busy forward lets the other tasks of its thread run.
        for _ in 0..64 {
            let mut progress = false;
            match self.step_out(cx, true) {
                Step::Progress => progress = true,
                Step::Blocked => {}
                Step::Done(end) => return Poll::Ready(end),
            }
            match self.step_in(cx) {
                Step::Progress => progress = true,
                Step::Blocked => {}
                Step::Done(end) => return Poll::Ready(end),
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One step towards the WebSocket: write what is pending, flush, or read the local socket
    /// (when `read_local`).
    fn step_out(&mut self, cx: &mut Context<'_>, read_local: bool) -> Step {
        let out = &mut self.out;
        if out.start < out.end {
            return match Pin::new(&mut self.ws).poll_write(cx, &out.buf[out.start..out.end]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Step::Done(End::PeerGone),
                Poll::Ready(Ok(n)) => {
                    out.start += n;
                    out.needs_flush = true;
                    Step::Progress
                }
                Poll::Pending => Step::Blocked,
            };
        }
        if out.queued_pos < out.queued.len() {
            return match Pin::new(&mut self.ws).poll_write(cx, &out.queued[out.queued_pos..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Step::Done(End::PeerGone),
                Poll::Ready(Ok(n)) => {
                    out.queued_pos += n;
                    out.needs_flush = true;
                    Step::Progress
                }
                Poll::Pending => Step::Blocked,
            };
        }
        if out.needs_flush {
            return match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    out.needs_flush = false;
                    Step::Progress
                }
                Poll::Ready(Err(_)) => Step::Done(End::PeerGone),
                Poll::Pending => Step::Blocked,
            };
        }
        if !read_local || self.local_eof {
            return Step::Blocked;
        }
        let mut read = ReadBuf::new(&mut out.buf[MAX_HEADER + 1..]);
        match Pin::new(&mut self.local).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                if n == 0 {
                    self.local_eof = true;
                    return Step::Done(End::Local);
                }
                let mask = self.mask_key();
                let out = &mut self.out;
                let len = n + 1;
                let h = header_len(len, mask.is_some());
                let start = MAX_HEADER - h;
                encode_header(&mut out.buf[start..MAX_HEADER], OP_BINARY, len, mask);
                out.buf[MAX_HEADER] = DATA;
                if let Some(mask) = mask {
                    apply_mask(&mut out.buf[MAX_HEADER..MAX_HEADER + len], mask, 0);
                }
                out.start = start;
                out.end = MAX_HEADER + len;
                Step::Progress
            }
            Poll::Ready(Err(_)) => {
                self.local_eof = true;
                Step::Done(End::Local)
            }
            Poll::Pending => Step::Blocked,
        }
    }

    /// One step from the WebSocket: write pending payload to the local socket, parse what was
    /// read, or read more.
    fn step_in(&mut self, cx: &mut Context<'_>) -> Step {
        let inc = &mut self.inc;
        if inc.deliver_start < inc.deliver_end {
            if inc.discard {
                inc.deliver_start = inc.deliver_end;
                return Step::Progress;
            }
            return match Pin::new(&mut self.local)
                .poll_write(cx, &inc.buf[inc.deliver_start..inc.deliver_end])
            {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Step::Done(End::Local),
                Poll::Ready(Ok(n)) => {
                    inc.deliver_start += n;
                    Step::Progress
                }
                Poll::Pending => Step::Blocked,
            };
        }
        if inc.start < inc.end {
            match self.parse() {
                Parsed::Consumed => return Step::Progress,
                Parsed::End(end) => return Step::Done(end),
                Parsed::Broken => return Step::Done(End::PeerGone),
                Parsed::NeedMore => {}
            }
        }
        // Need more bytes: what is left unparsed is part of a header (payloads are consumed
        // as they come), so it moves to the front.
        let inc = &mut self.inc;
        if inc.start == inc.end {
            inc.start = 0;
            inc.end = 0;
        } else if inc.start > 0 {
            inc.buf.copy_within(inc.start..inc.end, 0);
            inc.end -= inc.start;
            inc.start = 0;
        }
        let mut read = ReadBuf::new(&mut inc.buf[inc.end..]);
        match Pin::new(&mut self.ws).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                if n == 0 {
                    return Step::Done(End::PeerGone);
                }
                inc.end += n;
                Step::Progress
            }
            Poll::Ready(Err(_)) => Step::Done(End::PeerGone),
            Poll::Pending => Step::Blocked,
        }
    }

    /// Parses what was read: a frame header, and as much of the current frame's payload as
    /// is there.
    fn parse(&mut self) -> Parsed {
        let role = self.role;
        let inc = &mut self.inc;
        if inc.frame.is_none() {
            let (used, frame) = match parse_header(&inc.buf[inc.start..inc.end]) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Parsed::NeedMore,
                Err(()) => return Parsed::Broken,
            };
            if role == Role::Server && frame.mask.is_none() {
                // A server must refuse unmasked frames from a client (RFC 6455, 5.1).
                return Parsed::Broken;
            }
            match frame.opcode {
                OP_BINARY | OP_TEXT if inc.in_message => return Parsed::Broken,
                OP_BINARY | OP_TEXT => {
                    inc.in_message = true;
                    inc.channel = None;
                }
                OP_CONTINUATION if !inc.in_message => return Parsed::Broken,
                _ => {}
            }
            inc.start += used;
            inc.frame = Some(frame);
            inc.control.clear();
        }
        let frame = inc.frame.as_mut().expect("a frame in progress");
        let available = (inc.end - inc.start) as u64;
        let take = frame.remaining.min(available) as usize;
        if take == 0 && frame.remaining > 0 {
            return Parsed::NeedMore;
        }
        let (from, to) = (inc.start, inc.start + take);
        if let Some(mask) = frame.mask {
            apply_mask(&mut inc.buf[from..to], mask, frame.mask_pos);
        }
        frame.mask_pos += take;
        frame.remaining -= take as u64;
        inc.start = to;
        let complete = frame.remaining == 0;
        let (opcode, fin) = (frame.opcode, frame.fin);
        if complete {
            inc.frame = None;
        }
        if opcode >= OP_CLOSE {
            inc.control.extend_from_slice(&inc.buf[from..to]);
            if !complete {
                return Parsed::Consumed;
            }
            return match opcode {
                OP_CLOSE => Parsed::End(End::PeerClosed),
                OP_PING => {
                    let payload = std::mem::take(&mut self.inc.control);
                    self.queue(OP_PONG, &payload);
                    Parsed::Consumed
                }
                _ => Parsed::Consumed,
            };
        }
        let mut from = from;
        if inc.channel.is_none() && from < to {
            inc.channel = Some(inc.buf[from]);
            from += 1;
        }
        if let Some(channel) = inc.channel
            && let Some(skip) = inc.skip.get_mut(usize::from(channel))
        {
            let cut = (*skip).min(to - from);
            *skip -= cut;
            from += cut;
        }
        match inc.channel {
            Some(DATA) if from < to => {
                inc.deliver_start = from;
                inc.deliver_end = to;
            }
            Some(ERROR) if role == Role::Client && !inc.discard => {
                inc.error.extend_from_slice(&inc.buf[from..to]);
            }
            // Other channels (v5's close signals) carry nothing for us.
            _ => {}
        }
        if complete && fin {
            inc.in_message = false;
            if !inc.error.is_empty() {
                let message = String::from_utf8_lossy(&inc.error).into_owned();
                inc.error.clear();
                return Parsed::End(End::PortError(message));
            }
        }
        Parsed::Consumed
    }

    /// Ends the WebSocket after `end`: sends what is still queued and a Close frame (or the
    /// answer to the peer's), then, when we closed first, reads until the peer's Close, all
    /// within `grace`, so a silent peer cannot hold us.
    pub async fn close(&mut self, end: &End, grace: Duration) {
        if *end == End::PeerGone {
            return;
        }
        self.queue(OP_CLOSE, &[]);
        self.inc.discard = true;
        let answer_awaited = *end != End::PeerClosed;
        let _ = tokio::time::timeout(grace, async {
            let sent = poll_fn(|cx| {
                loop {
                    match self.step_out(cx, false) {
                        Step::Progress => {}
                        Step::Blocked => {
                            let out = &self.out;
                            if out.start == out.end
                                && out.queued_pos == out.queued.len()
                                && !out.needs_flush
                            {
                                return Poll::Ready(true);
                            }
                            return Poll::Pending;
                        }
                        Step::Done(_) => return Poll::Ready(false),
                    }
                }
            })
            .await;
            if !sent || !answer_awaited {
                return;
            }
            poll_fn(|cx| {
                loop {
                    match self.step_in(cx) {
                        Step::Progress => {}
                        Step::Blocked => return Poll::Pending,
                        Step::Done(_) => return Poll::Ready(()),
                    }
                }
            })
            .await;
        })
        .await;
    }
}

/// Reads a frame header at the start of `bytes`: `None` until it is complete, `Err` for one
/// this protocol never sends (reserved bits or opcodes, a fragmented or long control frame).
fn parse_header(bytes: &[u8]) -> Result<Option<(usize, Frame)>, ()> {
    let [b0, b1, ..] = *bytes else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if b0 & 0x70 != 0 || !matches!(opcode, 0x0..=0x2 | 0x8..=0xA) {
        return Err(());
    }
    let mut at = 2;
    let len = match b1 & 0x7F {
        126 => {
            let Some(b) = bytes.get(2..4) else {
                return Ok(None);
            };
            at = 4;
            u64::from(u16::from_be_bytes([b[0], b[1]]))
        }
        127 => {
            let Some(b) = bytes.get(2..10) else {
                return Ok(None);
            };
            at = 10;
            u64::from_be_bytes(b.try_into().expect("8 bytes"))
        }
        n => u64::from(n),
    };
    if opcode >= OP_CLOSE && (!fin || len > 125) {
        return Err(());
    }
    let mask = if b1 & 0x80 != 0 {
        let Some(b) = bytes.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some([b[0], b[1], b[2], b[3]])
    } else {
        None
    };
    Ok(Some((
        at,
        Frame {
            opcode,
            fin,
            remaining: len,
            mask,
            mask_pos: 0,
        },
    )))
}

fn header_len(len: usize, masked: bool) -> usize {
    let length = match len {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    2 + length + if masked { 4 } else { 0 }
}

/// Writes the header of a final frame into `dst` (at least [`header_len`] long); returns its
/// length.
fn encode_header(dst: &mut [u8], opcode: u8, len: usize, mask: Option<[u8; 4]>) -> usize {
    dst[0] = 0x80 | opcode;
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut at = match len {
        0..=125 => {
            dst[1] = mask_bit | len as u8;
            2
        }
        126..=0xFFFF => {
            dst[1] = mask_bit | 126;
            dst[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            dst[1] = mask_bit | 127;
            dst[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    };
    if let Some(mask) = mask {
        dst[at..at + 4].copy_from_slice(&mask);
        at += 4;
    }
    at
}

/// XORs `data` with `mask`, `data` starting at byte `offset` of the payload.
fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let m: [u8; 4] = std::array::from_fn(|i| mask[(offset + i) % 4]);
    let wide = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let (chunks, rest) = data.as_chunks_mut::<8>();
    for chunk in chunks {
        *chunk = (u64::from_ne_bytes(*chunk) ^ wide).to_ne_bytes();
    }
    for (i, b) in rest.iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

#[cfg(test)]
mod tests;
