//! Where each field of a YAML document is written, so that a finding about
//! `spec.mailboxes[2].address` can name its line and column.
//!
//! serde_yaml gives values but no positions; yaml-rust2's event parser gives positions. The
//! text is parsed by both, and this index only answers "where is this path".

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A place in a file, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Default for Pos {
    fn default() -> Self {
        Pos { line: 1, column: 1 }
    }
}

/// One step into a YAML document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path from a document's root, e.g. `spec.mailboxes[2].address`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Path(pub Vec<Seg>);

impl Path {
    pub fn root() -> Self {
        Path(Vec::new())
    }

    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.into()));
        p
    }

    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    pub fn parent(&self) -> Option<Self> {
        let mut p = self.clone();
        p.0.pop().map(|_| p)
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// What the index knows about one node.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// Where the mapping key naming this node is written.
    key: Option<Pos>,
    /// Where the node's value starts.
    value: Option<Pos>,
    /// True for a scalar value (a finding about it points at the value, not the key).
    scalar: bool,
}

/// Positions of every node of one YAML document.
#[derive(Clone, Debug, Default)]
pub struct PositionIndex {
    entries: HashMap<Path, Entry>,
    /// Where the document starts (its first node, or `---`).
    pub start: Pos,
}

impl PositionIndex {
    /// The best place to show a finding about `path`: the value of a scalar, the key of a
    /// mapping or sequence, or failing that the nearest ancestor that is written down.
    pub fn locate(&self, path: &Path) -> Pos {
        let mut p = Some(path.clone());
        while let Some(cur) = p {
            if let Some(e) = self.entries.get(&cur) {
                let found = if e.scalar {
                    e.value.or(e.key)
                } else {
                    e.key.or(e.value)
                };
                if let Some(pos) = found {
                    return pos;
                }
            }
            p = cur.parent();
        }
        self.start
    }

    /// Where the key of `path` is written, if it is a mapping entry.
    pub fn key_pos(&self, path: &Path) -> Option<Pos> {
        self.entries.get(path).and_then(|e| e.key)
    }

    /// Is `path` written in the document?
    pub fn contains(&self, path: &Path) -> bool {
        self.entries.contains_key(path)
    }
}

/// Index every document of `text`. Returns the indexes of the documents that parsed; on a
/// syntax error the documents before it are still returned, with the error's position.
pub fn index_documents(text: &str) -> (Vec<PositionIndex>, Option<(Pos, String)>) {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let err = parser.load(&mut builder, true).err().map(|e| {
        let m = e.marker();
        (pos(m), e.info().to_owned())
    });
    if let Some(doc) = builder.current.take() {
        builder.docs.push(doc);
    }
    (builder.docs, err)
}

fn pos(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        column: m.col() + 1,
    }
}

/// A container being filled while events stream in.
enum Frame {
    Map {
        path: Path,
        /// The key just read, waiting for its value.
        pending_key: Option<(String, Pos)>,
        /// Nesting depth of a complex (non-scalar) key being skipped.
        skipping: bool,
    },
    Seq {
        path: Path,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    docs: Vec<PositionIndex>,
    current: Option<PositionIndex>,
    stack: Vec<Frame>,
    /// Depth of a complex mapping key's subtree being ignored.
    skip_depth: usize,
}

impl Builder {
    /// The path of the node that the next value event starts, and its key position.
    fn next_path(&mut self) -> Option<(Path, Option<Pos>)> {
        match self.stack.last_mut() {
            None => Some((Path::root(), None)),
            Some(Frame::Seq { path, next }) => {
                let p = path.index(*next);
                *next += 1;
                Some((p, None))
            }
            Some(Frame::Map {
                path, pending_key, ..
            }) => pending_key
                .take()
                .map(|(k, kpos)| (path.key(k), Some(kpos))),
        }
    }

    fn record(&mut self, path: Path, key: Option<Pos>, value: Pos, scalar: bool) {
        if let Some(doc) = self.current.as_mut() {
            doc.entries.insert(
                path,
                Entry {
                    key,
                    value: Some(value),
                    scalar,
                },
            );
        }
    }

