//! Reading an import file from an offset, complete lines only (`import --state`, `--follow`).

use std::io::Read;

use super::{parse, Format, Parsed, RowError};

/// Reads an import file from a byte offset, complete lines only, for imports that resume
/// (`--state`) and follow a growing file (`--follow`).
///
/// A CSV file's header is read once, from the start of the file, and applied to every chunk.
/// Line numbers count from the start of the file. A record spanning lines (a quoted field with
/// a newline) is not supported: no valid field has one.
#[derive(Debug)]
pub struct Tail {
    file: std::fs::File,
    format: Format,
    /// The CSV header line, newline included.
    header: Option<Vec<u8>>,
    offset: u64,
    /// Lines before `offset`.
    line: u64,
}

/// A chunk of complete lines that [`Tail::next_chunk`] read: its rows and errors (lines from
/// the start of the file) and the offset just past it.
#[derive(Debug)]
pub struct TailChunk {
    /// The rows and the invalid ones.
    pub parsed: Parsed,
    /// Where the next chunk starts.
    pub end: u64,
    /// The line number of the chunk's first line.
    first_line: u64,
    /// The offset just past each of its lines.
    line_ends: Vec<u64>,
}

impl TailChunk {
    /// The offset just past `line` (a line of this chunk); the chunk's end for any other.
    pub fn end_of_line(&self, line: u64) -> u64 {
        line.checked_sub(self.first_line)
            .and_then(|at| self.line_ends.get(at as usize))
            .copied()
            .unwrap_or(self.end)
    }
}

impl Tail {
    /// Opens `path` to read it from `offset` (0: the start; after the header for CSV).
    /// Fails when the file is shorter than `offset` (truncated or replaced).
    pub fn open(path: &std::path::Path, format: Format, offset: u64) -> Result<Tail, RowError> {
        let fail = |reason: String| RowError { line: 0, reason };
        let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open it: {e}")))?;
        let length = file.metadata().map_err(|e| fail(format!("cannot read it: {e}")))?.len();
        if length < offset {
            return Err(fail(format!(
                "it has {length} bytes, fewer than the {offset} already taken: it was truncated or replaced \
                 (import a new file with another --state directory)"
            )));
        }
        let mut tail = Tail {
            file,
            format,
            header: None,
            offset: 0,
            line: 0,
        };
        tail.read_header()?;
        if offset > tail.offset {
            tail.skip_to(offset).map_err(fail)?;
        }
        Ok(tail)
    }

    /// Where the next chunk starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads a CSV file's header (line 1) once it is complete; checks it.
    fn read_header(&mut self) -> Result<(), RowError> {
        if self.format != Format::Csv || self.header.is_some() {
            return Ok(());
        }
        let mut header = Vec::new();
        let mut block = [0u8; 4096];
        let complete = loop {
            let read = self
                .read_at(header.len() as u64, &mut block)
                .map_err(|reason| RowError { line: 0, reason })?;
            match block[..read].iter().position(|b| *b == b'\n') {
                Some(end) => {
                    header.extend_from_slice(&block[..=end]);
                    break true;
                }
                None if read == 0 => break false,
                None => header.extend_from_slice(&block[..read]),
            }
        };
        if !complete {
            return Ok(());
        }
        let checked = parse(header.as_slice(), Format::Csv);
        if let Some(error) = checked.errors.into_iter().next() {
            return Err(error);
        }
        self.offset = header.len() as u64;
        self.line = 1;
        self.header = Some(header);
        Ok(())
    }

    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> Result<usize, String> {
        use std::io::Seek;
        self.file
            .seek(std::io::SeekFrom::Start(at))
            .and_then(|_| self.file.read(buf))
            .map_err(|e| format!("cannot read it: {e}"))
    }

    /// Moves to `offset`, counting the lines before it.
    fn skip_to(&mut self, offset: u64) -> Result<(), String> {
        let mut buf = vec![0u8; 1 << 20];
        while self.offset < offset {
            let want = buf.len().min((offset - self.offset) as usize);
            let read = self.read_at(self.offset, &mut buf[..want])?;
            if read == 0 {
                return Err(format!("it ends before {offset} bytes"));
            }
            self.line += buf[..read].iter().filter(|b| **b == b'\n').count() as u64;
            self.offset += read as u64;
        }
        Ok(())
    }

