//! An incremental decoder for HTTP/1.1 `Transfer-Encoding: chunked` bodies (RFC 9112
//! section 7.1), for the hand-written upstream client.
//!
//! The decoder owns no buffer: the caller reads from the connection into a [`BytesMut`]
//! and calls [`ChunkedDecoder::decode`], which takes chunk data off the front of it
//! without copying and consumes the framing (sizes, extensions, CRLFs, trailers). It keeps
//! its place across calls, so the bytes may arrive in pieces of any size, down to one. It
//! never consumes past the end of the body, so a pipelined or reused connection's next
//! response stays in the buffer.
//!
//! Chunk extensions are skipped, not interpreted; trailer fields are discarded.
//!
//! Because the upstream is not trusted to be well-behaved, the decoder is strict and
//! bounded:
//!
//! - every line ends in CRLF: the size line, the CRLF after each chunk's data, each
//!   trailer line and the final empty line. A bare LF, or a CR followed by anything but
//!   LF, is [`ChunkedError::BadCrlf`]. Accepting bare LF would let us and another parser
//!   on the path disagree about where a body ends;
//! - a chunk size must fit in a `u64` ([`ChunkedError::SizeTooLarge`]; leading zeros are
//!   fine);
//! - a size line, hex digits and extensions, is at most [`MAX_SIZE_LINE`] bytes before
//!   its CRLF ([`ChunkedError::LineTooLong`]);
//! - the trailer section, line endings and the final CRLF included, is at most
//!   [`MAX_TRAILERS`] bytes ([`ChunkedError::TrailersTooLarge`]).
//!
//! The decoder cannot tell a body cut short from one still arriving: if the connection
//! ends before [`ChunkedDecoder::is_done`], the body is truncated.

use bytes::{Buf, Bytes, BytesMut};

/// The longest size line accepted, extensions included, CRLF excluded: enough for any
/// extension a real server sends, small enough that a hostile one cannot make us scan
/// without end.
pub const MAX_SIZE_LINE: usize = 4096;

/// The largest trailer section accepted, line endings included: trailers are discarded,
/// so this only bounds the work spent skipping them.
pub const MAX_TRAILERS: usize = 64 * 1024;

/// Why a chunked body could not be decoded.
///
/// Any of these leaves the connection at an unknown position: it must be closed.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum ChunkedError {
    /// The size line does not start with a hex digit, or has something other than
    /// whitespace or an extension after its digits.
    #[error("upstream sent a chunked body with a chunk size that is not a hexadecimal number")]
    BadSize,
    /// The chunk size does not fit in 64 bits.
    #[error("upstream sent a chunked body with a chunk size larger than 64 bits")]
    SizeTooLarge,
    /// The size line is longer than [`MAX_SIZE_LINE`].
    #[error("upstream sent a chunked body with a chunk size line longer than 4096 bytes")]
    LineTooLong,
    /// A line does not end in CRLF, or chunk data is not followed by CRLF.
    #[error("upstream sent a chunked body with a missing CRLF or a bare CR or LF")]
    BadCrlf,
    /// The trailer section is larger than [`MAX_TRAILERS`].
    #[error("upstream sent a chunked body with a trailer section larger than 64 KiB")]
    TrailersTooLarge,
}

/// What one call of `decode` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A piece of chunk data, split off the buffer without copying.
    Data(Bytes),
    /// The buffer holds nothing more to decode: read more and call again.
    NeedMore,
    /// The last chunk and the trailer section are consumed; the connection is positioned
    /// at the next response.
    End,
}

/// Where the decoder is in the body: one state per position in the grammar, so that a
/// call may stop after any byte and the next one picks up there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the chunk size's hex digits; `digits` is whether there was at least one.
    Size { size: u64, digits: bool },
    /// In whitespace after the digits, before an extension or the CR.
    SizeWs { size: u64 },
    /// In an extension, skipped up to the CR.
    Ext { size: u64 },
    /// After the size line's CR.
    SizeLf { size: u64 },
    /// In chunk data, with this many bytes (more than zero) still to come.
    Data { remaining: u64 },
    /// After the chunk data, expecting its CR.
    DataCr,
    /// After the chunk data's CR.
    DataLf,
    /// In the trailer section; `empty` is whether the current line has no bytes yet.
    Trailer { empty: bool },
    /// After a trailer line's CR; `empty` is whether the line was empty (the last one).
    TrailerLf { empty: bool },
    /// The body is over.
    Done,
    /// The body was malformed; every later call reports the same error.
    Failed(ChunkedError),
}