    /// A map expects a key: a scalar becomes the pending key; a complex key is skipped.
    fn map_wants_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            })
        )
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = pos(&mark);
        if self.skip_depth > 0 {
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => self.skip_depth += 1,
                Event::MappingEnd | Event::SequenceEnd => self.skip_depth -= 1,
                _ => {}
            }
            if self.skip_depth == 0
                && let Some(Frame::Map {
                    pending_key,
                    skipping,
                    ..
                }) = self.stack.last_mut()
            {
                // The complex key is done; its value still needs a slot.
                *skipping = false;
                *pending_key = Some(("<complex key>".into(), at));
            }
            return;
        }
        match ev {
            Event::DocumentStart => {
                if let Some(doc) = self.current.take() {
                    self.docs.push(doc);
                }
                self.current = Some(PositionIndex {
                    entries: HashMap::new(),
                    start: at,
                });
                self.stack.clear();
            }
            Event::DocumentEnd => {
                if let Some(doc) = self.current.take() {
                    self.docs.push(doc);
                }
            }
            Event::Scalar(text, ..) => {
                if self.map_wants_key() {
                    if let Some(Frame::Map {
                        path, pending_key, ..
                    }) = self.stack.last_mut()
                    {
                        *pending_key = Some((text, at));
                        // yaml-rust2 marks a block mapping after its first key; the mapping
                        // starts where that key does.
                        if let Some(e) = self.current.as_mut().and_then(|d| d.entries.get_mut(path))
                            && e.value.is_none_or(|v| at < v)
                        {
                            e.value = Some(at);
                        }
                    }
                } else if let Some((path, key)) = self.next_path() {
                    self.record(path, key, at, true);
                }
            }
            Event::Alias(_) => {
                if self.map_wants_key() {
                    if let Some(Frame::Map { pending_key, .. }) = self.stack.last_mut() {
                        *pending_key = Some(("<alias>".into(), at));
                    }
                } else if let Some((path, key)) = self.next_path() {
                    self.record(path, key, at, true);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if self.map_wants_key() {
                    if let Some(Frame::Map { skipping, .. }) = self.stack.last_mut() {
                        *skipping = true;
                    }
                    self.skip_depth = 1;
                    return;
                }
                let (path, key) = self.next_path().unwrap_or((Path::root(), None));
                self.record(path.clone(), key, at, false);
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        path,
                        pending_key: None,
                        skipping: false,
                    }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Path {
        Path(
            s.iter()
                .map(|x| match x.parse() {
                    Ok(n) => Seg::Index(n),
                    Err(_) => Seg::Key((*x).into()),
                })
                .collect(),
        )
    }

    #[test]
    fn locates_scalars_at_their_value_and_containers_at_their_key() {
        let text = "spec:\n  source:\n    imap: { host: a, port: 99999 }\n  mailboxes:\n    - address: x@y\n    - address: z@y\n";
        let (docs, err) = index_documents(text);
        assert!(err.is_none());
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(
            d.locate(&p(&["spec", "source", "imap", "port"])),
            Pos {
                line: 3,
                column: 28
            }
        );
        assert_eq!(
            d.locate(&p(&["spec", "mailboxes", "1", "address"])),
            Pos {
                line: 6,
                column: 16
            }
        );
        assert_eq!(
            d.locate(&p(&["spec", "source"])),
            Pos { line: 2, column: 3 }
        );
        // Unknown paths fall back to the nearest written ancestor.
        assert_eq!(
            d.locate(&p(&["spec", "source", "auth", "method"])),
            Pos { line: 2, column: 3 }
        );
    }

    #[test]
    fn indexes_each_document_separately() {
        let text = "a: 1\n---\nb:\n  c: 2\n---\nd: 3\n";
        let (docs, err) = index_documents(text);
        assert!(err.is_none());
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1].locate(&p(&["b", "c"])), Pos { line: 4, column: 6 });
        assert!(!docs[1].contains(&p(&["a"])));
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let (_, err) = index_documents("a: 1\nb: [1, 2\n");
        let (at, _) = err.expect("unterminated flow sequence is an error");
        assert!(at.line >= 2);
    }

    #[test]
    fn complex_keys_do_not_derail_the_index() {
        let text = "? [a, b]\n: 1\nc: 2\n";
        let (docs, _) = index_documents(text);
        assert_eq!(docs[0].locate(&p(&["c"])), Pos { line: 3, column: 4 });
    }

    #[test]
    fn path_display_reads_like_the_manifest() {
        assert_eq!(
            p(&["spec", "mailboxes", "2", "address"]).to_string(),
            "spec.mailboxes[2].address"
        );
    }
}
