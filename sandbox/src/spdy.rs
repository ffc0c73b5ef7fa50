//! SPDY/3.1 framing: the part of it Kubernetes streaming uses.
//!
//! `kubectl port-forward` multiplexes its connections as SPDY streams (through moby/spdystream),
//! either over a plain HTTP upgrade or tunnelled in WebSocket messages. This module turns bytes
//! into [`Frame`]s and back. Header blocks are zlib-compressed with one compression context per
//! direction for the whole connection, primed with the dictionary of the SPDY/3 specification;
//! so a connection needs one [`Decoder`] for what it reads and one [`Encoder`] for what it writes,
//! each fed every frame in order.
//!
//! Not implemented, because Kubernetes clients do not use them: server push, CREDENTIAL frames
//! and flow control (spdystream ignores WINDOW_UPDATE; so does this module's user).

use std::sync::LazyLock;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The protocol version this module speaks.
pub const VERSION: u16 = 3;
/// Flag on SYN_STREAM, SYN_REPLY, HEADERS and DATA: the sender sends nothing more on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// The largest payload of one frame (a 24-bit length).
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;
/// RST_STREAM status: the stream was malformed.
pub const PROTOCOL_ERROR: u32 = 1;
/// RST_STREAM status: the stream is refused.
pub const REFUSED_STREAM: u32 = 3;

/// Uncompressed header blocks larger than this are refused: Kubernetes sends a few short headers.
const MAX_HEADER_BLOCK: usize = 256 * 1024;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

const STREAM_ID: u32 = 0x7fff_ffff;

/// Header names (lowercase, as SPDY requires) and values (several values of one name joined by
/// NUL, as on the wire).
pub type Headers = Vec<(String, String)>;

/// One SPDY frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream: u32,
        associated: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    /// The settings are not interpreted; only their count is kept.
    Settings {
        flags: u8,
        entries: u32,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        stream: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream: u32,
        delta: u32,
    },
    Data {
        stream: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type this module does not know; the spec says to ignore it.
    Unknown {
        kind: u16,
    },
}

/// Why a byte stream is not SPDY/3 this module can read or write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpdyError {
    /// A control frame of another SPDY version.
    Version(u16),
    /// A frame whose fields do not fit its length, or a header block that does not parse.
    Malformed(&'static str),
    /// The header compression stream is broken.
    Compression(String),
    /// A payload or header block over the limits.
    TooLarge,
}

impl std::fmt::Display for SpdyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpdyError::Version(v) => write!(f, "unsupported SPDY version {v}"),
            SpdyError::Malformed(what) => write!(f, "malformed SPDY frame: {what}"),
            SpdyError::Compression(why) => write!(f, "SPDY header compression: {why}"),
            SpdyError::TooLarge => write!(f, "SPDY frame too large"),
        }
    }
}

impl std::error::Error for SpdyError {}

/// The zlib dictionary of SPDY/3 (draft 3, section 2.6.10.1): length-prefixed common header
/// names and values, then common value fragments. Built rather than pasted so it stays readable.
pub static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    const NAMES: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information",
        "204 No Content",
        "301 Moved Permanently",
        "400 Bad Request",
        "401 Unauthorized",
        "403 Forbidden",
        "404 Not Found",
        "500 Internal Server Error",
        "501 Not Implemented",
        "503 Service Unavailable",
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec",
        " 00:00:00",
        " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,",
        "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch",
        "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut dict = Vec::with_capacity(1423);
    for name in NAMES {
        dict.extend_from_slice(&(name.len() as u32).to_be_bytes());
        dict.extend_from_slice(name.as_bytes());
    }
    dict.extend_from_slice(TAIL.as_bytes());
    dict
});