impl Default for State {
    fn default() -> State {
        State::Size {
            size: 0,
            digits: false,
        }
    }
}

impl State {
    /// Whether the state reads framing bytes one at a time (rather than data, or nothing).
    fn is_framing(self) -> bool {
        !matches!(self, State::Data { .. } | State::Done | State::Failed(_))
    }
}

/// Decodes one chunked body; make a new one for each response.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes of the current size line so far, for [`MAX_SIZE_LINE`].
    line: usize,
    /// Bytes of the trailer section so far, for [`MAX_TRAILERS`].
    trailers: usize,
}

impl ChunkedDecoder {
    /// A decoder at the start of a body, before its first size line.
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder::default()
    }

    /// Decodes from the front of `buf`, removing exactly what it consumed (never bytes
    /// past the end of the body's trailer section).
    ///
    /// Returns as much of the current chunk's data as `buf` holds rather than waiting for
    /// the whole chunk, so a large chunk streams through in the pieces it arrived in.
    /// Once it has returned `End` or an error it returns the same again, consuming
    /// nothing.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkedError> {
        loop {
            match self.state {
                State::Failed(e) => return Err(e),
                State::Done => return Ok(Decoded::End),
                _ if buf.is_empty() => return Ok(Decoded::NeedMore),
                State::Data { remaining } => return Ok(Decoded::Data(self.data(buf, remaining))),
                _ => self.framing(buf)?,
            }
        }
    }

    /// True once `End` has been returned.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Splits off as much of the current chunk as `buf` holds; `buf` is not empty and
    /// `remaining` is not zero, so neither is the piece.
    fn data(&mut self, buf: &mut BytesMut, remaining: u64) -> Bytes {
        let n = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let remaining = remaining - n as u64;
        self.state = if remaining == 0 {
            State::DataCr
        } else {
            State::Data { remaining }
        };
        buf.split_to(n).freeze()
    }

    /// Consumes framing bytes until the data of a chunk or the end of the body is
    /// reached, or `buf` runs out.
    fn framing(&mut self, buf: &mut BytesMut) -> Result<(), ChunkedError> {
        let mut used = 0;
        let mut result = Ok(());
        for &b in buf.iter() {
            if !self.state.is_framing() {
                break;
            }
            used += 1;
            if let Err(e) = self.step(b) {
                self.state = State::Failed(e);
                result = Err(e);
                break;
            }
        }
        buf.advance(used);
        result
    }

    /// Moves the state on by one framing byte.
    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        self.count(b)?;
        self.state = match self.state {
            State::Size { size, digits } => size_byte(size, digits, b)?,
            State::SizeWs { size } => after_digits(size, b)?,
            State::Ext { size } => match b {
                b'\r' => State::SizeLf { size },
                b'\n' => return Err(ChunkedError::BadCrlf),
                _ => State::Ext { size },
            },
            State::SizeLf { size } => match (b, size) {
                (b'\n', 0) => State::Trailer { empty: true },
                (b'\n', remaining) => State::Data { remaining },
                _ => return Err(ChunkedError::BadCrlf),
            },
            State::DataCr => expect(b, b'\r', State::DataLf)?,
            State::DataLf => {
                self.line = 0;
                expect(b, b'\n', State::default())?
            }
            State::Trailer { empty } => match b {
                b'\r' => State::TrailerLf { empty },
                b'\n' => return Err(ChunkedError::BadCrlf),
                _ => State::Trailer { empty: false },
            },
            State::TrailerLf { empty: true } => expect(b, b'\n', State::Done)?,
            State::TrailerLf { empty: false } => expect(b, b'\n', State::Trailer { empty: true })?,
            // Not framing states: `framing` stops before reaching them.
            state @ (State::Data { .. } | State::Done | State::Failed(_)) => state,
        };
        Ok(())
    }

    /// Counts `b` against the limit of the line or section it belongs to.
    fn count(&mut self, b: u8) -> Result<(), ChunkedError> {
        match self.state {
            State::Size { .. } | State::SizeWs { .. } | State::Ext { .. } if b != b'\r' => {
                self.line += 1;
                if self.line > MAX_SIZE_LINE {
                    return Err(ChunkedError::LineTooLong);
                }
            }
            State::Trailer { .. } | State::TrailerLf { .. } => {
                self.trailers += 1;
                if self.trailers > MAX_TRAILERS {
                    return Err(ChunkedError::TrailersTooLarge);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A byte of the size line while reading its hex digits.
fn size_byte(size: u64, digits: bool, b: u8) -> Result<State, ChunkedError> {
    match (hex_value(b), digits) {
        (Some(d), _) => {
            let size = size
                .checked_mul(16)
                .and_then(|s| s.checked_add(d))
                .ok_or(ChunkedError::SizeTooLarge)?;
            Ok(State::Size { size, digits: true })
        }
        (None, true) => after_digits(size, b),
        (None, false) => Err(ChunkedError::BadSize),
    }
}

/// A byte of the size line after its digits: whitespace (RFC 9112's BWS before an
/// extension, tolerated before the CR as hyper does), an extension, or the CR.
fn after_digits(size: u64, b: u8) -> Result<State, ChunkedError> {
    match b {
        b' ' | b'\t' => Ok(State::SizeWs { size }),
        b';' => Ok(State::Ext { size }),
        b'\r' => Ok(State::SizeLf { size }),
        b'\n' => Err(ChunkedError::BadCrlf),
        _ => Err(ChunkedError::BadSize),
    }
}

/// The next state if `b` is the `wanted` line-ending byte.
fn expect(b: u8, wanted: u8, next: State) -> Result<State, ChunkedError> {
    if b == wanted {
        Ok(next)
    } else {
        Err(ChunkedError::BadCrlf)
    }
}

fn hex_value(b: u8) -> Option<u64> {
    char::from(b).to_digit(16).map(u64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What decoding an input produced: the data, concatenated, and how it stopped.
    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        data: Vec<u8>,
        result: Result<Decoded, ChunkedError>,
        leftover: Vec<u8>,
    }

    /// Feeds `input` in pieces of `piece` bytes until the body ends, fails, or the input
    /// runs out (then the result is the last `NeedMore`).
    fn decode_in_pieces(input: &[u8], piece: usize) -> Outcome {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut pieces = input.chunks(piece.max(1));
        let mut data = Vec::new();
        // Every call consumes a byte, adds a piece, or ends the loop.
        let max_calls = 2 * input.len() + 2;
        for _ in 0..max_calls {
            match decoder.decode(&mut buf) {
                Ok(Decoded::Data(d)) => {
                    assert!(!d.is_empty(), "empty Data");
                    data.extend_from_slice(&d);
                }
                Ok(Decoded::NeedMore) => {
                    assert!(buf.is_empty(), "NeedMore with bytes left");
                    match pieces.next() {
                        Some(p) => buf.extend_from_slice(p),
                        None => return outcome(data, Ok(Decoded::NeedMore), buf),
                    }
                }
                Ok(Decoded::End) => {
                    assert!(decoder.is_done());
                    buf.extend(pieces.flatten());
                    return outcome(data, Ok(Decoded::End), buf);
                }
                Err(e) => {
                    assert!(!decoder.is_done());
                    assert_eq!(decoder.decode(&mut buf), Err(e), "error not sticky");
                    return outcome(data, Err(e), BytesMut::new());
                }
            }
        }
        panic!("decoder did not terminate on {input:?}");
    }

    fn outcome(data: Vec<u8>, result: Result<Decoded, ChunkedError>, buf: BytesMut) -> Outcome {
        Outcome {
            data,
            result,
            leftover: buf.to_vec(),
        }
    }

    fn whole(input: &[u8]) -> Outcome {
        decode_in_pieces(input, input.len())
    }

    fn ended(data: &[u8], leftover: &[u8]) -> Outcome {
        outcome(data.to_vec(), Ok(Decoded::End), BytesMut::from(leftover))
    }

    fn error(input: &[u8]) -> ChunkedError {
        match whole(input).result {
            Err(e) => e,
            other => panic!("expected an error for {input:?}, got {other:?}"),
        }
    }

    const BODY: &[u8] = b"5\r\nhello\r\n1;a=b\r\n \r\n10\r\n0123456789abcdef\r\n0\r\n\r\n";
    const BODY_DATA: &[u8] = b"hello 0123456789abcdef";

    #[test]
    fn whole_body_in_one_buffer() {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::from(BODY);
        let mut pieces = Vec::new();
        while let Decoded::Data(d) = decoder.decode(&mut buf).unwrap() {
            pieces.push(d);
        }
        assert_eq!(pieces, [&b"hello"[..], b" ", b"0123456789abcdef"]);
        assert!(decoder.is_done());
        assert!(buf.is_empty());
        assert_eq!(decoder.decode(&mut buf), Ok(Decoded::End));
    }

    #[test]
    fn byte_by_byte_yields_the_same_data() {
        assert_eq!(decode_in_pieces(BODY, 1), ended(BODY_DATA, b""));
        for piece in 2..BODY.len() {
            assert_eq!(decode_in_pieces(BODY, piece), whole(BODY), "piece {piece}");
        }
    }

    #[test]
    fn data_is_returned_before_the_chunk_is_complete() {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"a\r\nabc"[..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"abc")))
        );
        assert_eq!(decoder.decode(&mut buf), Ok(Decoded::NeedMore));
        buf.extend_from_slice(b"defghij\r\n0\r\n\r\n");
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"defghij")))
        );
        assert_eq!(decoder.decode(&mut buf), Ok(Decoded::End));
    }

    #[test]
    fn no_empty_data_when_the_buffer_ends_at_a_chunk_boundary() {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"3\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(Decoded::NeedMore));
        assert!(buf.is_empty());
    }

    #[test]
    fn extensions_are_skipped() {
        let body = b"3;name=value\r\nabc\r\n2 ; a ;b=\"x;y=\\\"z\\\"\"\t\r\nde\r\n\
                     1;\r\nf\r\n0;last=\"yes\"\r\n\r\n";
        assert_eq!(whole(body), ended(b"abcdef", b""));
        assert_eq!(decode_in_pieces(body, 1), ended(b"abcdef", b""));
    }

    #[test]
    fn whitespace_after_the_size_is_tolerated() {
        assert_eq!(whole(b"3 \t\r\nabc\r\n0 \r\n\r\n"), ended(b"abc", b""));
    }

    #[test]
    fn trailers_are_skipped() {
        let body = b"3\r\nabc\r\n0\r\nExpires: never\r\nX-Checksum: 1234\r\n\r\n";
        assert_eq!(whole(body), ended(b"abc", b""));
        assert_eq!(decode_in_pieces(body, 1), ended(b"abc", b""));
    }

    #[test]
    fn the_next_response_is_left_in_the_buffer() {
        let next = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        for body in [
            &b"3\r\nabc\r\n0\r\n\r\n"[..],
            b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n",
        ] {
            let input = [body, next].concat();
            assert_eq!(whole(&input), ended(b"abc", next));
            assert_eq!(decode_in_pieces(&input, 1), ended(b"abc", next));
            assert_eq!(decode_in_pieces(&input, 7), ended(b"abc", next));
        }
    }

    #[test]
    fn an_empty_body_is_just_the_last_chunk() {
        assert_eq!(whole(b"0\r\n\r\nrest"), ended(b"", b"rest"));
        assert_eq!(whole(b"000\r\n\r\n"), ended(b"", b""));
    }

    #[test]
    fn hex_is_case_insensitive() {
        let data = [b'x'; 0xab];
        let lower = [&b"ab\r\n"[..], &data, b"\r\n0\r\n\r\n"].concat();
        let upper = [&b"AB\r\n"[..], &data, b"\r\n0\r\n\r\n"].concat();
        let mixed = [&b"aB\r\n"[..], &data, b"\r\n0\r\n\r\n"].concat();
        for input in [lower, upper, mixed] {
            assert_eq!(whole(&input), ended(&data, b""));
        }
    }

    #[test]
    fn leading_zeros_do_not_count_towards_the_size_limit() {
        let input = [&[b'0'; 40][..], b"ffffffffffffffff\r\nab"].concat();
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"ab")))
        );
        assert_eq!(
            decoder.state,
            State::Data {
                remaining: u64::MAX - 2
            }
        );
    }

    #[test]
    fn a_size_past_u64_max_is_too_large() {
        assert_eq!(error(b"10000000000000000\r\n"), ChunkedError::SizeTooLarge);
        assert_eq!(error(b"fffffffffffffffff\r\n"), ChunkedError::SizeTooLarge);
        assert_eq!(
            error(b"0001ffffffffffffffff\r\n"),
            ChunkedError::SizeTooLarge
        );
    }

    #[test]
    fn a_size_that_is_not_hex_is_bad() {
        for input in [
            &b"\r\n"[..],
            b";ext\r\n",
            b" 3\r\n",
            b"-1\r\n",
            b"+1\r\n",
            b"0x10\r\n",
            b"3g\r\n",
            b"3 4\r\n",
            b"3\r\nabc\r\nz\r\n",
        ] {
            assert_eq!(error(input), ChunkedError::BadSize, "{input:?}");
        }
    }

    #[test]
    fn a_size_line_longer_than_the_limit_is_refused() {
        let at_limit = [
            &b"3;"[..],
            &[b'e'; MAX_SIZE_LINE - 2],
            b"\r\nabc\r\n0\r\n\r\n",
        ]
        .concat();
        assert_eq!(whole(&at_limit), ended(b"abc", b""));
        let over = [&b"3;"[..], &[b'e'; MAX_SIZE_LINE - 1], b"\r\n"].concat();
        assert_eq!(error(&over), ChunkedError::LineTooLong);
        let zeros = [&[b'0'; MAX_SIZE_LINE][..], b"3\r\n"].concat();
        assert_eq!(error(&zeros), ChunkedError::LineTooLong);
        // The limit is per line: many lines near it are fine.
        let line = [&b"1;"[..], &[b'e'; MAX_SIZE_LINE - 2], b"\r\nx\r\n"].concat();
        let many = [line.repeat(3), b"0\r\n\r\n".to_vec()].concat();
        assert_eq!(whole(&many), ended(b"xxx", b""));
    }

    #[test]
    fn a_missing_or_bare_line_ending_is_refused() {
        for input in [
            &b"3\nabc\r\n"[..],
            b"3\rabc\r\n",
            b"3;ext\nabc\r\n",
            b"3 \nabc\r\n",
            b"3\r\nabcd\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"3\r\nabc\rx",
            b"0\r\n\n",
            b"0\r\nX-A: 1\n\r\n",
            b"0\r\nX-A: 1\r\r\n",
            b"0\r\n\rx",
        ] {
            assert_eq!(error(input), ChunkedError::BadCrlf, "{input:?}");
        }
    }

    #[test]
    fn trailers_past_the_limit_are_refused() {
        // "0\r\n", then lines of "X: …\r\n", then the final CRLF: exactly the limit.
        let line = [&b"X: "[..], &[b'v'; 1019], b"\r\n"].concat();
        assert_eq!(line.len(), 1024);
        let at_limit = [
            b"0\r\n".to_vec(),
            line.repeat(63),
            vec![b'Y'; 1020],
            b"\r\n\r\n".to_vec(),
        ]
        .concat();
        assert_eq!(whole(&at_limit), ended(b"", b""));
        let over = [
            b"0\r\n".to_vec(),
            line.repeat(63),
            vec![b'Y'; 1021],
            b"\r\n\r\n".to_vec(),
        ]
        .concat();
        assert_eq!(error(&over), ChunkedError::TrailersTooLarge);
        let endless = [b"0\r\n".to_vec(), line.repeat(100)].concat();
        assert_eq!(
            decode_in_pieces(&endless, 1).result,
            Err(ChunkedError::TrailersTooLarge)
        );
    }

    #[test]
    fn errors_are_sticky_and_consume_nothing_more() {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"zz\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf), Err(ChunkedError::BadSize));
        let left = buf.len();
        assert_eq!(decoder.decode(&mut buf), Err(ChunkedError::BadSize));
        assert_eq!(buf.len(), left);
        assert!(!decoder.is_done());
    }

    #[test]
    fn error_messages_blame_the_upstream() {
        for e in [
            ChunkedError::BadSize,
            ChunkedError::SizeTooLarge,
            ChunkedError::LineTooLong,
            ChunkedError::BadCrlf,
            ChunkedError::TrailersTooLarge,
        ] {
            assert!(
                e.to_string().starts_with("upstream sent a chunked body"),
                "{e}"
            );
        }
    }

    /// A small xorshift generator: deterministic, no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// A random well-formed body (sizes, extensions, trailers) and its data.
    fn random_body(rng: &mut XorShift) -> (Vec<u8>, Vec<u8>) {
        let (mut body, mut data) = (Vec::new(), Vec::new());
        for _ in 0..rng.below(5) {
            let chunk: Vec<u8> = (0..1 + rng.below(40)).map(|_| rng.next() as u8).collect();
            let size = match rng.below(3) {
                0 => format!("{:x}", chunk.len()),
                1 => format!("{:X}", chunk.len()),
                _ => format!("00{:x}", chunk.len()),
            };
            body.extend_from_slice(size.as_bytes());
            if rng.below(2) == 0 {
                body.extend_from_slice(b" ;n=\"v;\\\"\";m");
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(&chunk);
            body.extend_from_slice(b"\r\n");
            data.extend_from_slice(&chunk);
        }
        body.extend_from_slice(b"0\r\n");
        for _ in 0..rng.below(3) {
            body.extend_from_slice(b"X-T: a\tb\r\n");
        }
        body.extend_from_slice(b"\r\n");
        (body, data)
    }

    #[test]
    fn random_bodies_decode_and_mutations_never_panic() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut failed = 0;
        for _ in 0..5_000 {
            let (body, data) = random_body(&mut rng);
            let input = [&body[..], b"NEXT"].concat();
            let piece = 1 + rng.below(16);
            assert_eq!(decode_in_pieces(&input, piece), ended(&data, b"NEXT"));
            // One byte changed: whatever the outcome, it must not depend on the split.
            let mut mutated = input.clone();
            let at = rng.below(mutated.len());
            mutated[at] = rng.next() as u8;
            let expected = whole(&mutated);
            failed += usize::from(expected.result.is_err());
            assert_eq!(decode_in_pieces(&mutated, 1), expected, "{mutated:?}");
        }
        // The mutations reach the error paths, not only harmless bytes.
        assert!(failed > 1_000, "{failed}");
    }

    #[test]
    fn garbage_never_panics_and_does_not_depend_on_how_it_is_split() {
        // Bytes from chunked syntax, so the inputs reach every state, and some that are not.
        const ALPHABET: &[u8] = b"0000111fFaA9 \t;=\"\\\r\r\r\n\n\n\nxyz:\x00\xff";
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let len = rng.below(64);
            let input: Vec<u8> = (0..len)
                .map(|_| match round % 2 {
                    0 => ALPHABET[rng.below(ALPHABET.len())],
                    _ => rng.next() as u8,
                })
                .collect();
            let piece = 1 + rng.below(8);
            let expected = whole(&input);
            assert_eq!(decode_in_pieces(&input, piece), expected, "{input:?}");
            assert_eq!(decode_in_pieces(&input, 1), expected, "{input:?}");
        }
    }
}
