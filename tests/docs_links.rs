//! The contract lives in the repository: every reference in a `.rs` or `.md` file of the workspace
//! points to `docs/contract.md`, never to a file outside the repository, and every section
//! (`§N`), list item (`§N.M`), POST check row (`§4 row R`, `§4 rows R to S`) and anchor
//! (`contract.md#id`) it cites exists in `docs/contract.md`.
//!
//! ```text
//! cargo test --test docs_links
//! ```

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Where the contract lives, relative to the workspace root.
const CONTRACT: &str = "docs/contract.md";

/// Names of files that only exist outside this repository: the contract this workspace was
/// first written from, Kill Bill's OpenAPI file, and the folder both were shared in. This file
/// names them to look for them, so it is the one file the scan skips.
const OUTSIDE: [&str; 3] = ["killbill-usage-api.md", "kbswagger", "../shared"];

/// The workspace root (the facade package is at the root).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` and `.md` file under `dir`, skipping `target/`, hidden folders and
/// `node_modules/` (third-party files of the JavaScript benchmark client).
fn collect(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && name != "node_modules" && !name.starts_with('.') {
                collect(&path, found);
            }
        } else if name.ends_with(".rs") || name.ends_with(".md") {
            found.push(path);
        }
    }
}

/// The scanned files, as (path relative to the root, text), this file excluded.
fn sources() -> Vec<(String, String)> {
    let root = root();
    let mut paths = Vec::new();
    collect(&root, &mut paths);
    let this = root.join(file!());
    let mut files: Vec<(String, String)> = paths
        .into_iter()
        .filter(|path| *path != this)
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let relative = path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
            (relative, text)
        })
        .collect();
    files.sort();
    assert!(
        files.iter().any(|(path, _)| path == CONTRACT),
        "{CONTRACT} is among the scanned files"
    );
    files
}

/// A citation of the contract: `§N`, `§N.M`, and the rows of `§N row R` / `§N rows R to S`.
#[derive(Debug, PartialEq)]
struct Citation {
    section: u32,
    item: Option<u32>,
    /// Row labels as the anchors spell them: `14`, or `7p` for row 7'.
    rows: Vec<String>,
}

impl Citation {
    /// The anchors of `docs/contract.md` this citation needs.
    fn anchors(&self) -> Vec<String> {
        let n = self.section;
        let mut anchors = vec![format!("s{n}")];
        anchors.extend(self.item.map(|m| format!("s{n}-{m}")));
        anchors.extend(self.rows.iter().map(|r| format!("s{n}-row-{r}")));
        anchors
    }
}

/// The decimal number at the start of `text`, and what follows it.
fn number(text: &str) -> Option<(u32, &str)> {
    let end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    Some((text[..end].parse().ok()?, &text[end..]))
}

/// A row label (`14`, `7'`) at the start of `text`, and what follows it.
fn row_label(text: &str) -> Option<(u32, bool, &str)> {
    let (row, rest) = number(text)?;
    Some(match rest.strip_prefix('\'') {
        Some(rest) => (row, true, rest),
        None => (row, false, rest),
    })
}