/// Reads frames from one direction of a connection.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            inflate: Decompress::new(true),
        }
    }

    /// Takes one whole frame off the front of `buf`; `None` when `buf` holds less than a frame.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if buf.len() < 8 + len {
            buf.reserve(8 + len - buf.len());
            return Ok(None);
        }
        let mut frame = buf.split_to(8 + len).freeze();
        let first = frame.get_u32();
        let flags = frame.get_u8();
        frame.advance(3);
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream: first & STREAM_ID,
                flags,
                data: frame,
            }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = (first & 0xffff) as u16;
        let need = |n: usize, what: &'static str| {
            if frame.len() < n {
                Err(SpdyError::Malformed(what))
            } else {
                Ok(())
            }
        };
        let parsed = match kind {
            TYPE_SYN_STREAM => {
                need(10, "short SYN_STREAM")?;
                let stream = frame.get_u32() & STREAM_ID;
                let associated = frame.get_u32() & STREAM_ID;
                let priority = frame.get_u8() >> 5;
                frame.advance(1);
                let headers = self.headers(&frame)?;
                Frame::SynStream {
                    stream,
                    associated,
                    priority,
                    flags,
                    headers,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                need(4, "short SYN_REPLY or HEADERS")?;
                let stream = frame.get_u32() & STREAM_ID;
                let headers = self.headers(&frame)?;
                if kind == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream,
                        flags,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => {
                need(8, "short RST_STREAM")?;
                Frame::RstStream {
                    stream: frame.get_u32() & STREAM_ID,
                    status: frame.get_u32(),
                }
            }
            TYPE_SETTINGS => {
                need(4, "short SETTINGS")?;
                let entries = frame.get_u32();
                if (frame.len() as u64) < u64::from(entries) * 8 {
                    return Err(SpdyError::Malformed("SETTINGS shorter than its entries"));
                }
                Frame::Settings { flags, entries }
            }
            TYPE_PING => {
                need(4, "short PING")?;
                Frame::Ping {
                    id: frame.get_u32(),
                }
            }
            TYPE_GOAWAY => {
                need(8, "short GOAWAY")?;
                Frame::GoAway {
                    last_good: frame.get_u32() & STREAM_ID,
                    status: frame.get_u32(),
                }
            }
            TYPE_WINDOW_UPDATE => {
                need(8, "short WINDOW_UPDATE")?;
                Frame::WindowUpdate {
                    stream: frame.get_u32() & STREAM_ID,
                    delta: frame.get_u32() & STREAM_ID,
                }
            }
            other => Frame::Unknown { kind: other },
        };
        Ok(Some(parsed))
    }

    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let block = self.inflate(compressed)?;
        parse_header_block(&block)
    }

    fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 256);
        let mut consumed = 0;
        loop {
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            let result =
                self.inflate
                    .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.inflate.total_in() - in_before) as usize;
            match result {
                Ok(Status::Ok | Status::BufError) => {}
                Ok(Status::StreamEnd) => {
                    return Err(SpdyError::Compression(
                        "the header compression stream ended".into(),
                    ));
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&DICTIONARY)
                        .map_err(|e| SpdyError::Compression(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::TooLarge);
            }
            let progressed =
                self.inflate.total_in() != in_before || self.inflate.total_out() != out_before;
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if !progressed && out.len() < out.capacity() {
                return Err(SpdyError::Compression(
                    "the header block is truncated".into(),
                ));
            }
            out.reserve(out.capacity().max(1024));
        }
    }
}

