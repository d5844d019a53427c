//! Helpers to interface with the `regex` crate.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bstr::ByteSlice;
use ::regex::bytes::{self, Regex, RegexBuilder};
use ::regex::Error; // ferry: the `regex` crate, not `regex-bites`

#[derive(Copy, Clone, Default)]
pub struct Flags {
    // global search
    g: bool,
    // ignore empty matches
    n: bool,
    // case-insensitive
    i: bool,
    // multi-line mode: ^ and $ match begin/end of line
    m: bool,
    // single-line mode: allow . to match \n
    s: bool,
    // greedy
    l: bool,
    // extended mode: ignore whitespace and allow line comments (starting with `#`)
    x: bool,
}

impl Flags {
    pub fn new(flags: &str) -> Result<Self, char> {
        let mut out = Self::default();
        for flag in flags.chars() {
            match flag {
                'g' => out.g = true,
                'n' => out.n = true,
                'i' => out.i = true,
                'm' => out.m = true,
                // ferry: jq's `s` is Oniguruma's single-line mode, which jq's Perl
                // syntax has anyway (`^`/`$` at the ends of the text only): no change.
                's' => (),
                // ferry: jq's `l` asks for the longest match, which the `regex` crate
                // has no mode for; greedy (the default) is the nearest, so no change
                // (jaq swapped greediness, the opposite).
                'l' => (),
                'x' => out.x = true,
                // ferry: jq's `p` is Oniguruma's multi-line mode (`.` matches a newline).
                'p' => out.s = true,
                c => return Err(c),
            }
        }
        Ok(out)
    }

    pub fn ignore_empty(self) -> bool {
        self.n
    }

    pub fn global(self) -> bool {
        self.g
    }

    fn impact(self, builder: &mut RegexBuilder) -> &mut RegexBuilder {
        builder
            .case_insensitive(self.i)
            .multi_line(self.m)
            .dot_matches_new_line(self.s)
            .swap_greed(self.l)
            .ignore_whitespace(self.x)
    }

    pub fn regex(self, re: &str) -> Result<Regex, Error> {
        // ferry: POSIX classes know Unicode, as in Oniguruma (`[[:upper:]]` matches `É`).
        let mut re = re.to_string();
        for (posix, unicode) in POSIX_CLASSES {
            if re.contains(posix) {
                re = re.replace(posix, unicode);
            }
        }
        let mut builder = RegexBuilder::new(&re);
        self.impact(&mut builder).build()
    }
}

/// ferry: POSIX bracket classes and their Unicode equivalents.
const POSIX_CLASSES: [(&str, &str); 7] = [
    ("[:alpha:]", r"\p{Alphabetic}"),
    ("[:upper:]", r"\p{Uppercase}"),
    ("[:lower:]", r"\p{Lowercase}"),
    ("[:alnum:]", r"\p{Alphabetic}\p{Nd}"),
    ("[:digit:]", r"\p{Nd}"),
    ("[:space:]", r"\p{White_Space}"),
    ("[:punct:]", r"\p{P}"),
];

type CharIndices<'a> =
    core::iter::Chain<bstr::CharIndices<'a>, core::iter::Once<(usize, usize, char)>>;

/// Mapping between byte and character indices.
pub struct ByteChar<'a>(core::iter::Peekable<core::iter::Enumerate<CharIndices<'a>>>);

impl<'a> ByteChar<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        let last = core::iter::once((s.len(), 0, '\0'));
        Self(s.char_indices().chain(last).enumerate().peekable())
    }

    /// Convert byte offset to UTF-8 character offset.
    ///
    /// This needs to be called with monotonically increasing values of `byte_offset`.
    fn char_of_byte(&mut self, byte_offset: usize) -> Option<usize> {
        loop {
            let (char_i, (byte_i, _, _char)) = self.0.peek()?;
            if byte_offset == *byte_i {
                return Some(*char_i);
            } else {
                self.0.next();
            }
        }
    }
}

pub struct Match<B, S> {
    pub offset: isize,
    pub length: usize,
    // ferry: `None` for a group that took no part in the match (jq: offset -1, string null).
    pub string: Option<B>,
    pub name: Option<S>,
    // ferry: a capture group (not the whole match): jq gives it a `name`, null if unnamed.
    pub group: bool,
}

impl<'a> Match<&'a [u8], &'a str> {
    pub fn new(bc: &mut ByteChar, m: bytes::Match<'a>, name: Option<&'a str>) -> Self {
        Self {
            offset: bc.char_of_byte(m.start()).unwrap() as isize,
            length: m.as_bytes().chars().count(),
            string: Some(m.as_bytes()),
            name,
            group: false,
        }
    }

    fn missing(name: Option<&'a str>) -> Self {
        Self {
            offset: -1,
            length: 0,
            string: None,
            name,
            group: true,
        }
    }

    pub fn fields<T: From<isize> + From<String> + 'a>(
        &self,
        f: impl Fn(&'a [u8]) -> T,
        null: impl Fn() -> T,
    ) -> impl Iterator<Item = (T, T)> + '_ {
        let offset = ("offset", self.offset.into());
        let length = ("length", (self.length as isize).into());
        // ferry: jq's key order: a missing group has its string before its length.
        let mut fields = match self.string {
            Some(s) => alloc::vec![offset, length, ("string", f(s))],
            None => alloc::vec![offset, ("string", null()), length],
        };
        if self.group {
            let name = self.name.map_or_else(&null, |n| n.to_string().into());
            fields.push(("name", name));
        }
        fields.into_iter().map(|(k, v)| (k.to_string().into(), v))
    }
}

pub enum Part<B, S> {
    Matches(Vec<Match<B, S>>),
    Mismatch(B),
}

/// Apply a regular expression to the given input value.
///
/// `sm` indicates whether to
/// 1. output strings that do *not* match the regex, and
/// 2. output the matches.
pub fn regex<'a>(
    s: &'a [u8],
    re: &'a Regex,
    flags: Flags,
    sm: (bool, bool),
) -> Vec<Part<&'a [u8], &'a str>> {
    // mismatches & matches
    let (mi, ma) = sm;

    let mut last_byte = 0;
    let mut bc = ByteChar::new(s);
    let mut out = Vec::new();

    for c in re.captures_iter(s) {
        let whole = c.get(0).unwrap();
        if flags.ignore_empty() && whole.as_bytes().is_empty() {
            continue;
        }
        let match_names = c.iter().zip(re.capture_names());
        let matches = match_names.enumerate().map(|(i, (m, n))| match m {
            Some(m) => Match {
                group: i > 0,
                ..Match::new(&mut bc, m, n)
            },
            None => Match::missing(n),
        });
        if mi {
            out.push(Part::Mismatch(&s[last_byte..whole.start()]));
            last_byte = whole.end();
        }
        if ma {
            out.push(Part::Matches(matches.collect()));
        }
        if !flags.global() {
            break;
        }
    }
    if mi {
        out.push(Part::Mismatch(&s[last_byte..]));
    }
    out
}
