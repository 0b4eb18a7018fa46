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
    /// An HTTP/1 head started in it (its first byte other than the empty lines the parser skips).
    pub started: bool,
    /// A request head ended in it.
    pub completed: bool,
}

/// The most of a header line kept to find the body's length: `Content-Length` with 20 digits
/// fits; a longer line is cut (a length that no longer reads is "not watched").
const LINE_KEEP: usize = 48;

/// Where an HTTP/1 connection stands in the client's bytes.
#[derive(Debug)]
enum H1 {
    /// Between requests: empty lines are skipped, as the parser skips them.
    Waiting,
    /// In a head: the body length its lines announced so far, the line being read (its start),
    /// whether that is the request line, and the last two bytes. No allocation: thousands of
    /// idle connections each carry one.
    Head {
        length: Option<u64>,
        line: [u8; LINE_KEEP],
        line_len: u8,
        request_line: bool,
        tail: [u8; 2],
    },
    /// In a body: the bytes still to come, or `None` when its length is not known from the head
    /// (chunked): the bytes are then not watched until the response.
    Body { remaining: Option<u64> },
}

#[derive(Debug)]
pub(crate) struct HeadWatch {
    protocol: Protocol,
    /// Preface bytes matched so far.
    preface: usize,
    h1: H1,
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
            h1: H1::Waiting,
            frame: [0; 9],
            frame_len: 0,
            skip: 0,
        }
    }

    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// HTTP/1: a head is in progress (started, not ended).
    pub(crate) fn in_head(&self) -> bool {
        matches!(self.h1, H1::Head { .. })
    }

    /// HTTP/1: between requests (no head, no body in progress).
    pub(crate) fn waiting(&self) -> bool {
        matches!(self.h1, H1::Waiting)
    }

    /// HTTP/1: a final response was written. A body of unknown length is over by then; the next
    /// bytes open a new head.
    pub(crate) fn response_written(&mut self) {
        if matches!(self.h1, H1::Body { remaining: None }) {
            self.h1 = H1::Waiting;
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
                seen = self.http1(matched);
            }
        }
        match self.protocol {
            Protocol::Http1 => {
                let more = self.http1(bytes);
                seen.started |= more.started;
                seen.completed |= more.completed;
            }
            Protocol::Http2 => seen.completed |= self.http2(bytes),
            Protocol::Unknown => {}
        }
        seen
    }

    fn http1(&mut self, bytes: &[u8]) -> Seen {
        let mut seen = Seen::default();
        let mut i = 0;
        while i < bytes.len() {
            match &mut self.h1 {
                H1::Waiting => {
                    if matches!(bytes[i], b'\r' | b'\n') {
                        i += 1;
                    } else {
                        seen.started = true;
                        self.h1 = H1::Head {
                            length: Some(0),
                            line: [0; LINE_KEEP],
                            line_len: 0,
                            request_line: true,
                            tail: [0, 0],
                        };
                    }
                }
                H1::Head {
                    length,
                    line,
                    line_len,
                    request_line,
                    tail,
                } => {
                    let b = bytes[i];
                    i += 1;
                    if b == b'\n' && (tail[1] == b'\n' || (tail[1] == b'\r' && tail[0] == b'\n')) {
                        seen.completed = true;
                        self.h1 = match *length {
                            Some(0) => H1::Waiting,
                            remaining => H1::Body { remaining },
                        };
                        continue;
                    }
                    if b == b'\n' {
                        if !*request_line {
                            header_line(&line[..usize::from(*line_len)], length);
                        }
                        *request_line = false;
                        *line_len = 0;
                    } else if usize::from(*line_len) < LINE_KEEP {
                        line[usize::from(*line_len)] = b;
                        *line_len += 1;
                    }
                    *tail = [tail[1], b];
                }
                H1::Body { remaining: Some(n) } => {
                    let take = (*n).min((bytes.len() - i) as u64);
                    *n -= take;
                    i += take as usize;
                    if *n == 0 {
                        self.h1 = H1::Waiting;
                    }
                }
                H1::Body { remaining: None } => i = bytes.len(),
            }
        }
        seen
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

/// What one header line says of the body's length, into `length` (0 until a `Content-Length`;
/// `None` once the body is chunked or its length cannot be read: it is then not watched).
fn header_line(line: &[u8], length: &mut Option<u64>) {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return;
    };
    let name = line[..colon].trim_ascii();
    if name.eq_ignore_ascii_case(b"transfer-encoding") {
        *length = None;
    } else if name.eq_ignore_ascii_case(b"content-length") && length.is_some() {
        *length = std::str::from_utf8(line[colon + 1..].trim_ascii())
            .ok()
            .and_then(|v| v.parse().ok());
    }
}