fn parse_header_block(block: &[u8]) -> Result<Headers, SpdyError> {
    let mut buf = block;
    let take = |buf: &mut &[u8]| -> Result<String, SpdyError> {
        if buf.len() < 4 {
            return Err(SpdyError::Malformed("short header block"));
        }
        let len = buf.get_u32() as usize;
        if buf.len() < len {
            return Err(SpdyError::Malformed("header longer than its block"));
        }
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        buf.advance(len);
        Ok(text)
    };
    if buf.len() < 4 {
        return Err(SpdyError::Malformed("short header block"));
    }
    let count = buf.get_u32() as usize;
    // Every pair takes at least 8 bytes: refuse counts the block cannot hold before allocating.
    if count > buf.len() / 8 {
        return Err(SpdyError::Malformed("more headers than the block holds"));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = take(&mut buf)?;
        let value = take(&mut buf)?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// The value of header `name` (case-insensitive), if present.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Writes frames for one direction of a connection.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        let mut deflate = Compress::new(Compression::best(), true);
        // Cannot fail on a fresh stream: a dictionary is accepted before any input.
        let _ = deflate.set_dictionary(&DICTIONARY);
        Encoder { deflate }
    }

    /// Appends `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), SpdyError> {
        let (kind, flags, body) = match frame {
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                if data.len() > MAX_PAYLOAD {
                    return Err(SpdyError::TooLarge);
                }
                out.put_u32(stream & STREAM_ID);
                out.put_u8(*flags);
                put_u24(out, data.len());
                out.put_slice(data);
                return Ok(());
            }
            Frame::SynStream {
                stream,
                associated,
                priority,
                flags,
                headers,
            } => {
                let mut body = BytesMut::new();
                body.put_u32(stream & STREAM_ID);
                body.put_u32(associated & STREAM_ID);
                body.put_u8((priority & 0x7) << 5);
                body.put_u8(0);
                body.put_slice(&self.header_block(headers)?);
                (TYPE_SYN_STREAM, *flags, body)
            }
            Frame::SynReply {
                stream,
                flags,
                headers,
            }
            | Frame::Headers {
                stream,
                flags,
                headers,
            } => {
                let mut body = BytesMut::new();
                body.put_u32(stream & STREAM_ID);
                body.put_slice(&self.header_block(headers)?);
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    TYPE_SYN_REPLY
                } else {
                    TYPE_HEADERS
                };
                (kind, *flags, body)
            }
            Frame::RstStream { stream, status } => {
                (TYPE_RST_STREAM, 0, two_words(stream & STREAM_ID, *status))
            }
            Frame::Settings { flags, entries } => {
                if *entries != 0 {
                    return Err(SpdyError::Malformed(
                        "only empty SETTINGS frames can be written",
                    ));
                }
                let mut body = BytesMut::new();
                body.put_u32(0);
                (TYPE_SETTINGS, *flags, body)
            }
            Frame::Ping { id } => {
                let mut body = BytesMut::new();
                body.put_u32(*id);
                (TYPE_PING, 0, body)
            }
            Frame::GoAway { last_good, status } => {
                (TYPE_GOAWAY, 0, two_words(last_good & STREAM_ID, *status))
            }
            Frame::WindowUpdate { stream, delta } => (
                TYPE_WINDOW_UPDATE,
                0,
                two_words(stream & STREAM_ID, delta & STREAM_ID),
            ),
            Frame::Unknown { .. } => {
                return Err(SpdyError::Malformed("unknown frames cannot be written"));
            }
        };
        if body.len() > MAX_PAYLOAD {
            return Err(SpdyError::TooLarge);
        }
        out.put_u16(0x8000 | VERSION);
        out.put_u16(kind);
        out.put_u8(flags);
        put_u24(out, body.len());
        out.put_slice(&body);
        Ok(())
    }

    fn header_block(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let mut block = BytesMut::new();
        block.put_u32(headers.len() as u32);
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            block.put_u32(name.len() as u32);
            block.put_slice(name.as_bytes());
            block.put_u32(value.len() as u32);
            block.put_slice(value.as_bytes());
        }
        if block.len() > MAX_HEADER_BLOCK {
            return Err(SpdyError::TooLarge);
        }
        self.deflate(&block)
    }

    fn deflate(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut consumed = 0;
        loop {
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            consumed += (self.deflate.total_in() - before) as usize;
            // zlib has flushed everything once it stops short of filling the output.
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity().max(256));
        }
    }
}

fn put_u24(out: &mut BytesMut, n: usize) {
    out.put_slice(&(n as u32).to_be_bytes()[1..]);
}

