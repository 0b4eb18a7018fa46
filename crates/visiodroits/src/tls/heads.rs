//! Where a client's request heads end, seen in the bytes it sends (after TLS), so that the
//! connection's deadlines follow requests rather than bytes: an HTTP/1.1 head ends at its empty
//! line; an HTTP/2 request head is a `HEADERS` (or `CONTINUATION`) frame with `END_HEADERS` on a
//! stream. Nothing else is parsed: hyper does the HTTP, this only watches.

/// The HTTP/2 connection preface a client sends first.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Not yet known: the bytes so far are a prefix of the HTTP/2 preface.
    Unknown,
    Http1,
    Http2,
}

/// What a chunk of the client's bytes held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// A request head ended in it.
    pub completed: bool,
}

#[derive(Debug)]
pub(crate) struct HeadWatch {
    protocol: Protocol,
    /// Preface bytes matched so far.
    preface: usize,
    /// HTTP/1: the last two bytes of the head in progress (`\n\n` or `\n\r\n` ends it); `None`
    /// between heads (the body and what follows are not scanned until the next response).
    tail: Option<[u8; 2]>,
    /// HTTP/2: the frame header being read, and the payload bytes still to skip.
    frame: [u8; 9],
    frame_len: usize,
    skip: usize,
}

impl HeadWatch {
    pub(crate) fn new() -> Self {
        HeadWatch {
            protocol: Protocol::Unknown,
            preface: 0,
            tail: Some([0, 0]),
            frame: [0; 9],
            frame_len: 0,
            skip: 0,
        }
    }

    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// HTTP/1: a response was written, the next bytes open a new head.
    pub(crate) fn next_head(&mut self) {
        if self.protocol != Protocol::Http2 {
            self.tail = Some([0, 0]);
        }
    }

    /// Feeds bytes the client sent.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Seen {
        let mut seen = Seen::default();
        if self.protocol == Protocol::Unknown {
            let n = bytes.len().min(PREFACE.len() - self.preface);
            if bytes[..n] == PREFACE[self.preface..self.preface + n] {
                self.preface += n;
                bytes = &bytes[n..];
                if self.preface == PREFACE.len() {
                    self.protocol = Protocol::Http2;
                }
            } else {
                self.protocol = Protocol::Http1;
                // The matched part of the preface was the start of an HTTP/1 head.
                let matched = &PREFACE[..self.preface];
                seen.completed |= self.http1(matched);
            }
        }
        match self.protocol {
            Protocol::Http1 => seen.completed |= self.http1(bytes),
            Protocol::Http2 => seen.completed |= self.http2(bytes),
            Protocol::Unknown => {}
        }
        seen
    }

    fn http1(&mut self, bytes: &[u8]) -> bool {
        let Some(mut tail) = self.tail else {
            return false;
        };
        for &b in bytes {
            if b == b'\n' && (tail[1] == b'\n' || (tail[1] == b'\r' && tail[0] == b'\n')) {
                self.tail = None;
                return true;
            }
            tail = [tail[1], b];
        }
        self.tail = Some(tail);
        false
    }

    fn http2(&mut self, mut bytes: &[u8]) -> bool {
        let mut completed = false;
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.frame_len).min(bytes.len());
            self.frame[self.frame_len..self.frame_len + n].copy_from_slice(&bytes[..n]);
            self.frame_len += n;
            bytes = &bytes[n..];
            if self.frame_len == 9 {
                let f = self.frame;
                self.frame_len = 0;
                self.skip = usize::from(f[0]) << 16 | usize::from(f[1]) << 8 | usize::from(f[2]);
                let (kind, flags) = (f[3], f[4]);
                let stream = u32::from_be_bytes([f[5], f[6], f[7], f[8]]) & 0x7fff_ffff;
                // HEADERS (1) or CONTINUATION (9) closing a stream's header block.
                if matches!(kind, 0x1 | 0x9) && flags & 0x4 != 0 && stream != 0 {
                    completed = true;
                }
            }
        }
        completed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn an_http1_head_ends_at_its_empty_line_whatever_the_chunks() {
        let head = b"POST /visiodroits HTTP/1.1\r\nHost: x\r\n\r\n<body/>\r\n\r\n";
        for split in 1..head.len() {
            let mut w = HeadWatch::new();
            let a = w.feed(&head[..split]).completed;
            let b = w.feed(&head[split..]).completed;
            assert!(a ^ b, "exactly once, split at {split}");
            assert_eq!(w.protocol(), Protocol::Http1);
        }
        let mut w = HeadWatch::new();
        assert!(!w.feed(b"POST / HTTP/1.1\r\nX-Slow: aaaa").completed);
        assert!(!w.feed(b"aaaa\r\n").completed, "half a head");
        assert!(w.feed(b"\r\n").completed);
        assert!(
            !w.feed(b"body\r\n\r\n").completed,
            "the body is not scanned"
        );
        w.next_head();
        assert!(w.feed(b"GET / HTTP/1.1\n\n").completed, "bare line feeds");
        // A head that starts like the HTTP/2 preface.
        let mut w = HeadWatch::new();
        assert!(!w.feed(b"PRI * HTTP/1.1").completed);
        assert_eq!(w.protocol(), Protocol::Http1);
        assert!(w.feed(b"\r\n\r\n").completed);
    }

    #[test]
    fn an_http2_request_head_is_a_headers_block_ending_on_a_stream() {
        let settings = frame(0x4, 0, 0, &[0; 6]);
        let ping = frame(0x6, 0, 0, &[7; 8]);
        let window = frame(0x8, 0, 0, &[0, 0, 1, 0]);
        let headers_open = frame(0x1, 0x0, 1, &[0x82; 40]);
        let continuation = frame(0x9, 0x4, 1, &[0x86; 3]);
        let headers = frame(0x1, 0x5, 3, &[0x82; 20]);
        let mut w = HeadWatch::new();
        assert!(!w.feed(&PREFACE[..10]).completed);
        assert_eq!(w.protocol(), Protocol::Unknown);
        assert!(!w.feed(&PREFACE[10..]).completed);
        assert_eq!(w.protocol(), Protocol::Http2);
        for f in [&settings, &ping, &window, &ping, &headers_open] {
            assert!(!w.feed(f).completed, "{f:?}");
        }
        assert!(w.feed(&continuation).completed);
        // One byte at a time, after a large DATA frame whose payload looks like a header.
        let data = frame(0x0, 0x1, 3, &frame(0x1, 0x4, 5, &[]).repeat(100));
        let stream: Vec<u8> = [data, headers].concat();
        let mut hits = 0;
        for b in &stream {
            hits += usize::from(w.feed(std::slice::from_ref(b)).completed);
        }
        assert_eq!(hits, 1);
    }
}