/// Whether `written` holds nothing but interim (`1xx`) response heads: a `100 Continue` alone does
/// not end a request, one followed by the final response does.
pub(crate) fn only_interim(mut written: &[u8]) -> bool {
    loop {
        if !(written.starts_with(b"HTTP/1.1 1") || written.starts_with(b"HTTP/1.0 1")) {
            return false;
        }
        match written.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) if end + 4 < written.len() => written = &written[end + 4..],
            _ => return true,
        }
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
        let head =
            b"POST /visiodroits HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n<body>\r\n\r\n/";
        for split in 1..head.len() {
            let mut w = HeadWatch::new();
            let a = w.feed(&head[..split]).completed;
            let b = w.feed(&head[split..]).completed;
            assert!(a ^ b, "exactly once, split at {split}");
            assert_eq!(w.protocol(), Protocol::Http1);
            assert!(
                w.waiting(),
                "the body's 11 bytes are read, split at {split}"
            );
        }
        let mut w = HeadWatch::new();
        assert!(w.feed(b"POST / HTTP/1.1\r\nX-Slow: aaaa").started);
        assert!(!w.feed(b"aaaa\r\n").completed, "half a head");
        assert!(w.in_head());
        assert!(w.feed(b"\r\n").completed);
        assert!(w.waiting(), "no body");
        assert!(w.feed(b"GET / HTTP/1.1\n\n").completed, "bare line feeds");
        // A head that starts like the HTTP/2 preface.
        let mut w = HeadWatch::new();
        assert!(!w.feed(b"PRI * HTTP/1.1").completed);
        assert_eq!(w.protocol(), Protocol::Http1);
        assert!(w.feed(b"\r\n\r\n").completed);
    }

    #[test]
    fn empty_lines_before_a_head_are_no_head() {
        let mut w = HeadWatch::new();
        let seen = w.feed(b"\r\n\r\n\n\n");
        assert_eq!(seen, Seen::default(), "skipped, as the parser skips them");
        assert!(w.waiting());
        let seen = w.feed(b"\r\nGET / HTTP/1.1\r\nX: a");
        assert!(seen.started && !seen.completed);
        assert!(w.in_head());
    }

    #[test]
    fn a_head_pipelined_after_a_body_is_watched_from_its_first_byte() {
        let mut w = HeadWatch::new();
        let two = b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdGET / HTTP/1.1\r\nX: half";
        let seen = w.feed(two);
        assert!(seen.completed && seen.started);
        assert!(w.in_head(), "the second head is in progress");
        // A chunked body is not watched until the response.
        let mut w = HeadWatch::new();
        assert!(
            w.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n\r\n\r\n")
                .completed
        );
        assert!(!w.waiting() && !w.in_head());
        w.response_written();
        assert!(w.waiting());
        let mut w = HeadWatch::new();
        w.feed(b"POST / HTTP/1.1\r\ncontent-length: x\r\n\r\n<a/>");
        assert!(
            !w.waiting() && !w.in_head(),
            "an unreadable length: not watched"
        );
        w.response_written();
        assert!(w.waiting());
        let mut w = HeadWatch::new();
        w.feed(b"POST / HTTP/1.1\r\nX-Long: ");
        w.feed(&[b'a'; 200]);
        w.feed(b"\r\ncOnTeNt-LeNgTh:  3 \r\n\r\nabc");
        assert!(w.waiting(), "a long line before; any case and spaces");
    }

    #[test]
    fn interim_responses_alone_do_not_end_a_request() {
        assert!(only_interim(b"HTTP/1.1 100 Continue\r\n\r\n"));
        assert!(!only_interim(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 413 Payload Too Large\r\n\r\n"
        ));
        assert!(!only_interim(b"HTTP/1.1 200 OK\r\n\r\n"));
        assert!(!only_interim(b"<soap:Envelope"));
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