    /// Reads the complete lines from the current offset, at most about `max_bytes` of them;
    /// `None` when there is no complete line yet. With `to_end`, a last line without its
    /// newline at the end of the file counts as complete (a finished file).
    pub fn next_chunk(&mut self, max_bytes: usize, to_end: bool) -> Result<Option<TailChunk>, RowError> {
        let fail = |reason: String| RowError { line: 0, reason };
        // A CSV header not complete when opened: try again.
        self.read_header()?;
        if self.format == Format::Csv && self.header.is_none() {
            return Ok(None);
        }
        let length = self
            .file
            .metadata()
            .map_err(|e| fail(format!("cannot read it: {e}")))?
            .len();
        if length < self.offset {
            return Err(fail(format!(
                "it shrank to {length} bytes, fewer than the {} already taken: it was truncated or replaced",
                self.offset
            )));
        }
        let mut buf = vec![0u8; max_bytes.max(1)];
        let read = self.read_at(self.offset, &mut buf).map_err(fail)?;
        buf.truncate(read);
        let take = match buf.iter().rposition(|b| *b == b'\n') {
            Some(last) => last + 1,
            None if to_end && read > 0 && read < max_bytes => read,
            None if read >= max_bytes => {
                return Err(RowError {
                    line: self.line + 1,
                    reason: format!("is longer than {max_bytes} bytes"),
                })
            }
            None => return Ok(None),
        };
        buf.truncate(take);
        let (parsed, shift) = match &self.header {
            Some(header) => {
                let mut text = header.clone();
                text.extend_from_slice(&buf);
                // Line 2 of the text is the chunk's first line.
                (parse(text.as_slice(), Format::Csv), self.line - 1)
            }
            None => (parse(buf.as_slice(), self.format), self.line),
        };
        let mut parsed = parsed;
        for row in &mut parsed.rows {
            row.line += shift;
        }
        for error in &mut parsed.errors {
            if error.line > 0 {
                error.line += shift;
            }
        }
        let start = self.offset;
        let mut line_ends: Vec<u64> = buf
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(at, _)| start + at as u64 + 1)
            .collect();
        if buf.last() != Some(&b'\n') {
            line_ends.push(start + take as u64);
        }
        let first_line = self.line + 1;
        self.line += buf.iter().filter(|b| **b == b'\n').count() as u64;
        self.offset += take as u64;
        Ok(Some(TailChunk {
            parsed,
            end: self.offset,
            first_line,
            line_ends,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";

    #[test]
    fn a_tail_takes_whole_lines_numbers_them_from_the_start_and_resumes() {
        let path = std::env::temp_dir().join(format!(
            "kb-usage-tail-{}-{}.csv",
            std::process::id(),
            fastrand::u64(..)
        ));
        let header = "subscription_id,unit_type,record_date,amount\n";
        let good = |day: u32| format!("{SUB},gallons,2013-08-{day:02},1\n");
        std::fs::write(&path, format!("{header}{}bad\n{}{SUB},gall", good(1), good(2))).unwrap();
        let mut tail = Tail::open(&path, Format::Csv, 0).unwrap();
        let chunk = tail.next_chunk(1 << 20, false).unwrap().unwrap();
        let lines: Vec<u64> = chunk.parsed.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4]);
        assert_eq!(chunk.parsed.errors[0].line, 3);
        // The half-written line is not taken; the offset stops before it.
        let taken = header.len() + good(1).len() + "bad\n".len() + good(2).len();
        assert_eq!(chunk.end, taken as u64);
        assert_eq!(chunk.end_of_line(2), (header.len() + good(1).len()) as u64);
        assert!(tail.next_chunk(1 << 20, false).unwrap().is_none());
        // Completed, and read again from the offset by a new run: line 5.
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut file, b"ons,2013-08-03,1\n").unwrap();
        let mut resumed = Tail::open(&path, Format::Csv, chunk.end).unwrap();
        let next = resumed.next_chunk(1 << 20, false).unwrap().unwrap();
        assert_eq!(next.parsed.rows.len(), 1);
        assert_eq!(next.parsed.rows[0].line, 5);
        // A file shorter than what was taken is refused.
        std::fs::write(&path, header).unwrap();
        assert!(Tail::open(&path, Format::Csv, chunk.end)
            .unwrap_err()
            .reason
            .contains("truncated"));
        assert!(resumed
            .next_chunk(1 << 20, false)
            .unwrap_err()
            .reason
            .contains("truncated"));
        let _ = std::fs::remove_file(&path);
    }
}