/// The citation written right after a `§`, or `None` when no section number follows it.
fn citation(after: &str) -> Option<Citation> {
    let (section, mut rest) = number(after)?;
    let mut item = None;
    if let Some((m, tail)) = rest.strip_prefix('.').and_then(number) {
        item = Some(m);
        rest = tail;
    }
    let mut rows = Vec::new();
    let label = |row: u32, prime: bool| if prime { format!("{row}p") } else { row.to_string() };
    if let Some((first, prime, tail)) = rest
        .strip_prefix(" rows ")
        .or_else(|| rest.strip_prefix(" row "))
        .and_then(row_label)
    {
        rows.push(label(first, prime));
        let last = ["-", "–", " to ", " and "]
            .iter()
            .find_map(|sep| tail.strip_prefix(sep))
            .and_then(row_label);
        if let Some((last, last_prime, _)) = last {
            if !prime && !last_prime && first < last {
                rows.extend((first + 1..=last).map(|row| row.to_string()));
            } else {
                rows.push(label(last, last_prime));
            }
        }
    }
    Some(Citation { section, item, rows })
}

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// The anchors (`<a id="…">`) of the contract, and the sections its headings number (`## §N.`).
fn contract_targets(contract: &str) -> (BTreeSet<String>, BTreeSet<u32>) {
    let anchors = contract
        .match_indices("<a id=\"")
        .filter_map(|(at, open)| {
            let rest = &contract[at + open.len()..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect();
    let headings = contract
        .lines()
        .filter(|line| line.starts_with('#'))
        .filter_map(|line| line.split_once('§'))
        .filter_map(|(_, after)| number(after).map(|(n, _)| n))
        .collect();
    (anchors, headings)
}

#[test]
fn no_reference_points_outside_the_repository() {
    let mut problems = Vec::new();
    for (path, text) in sources() {
        for name in OUTSIDE {
            for (at, _) in text.match_indices(name) {
                problems.push(format!(
                    "{path}:{}: names `{name}`, which is not in this repository: cite {CONTRACT} instead",
                    line_of(&text, at)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_cited_section_item_and_row_exists_in_the_contract() {
    let files = sources();
    let contract = &files.iter().find(|(path, _)| path == CONTRACT).unwrap().1;
    let (anchors, headings) = contract_targets(contract);
    // The contract keeps its numbering: §1 to §6, and every row of the POST table.
    for n in 1..=6 {
        assert!(headings.contains(&n), "{CONTRACT} has a heading for §{n}");
    }
    for row in (1..=14).map(|r| r.to_string()).chain(["7p".to_string()]) {
        assert!(
            anchors.contains(&format!("s4-row-{row}")),
            "{CONTRACT} anchors §4 row {row}"
        );
    }

    let mut problems = Vec::new();
    let mut cited = 0;
    for (path, text) in &files {
        let mut cites_here = false;
        for (at, mark) in text.match_indices('§') {
            let line = line_of(text, at);
            // A `§` followed by no number (`§N` in prose about citations) cites nothing.
            let Some(citation) = citation(&text[at + mark.len()..]) else {
                continue;
            };
            cites_here = true;
            cited += 1;
            if !headings.contains(&citation.section) {
                problems.push(format!(
                    "{path}:{line}: cites §{}, which is no heading of {CONTRACT}",
                    citation.section
                ));
            }
            for anchor in citation.anchors() {
                if !anchors.contains(&anchor) {
                    problems.push(format!(
                        "{path}:{line}: {CONTRACT} has no anchor `#{anchor}` for this citation"
                    ));
                }
            }
            let before = text[..at].trim_end();
            let word = before.get(before.len().saturating_sub(4)..);
            if word.is_some_and(|word| word.eq_ignore_ascii_case("spec")) {
                problems.push(format!(
                    "{path}:{line}: \"spec §\" names the old contract: cite {CONTRACT}"
                ));
            }
        }
        if cites_here && !text.contains("contract.md") {
            problems.push(format!(
                "{path}: cites sections with `§` but never says of what: name {CONTRACT}"
            ));
        }
        for (at, link) in text.match_indices("contract.md#") {
            let rest = &text[at + link.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(rest.len());
            if !anchors.contains(&rest[..end]) {
                problems.push(format!(
                    "{path}:{}: links to `#{}`, which {CONTRACT} does not anchor",
                    line_of(text, at),
                    &rest[..end]
                ));
            }
        }
    }
    assert!(cited > 0, "the scan found the workspace's citations of the contract");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn citations_are_read_as_written() {
    let read = |text: &str| citation(text.strip_prefix('§').unwrap());
    let rows = |section, item, rows: &[&str]| {
        Some(Citation {
            section,
            item,
            rows: rows.iter().map(|r| r.to_string()).collect(),
        })
    };
    assert_eq!(read("§4"), rows(4, None, &[]));
    assert_eq!(read("§4."), rows(4, None, &[]));
    assert_eq!(read("§3.5 / §4"), rows(3, Some(5), &[]));
    assert_eq!(read("§4 row 14: the same"), rows(4, None, &["14"]));
    assert_eq!(read("§4 row 7' is"), rows(4, None, &["7p"]));
    assert_eq!(read("§4 rows 11-12: unknown"), rows(4, None, &["11", "12"]));
    assert_eq!(
        read("§4 rows 3 to 9 (7' included)"),
        rows(4, None, &["3", "4", "5", "6", "7", "8", "9"])
    );
    assert_eq!(read("§4 rows 7 and 7'"), rows(4, None, &["7", "7p"]));
    assert_eq!(read("§ alone"), None);
    assert_eq!(
        rows(4, Some(2), &["1"]).unwrap().anchors(),
        ["s4", "s4-2", "s4-row-1"].map(String::from)
    );
}
