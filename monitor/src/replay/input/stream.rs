//! Drives pcap-parser's buffered readers through a whole file: refills,
//! buffer growth, end of file, and its errors turned into [`InputError`]s
//! with byte offsets.

use std::io::{self, Read};
use std::ops::ControlFlow;

use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{LegacyPcapReader, PcapError, PcapNGReader};

use super::{Ctx, Format, InputError, Item, MAX_BLOCK, corrupt, read_error};

/// Initial read buffer: large enough that refills (one syscall each) are rare
/// next to the per-frame work, small enough to stay in L2/L3.
const BUFFER: usize = 1 << 20;
/// The buffer must hold a whole block with room to spare.
const MAX_BUFFER: usize = 2 * MAX_BLOCK as usize;

/// Reads `input`, whose leading bytes showed it to be `format`, to its end,
/// the first error, or the first `Break`.
pub(super) fn run(
    format: Format,
    input: impl Read,
    ctx: &mut Ctx,
    each: &mut impl FnMut(Item<'_>) -> ControlFlow<()>,
) -> Result<(), InputError> {
    let mut src = Filling {
        inner: input,
        error: None,
    };
    let outcome = match format {
        Format::Legacy => LegacyPcapReader::new(BUFFER, &mut src)
            .map_err(|e| start_failure(&e))
            .and_then(|mut reader| pump(&mut reader, ctx, each)),
        Format::Ng => PcapNGReader::new(BUFFER, &mut src)
            .map_err(|e| start_failure(&e))
            .and_then(|mut reader| pump(&mut reader, ctx, each)),
    };
    outcome.map_err(|failure| match failure {
        Failure::Input(e) => e,
        Failure::Read { offset } => {
            let e = src
                .error
                .take()
                .unwrap_or_else(|| io::Error::other("read failed"));
            read_error(offset, &e)
        }
    })
}

enum Failure {
    Input(InputError),
    /// pcap-parser drops the `io::Error`; [`Filling`] keeps it.
    Read {
        offset: u64,
    },
}

impl From<InputError> for Failure {
    fn from(e: InputError) -> Self {
        Failure::Input(e)
    }
}

enum Step {
    Consume(usize),
    Refill,
    Grow,
}

fn pump<P: PcapReaderIterator>(
    reader: &mut P,
    ctx: &mut Ctx,
    each: &mut impl FnMut(Item<'_>) -> ControlFlow<()>,
) -> Result<(), Failure> {
    let mut capacity = BUFFER;
    loop {
        let offset = reader.consumed() as u64;
        let data = reader.data();
        if data.is_empty() {
            // pcap-parser's own end-of-file test also wants the buffer
            // shifted, which it is not after `consume_noshift`.
            if reader.reader_exhausted() {
                return Ok(());
            }
            reader.refill().map_err(|_| Failure::Read { offset })?;
            continue;
        }
        let kind = data.first_chunk::<4>().copied().unwrap_or_default();
        ctx.check_framing(data)
            .map_err(|detail| corrupt(offset, detail))?;
        let step = match reader.next() {
            Ok((len, block)) => match ctx.block(block, offset, each)? {
                ControlFlow::Continue(()) => Step::Consume(len),
                ControlFlow::Break(()) => return Ok(()),
            },
            Err(PcapError::Incomplete(_)) => Step::Refill,
            Err(PcapError::BufferTooSmall) => Step::Grow,
            Err(PcapError::Eof) => return Ok(()),
            Err(PcapError::UnexpectedEof) => {
                return Err(Failure::Input(InputError::Truncated {
                    after_records: ctx.report.records,
                    offset,
                }));
            }
            Err(PcapError::ReadError) => return Err(Failure::Read { offset }),
            Err(PcapError::NomError(_, e) | PcapError::OwnedNomError(_, e)) => {
                return Err(corrupt(offset, ctx.malformed(kind, e)).into());
            }
            Err(PcapError::HeaderNotRecognized) => {
                return Err(corrupt(offset, "unrecognised header".into()).into());
            }
        };
        let grow = match step {
            Step::Consume(len) => {
                // Shifting the buffer is left to the next refill, which moves
                // at most one partial block instead of half the buffer.
                reader.consume_noshift(len);
                false
            }
            Step::Refill => {
                let before = reader.data().len();
                reader.refill().map_err(|_| Failure::Read { offset })?;
                // No progress without end of file: the block fills the buffer.
                reader.data().len() == before && !reader.reader_exhausted()
            }
            Step::Grow => true,
        };
        if grow {
            if capacity >= MAX_BUFFER {
                return Err(corrupt(offset, "block larger than the read buffer".into()).into());
            }
            capacity *= 2;
            reader.grow(capacity);
        }
    }
}

/// Maps a failure to read the file header (always at byte 0).
fn start_failure(e: &PcapError<&[u8]>) -> Failure {
    let detail = match e {
        PcapError::ReadError => return Failure::Read { offset: 0 },
        PcapError::Incomplete(_) | PcapError::UnexpectedEof | PcapError::Eof => {
            return Failure::Input(InputError::Truncated {
                after_records: 0,
                offset: 0,
            });
        }
        PcapError::HeaderNotRecognized => "section header byte-order magic is not 1a2b3c4d".into(),
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("malformed file header (failed check: {kind:?})")
        }
        PcapError::BufferTooSmall => "file header larger than the read buffer".into(),
    };
    corrupt(0, detail).into()
}

/// Fills each buffer it is given unless at end of file, so pcap-parser sees a
/// whole first block and takes a short read for end of file; it also keeps
/// the `io::Error` that pcap-parser would reduce to `ReadError`, reporting it
/// only after the bytes read before it.
struct Filling<R> {
    inner: R,
    error: Option<io::Error>,
}

impl<R: Read> Read for Filling<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.error {
            return Err(e.kind().into());
        }
        let (filled, error) = read_full(&mut self.inner, buf);
        match error {
            Some(e) if filled == 0 => {
                let kind = e.kind();
                self.error = Some(e);
                Err(kind.into())
            }
            error => {
                self.error = error;
                Ok(filled)
            }
        }
    }
}

/// Reads until `buf` is full, the input ends, or it fails; what was read
/// before a failure counts.
pub(super) fn read_full(input: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Some(e)),
        }
    }
    (filled, None)
}