fn two_words(a: u32, b: u32) -> BytesMut {
    let mut body = BytesMut::with_capacity(8);
    body.put_u32(a);
    body.put_u32(b);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn roundtrip(frames: &[Frame]) -> Vec<Frame> {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let mut wire = BytesMut::new();
        for f in frames {
            enc.encode(f, &mut wire).expect("encode");
        }
        let mut out = Vec::new();
        while let Some(f) = dec.decode(&mut wire).expect("decode") {
            out.push(f);
        }
        assert!(wire.is_empty(), "bytes left over: {wire:?}");
        out
    }

    #[test]
    fn dictionary_is_the_specified_one() {
        // Length and Adler-32 of the SPDY/3 dictionary: the checksum is what a zlib stream
        // names as its dictionary id, so a wrong byte would break every peer.
        assert_eq!(DICTIONARY.len(), 1423);
        let mut c = Compress::new(Compression::best(), true);
        let adler = c.set_dictionary(&DICTIONARY).expect("dictionary");
        assert_eq!(adler, 0xe3c6_a7c2);
    }

    #[test]
    fn every_frame_survives_a_roundtrip_sharing_the_compression_context() {
        let frames = vec![
            Frame::SynStream {
                stream: 1,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: headers(&[
                    ("streamtype", "error"),
                    ("port", "5432"),
                    ("requestid", "0"),
                ]),
            },
            Frame::SynStream {
                stream: 3,
                associated: 0,
                priority: 7,
                flags: FLAG_FIN,
                headers: headers(&[("streamtype", "data"), ("port", "5432"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream: 3,
                flags: 0,
                headers: vec![],
            },
            Frame::Data {
                stream: 3,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream: 5,
                flags: 0,
                data: Bytes::new(),
            },
            Frame::RstStream {
                stream: 3,
                status: REFUSED_STREAM,
            },
            Frame::Settings {
                flags: 0,
                entries: 0,
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good: 3,
                status: 0,
            },
            Frame::Headers {
                stream: 1,
                flags: 0,
                headers: headers(&[("a", "b\0c")]),
            },
            Frame::WindowUpdate {
                stream: 1,
                delta: 65536,
            },
        ];
        assert_eq!(roundtrip(&frames), frames);
    }

    #[test]
    fn header_names_are_lowercased_on_the_wire() {
        let got = roundtrip(&[Frame::SynReply {
            stream: 1,
            flags: 0,
            headers: headers(&[("StreamType", "data")]),
        }]);
        let Frame::SynReply { headers, .. } = &got[0] else {
            panic!("not a reply: {got:?}");
        };
        assert_eq!(header(headers, "streamtype"), Some("data"));
    }

    #[test]
    fn partial_input_waits_for_the_rest() {
        let mut enc = Encoder::new();
        let mut wire = BytesMut::new();
        enc.encode(
            &Frame::Data {
                stream: 1,
                flags: 0,
                data: Bytes::from_static(b"abcdef"),
            },
            &mut wire,
        )
        .expect("encode");
        let mut dec = Decoder::new();
        let mut part = wire.split_to(10);
        assert_eq!(dec.decode(&mut part).expect("decode"), None);
        part.unsplit(wire);
        assert!(matches!(
            dec.decode(&mut part).expect("decode"),
            Some(Frame::Data { .. })
        ));
    }

    #[test]
    fn a_compressed_block_bigger_than_its_buffer_guess_still_inflates() {
        let big = "x".repeat(100_000);
        let got = roundtrip(&[Frame::Headers {
            stream: 1,
            flags: 0,
            headers: headers(&[("big", &big)]),
        }]);
        let Frame::Headers { headers, .. } = &got[0] else {
            panic!("not headers: {got:?}");
        };
        assert_eq!(header(headers, "big").map(str::len), Some(100_000));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut dec = Decoder::new();
        // A SYN_STREAM of version 2.
        let mut wire = BytesMut::from(&[0x80, 2, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(dec.decode(&mut wire), Err(SpdyError::Version(2)));
        // A SYN_STREAM whose header block is not zlib.
        let mut dec = Decoder::new();
        let mut wire = BytesMut::from(
            &[
                0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4,
            ][..],
        );
        assert!(matches!(
            dec.decode(&mut wire),
            Err(SpdyError::Compression(_))
        ));
        // A PING too short for its id.
        let mut dec = Decoder::new();
        let mut wire = BytesMut::from(&[0x80, 3, 0, 6, 0, 0, 0, 2, 0, 0][..]);
        assert!(matches!(
            dec.decode(&mut wire),
            Err(SpdyError::Malformed(_))
        ));
    }

    #[test]
    fn header_counts_larger_than_the_block_are_refused() {
        let block = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, b'a'];
        assert!(parse_header_block(&block).is_err());
    }

    #[test]
    fn unknown_control_frames_are_skipped() {
        let mut dec = Decoder::new();
        let mut wire = BytesMut::from(&[0x80, 3, 0, 10, 0, 0, 0, 2, 9, 9][..]);
        assert_eq!(
            dec.decode(&mut wire).expect("decode"),
            Some(Frame::Unknown { kind: 10 })
        );
        assert!(wire.is_empty());
    }
}
