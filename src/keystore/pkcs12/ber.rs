//! A small BER reader for PKCS#12: the subset of X.690 that Java, Windows and OpenSSL write
//! (definite and indefinite lengths, OCTET STRINGs in chunks), over borrowed bytes. Every
//! length is checked against the bytes left before it is used; nothing is allocated by a
//! length field; recursion is capped.

use std::borrow::Cow;

/// How deep indefinite lengths and chunked OCTET STRINGs may nest inside one another.
const MAX_DEPTH: u32 = 32;

/// Identifier octets (the first octet of an element) of the types PKCS#12 uses.
pub const INTEGER: u8 = 0x02;
/// OCTET STRING, primitive form.
pub const OCTET_STRING: u8 = 0x04;
/// NULL.
pub const NULL: u8 = 0x05;
/// OBJECT IDENTIFIER.
pub const OID: u8 = 0x06;
/// BMPString (UTF-16, big-endian).
pub const BMP_STRING: u8 = 0x1e;
/// SEQUENCE (always constructed).
pub const SEQUENCE: u8 = 0x30;
/// SET (always constructed).
pub const SET: u8 = 0x31;
/// `[0]`, constructed: an EXPLICIT tag, or an IMPLICIT one on a constructed type.
pub const CONTEXT_0: u8 = 0xa0;
/// `[0]`, primitive: an IMPLICIT tag on a primitive type.
pub const CONTEXT_0_PRIMITIVE: u8 = 0x80;

/// The constructed bit of an identifier octet.
const CONSTRUCTED: u8 = 0x20;

/// One element: its first identifier octet and its content octets (for an indefinite
/// length, the octets between the header and the end-of-contents marker).
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    /// The first identifier octet; for tag numbers of 31 and more its low five bits are all
    /// ones, so it equals none of the constants above.
    pub ident: u8,
    /// The content octets.
    pub content: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A reader over the content of this element.
    pub fn reader(&self) -> Reader<'a> {
        Reader::new(self.content)
    }

    /// The octets of an OCTET STRING (or of a type implicitly tagged in its place): the
    /// content of the primitive form, the chunks of the constructed form put together.
    pub fn octets(&self) -> Result<Cow<'a, [u8]>, String> {
        if self.ident & CONSTRUCTED == 0 {
            return Ok(Cow::Borrowed(self.content));
        }
        let mut out = Vec::new();
        gather(self.content, &mut out, 0)?;
        Ok(Cow::Owned(out))
    }
}

/// Appends the chunks of a constructed OCTET STRING's content to `out`.
fn gather(content: &[u8], out: &mut Vec<u8>, depth: u32) -> Result<(), String> {
    if depth >= MAX_DEPTH {
        return Err(format!(
            "OCTET STRING chunks nested more than {MAX_DEPTH} deep"
        ));
    }
    let mut chunks = Reader::new(content);
    while !chunks.is_empty() {
        let chunk = chunks.any()?;
        match chunk.ident {
            OCTET_STRING => out.extend_from_slice(chunk.content),
            i if i == OCTET_STRING | CONSTRUCTED => gather(chunk.content, out, depth + 1)?,
            other => {
                return Err(format!(
                    "a chunk of an OCTET STRING is {}, not an OCTET STRING",
                    tag_name(other)
                ))
            }
        }
    }
    Ok(())
}

/// Reads elements one after another off a slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { rest: data }
    }

    /// True when every element has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The identifier octet of the next element, if any.
    pub fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element, whatever its type.
    pub fn any(&mut self) -> Result<Tlv<'a>, String> {
        let (tlv, rest) = parse(self.rest, 0)?;
        self.rest = rest;
        Ok(tlv)
    }

    /// The next element, which must start with identifier octet `ident`; `what` names it in
    /// the message otherwise.
    pub fn take(&mut self, ident: u8, what: &str) -> Result<Tlv<'a>, String> {
        match self.peek() {
            None => Err(format!("{what}: missing")),
            Some(found) if found != ident => Err(format!(
                "{what}: {} where {} was expected",
                tag_name(found),
                tag_name(ident)
            )),
            Some(_) => self.any().map_err(|e| format!("{what}: {e}")),
        }
    }

    /// The next element when it starts with `ident`; `None` (nothing read) otherwise.
    pub fn optional(&mut self, ident: u8, what: &str) -> Result<Option<Tlv<'a>>, String> {
        if self.peek() == Some(ident) {
            self.take(ident, what).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The next element, a SEQUENCE, as a reader over its content.
    pub fn sequence(&mut self, what: &str) -> Result<Reader<'a>, String> {
        Ok(self.take(SEQUENCE, what)?.reader())
    }

    /// The content octets of the next element, an OBJECT IDENTIFIER.
    pub fn oid(&mut self, what: &str) -> Result<&'a [u8], String> {
        let oid = self.take(OID, what)?.content;
        if oid.is_empty() {
            return Err(format!("{what}: empty OBJECT IDENTIFIER"));
        }
        Ok(oid)
    }

    /// The octets of the next element, an OCTET STRING in either form.
    pub fn octets(&mut self, what: &str) -> Result<Cow<'a, [u8]>, String> {
        let tlv = match self.peek() {
            Some(i) if i == OCTET_STRING | CONSTRUCTED => self.take(i, what)?,
            _ => self.take(OCTET_STRING, what)?,
        };
        tlv.octets().map_err(|e| format!("{what}: {e}"))
    }

    /// The next element, an INTEGER that must be positive or zero and fit in 64 bits.
    pub fn unsigned(&mut self, what: &str) -> Result<u64, String> {
        let content = self.take(INTEGER, what)?.content;
        match content {
            [] => Err(format!("{what}: empty INTEGER")),
            [first, ..] if first & 0x80 != 0 => Err(format!("{what}: negative INTEGER")),
            _ => {
                let start = content
                    .iter()
                    .position(|&b| b != 0)
                    .unwrap_or(content.len());
                let digits = &content[start..];
                if digits.len() > 8 {
                    return Err(format!("{what}: INTEGER larger than 64 bits"));
                }
                Ok(digits.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
            }
        }
    }
}

/// Reads one element off the front of `input`: the element and what follows it.
fn parse(input: &[u8], depth: u32) -> Result<(Tlv<'_>, &[u8]), String> {
    let (ident, len, body) = header(input)?;
    if ident == 0 {
        return Err("unexpected end-of-contents marker".to_string());
    }
    match len {
        Some(len) => {
            if len > body.len() {
                return Err(format!(
                    "{} of {len} bytes where {} are left (truncated?)",
                    tag_name(ident),
                    body.len()
                ));
            }
            let (content, rest) = body.split_at(len);
            Ok((Tlv { ident, content }, rest))
        }
        None => {
            if ident & CONSTRUCTED == 0 {
                return Err(format!(
                    "{}: indefinite length on a primitive",
                    tag_name(ident)
                ));
            }
            if depth >= MAX_DEPTH {
                return Err(format!(
                    "indefinite lengths nested more than {MAX_DEPTH} deep"
                ));
            }
            let mut cursor = body;
            loop {
                if let [0, 0, after @ ..] = cursor {
                    let content = &body[..body.len() - cursor.len()];
                    return Ok((Tlv { ident, content }, after));
                }
                if cursor.is_empty() {
                    return Err(format!(
                        "{}: no end-of-contents marker (truncated?)",
                        tag_name(ident)
                    ));
                }
                cursor = parse(cursor, depth + 1)?.1;
            }
        }
    }
}

/// The identifier octet, the length (`None` for indefinite) and the bytes after the header.
fn header(input: &[u8]) -> Result<(u8, Option<usize>, &[u8]), String> {
    let (&ident, mut rest) = input
        .split_first()
        .ok_or_else(|| "no element where one was expected (truncated?)".to_string())?;
    if ident & 0x1f == 0x1f {
        // A tag number of 31 or more, in base-128 octets; PKCS#12 uses none, but skipping
        // one inside an attribute must work.
        loop {
            let (&b, tail) = rest
                .split_first()
                .ok_or_else(|| "identifier cut short (truncated?)".to_string())?;
            rest = tail;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let (&first, rest) = rest
        .split_first()
        .ok_or_else(|| format!("{}: no length (truncated?)", tag_name(ident)))?;
    if first < 0x80 {
        return Ok((ident, Some(usize::from(first)), rest));
    }
    if first == 0x80 {
        return Ok((ident, None, rest));
    }
    let count = usize::from(first & 0x7f);
    if count > rest.len() {
        return Err(format!(
            "{}: length cut short (truncated?)",
            tag_name(ident)
        ));
    }
    let (bytes, rest) = rest.split_at(count);
    let mut len: usize = 0;
    for &b in bytes {
        len = len
            .checked_mul(256)
            .map(|n| n | usize::from(b))
            .ok_or_else(|| format!("{}: length does not fit in memory", tag_name(ident)))?;
    }
    Ok((ident, Some(len), rest))
}

/// The bytes after the header of an element starting with `ident`, without checking that
/// its content is all there: for a cheap look at the first bytes of a file.
pub fn skip_header(input: &[u8], ident: u8) -> Option<&[u8]> {
    match header(input) {
        Ok((found, _, rest)) if found == ident => Some(rest),
        _ => None,
    }
}

/// A type named in messages.
pub fn tag_name(ident: u8) -> String {
    match ident {
        INTEGER => "INTEGER".to_string(),
        OCTET_STRING => "OCTET STRING".to_string(),
        0x24 => "OCTET STRING (constructed)".to_string(),
        NULL => "NULL".to_string(),
        OID => "OBJECT IDENTIFIER".to_string(),
        BMP_STRING => "BMPString".to_string(),
        SEQUENCE => "SEQUENCE".to_string(),
        SET => "SET".to_string(),
        0x80..=0x9e => format!("[{}] (primitive)", ident & 0x1f),
        0xa0..=0xbe => format!("[{}]", ident & 0x1f),
        _ => format!("tag 0x{ident:02x}"),
    }
}

/// An OBJECT IDENTIFIER's content octets in dotted form ("1.2.840.113549.1.7.1").
pub fn oid_text(oid: &[u8]) -> String {
    let mut arcs: Vec<u128> = Vec::new();
    let mut value: u128 = 0;
    for &b in oid {
        if value > u128::MAX >> 7 {
            return format!(
                "an OBJECT IDENTIFIER with an arc too large ({} octets)",
                oid.len()
            );
        }
        value = (value << 7) | u128::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    let mut text = arcs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(".");
    if oid.last().is_some_and(|b| b & 0x80 != 0) {
        text.push_str(" (cut short)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(data: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
        parse(data, 0)
    }

    #[test]
    fn definite_lengths_short_and_long() {
        let (tlv, rest) = one(&[0x04, 0x02, 0xaa, 0xbb, 0xcc]).unwrap();
        assert_eq!(
            (tlv.ident, tlv.content, rest),
            (0x04, &[0xaa, 0xbb][..], &[0xcc][..])
        );
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7, 256));
        assert_eq!(one(&long).unwrap().0.content.len(), 256);
        // Non-minimal long form is BER, accepted.
        let (tlv, _) = one(&[0x04, 0x81, 0x01, 0x09]).unwrap();
        assert_eq!(tlv.content, [0x09]);
    }

    #[test]
    fn lengths_past_the_input_are_refused_without_allocating() {
        let err = one(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00]).unwrap_err();
        assert!(err.contains("4294967295 bytes where 1 are left"), "{err}");
        let err = one(&[0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
        assert!(one(&[0x30, 0x82, 0x01]).unwrap_err().contains("cut short"));
        assert!(one(&[0x30]).unwrap_err().contains("no length"));
        assert!(one(&[]).is_err());
        assert!(one(&[0x1f, 0x81])
            .unwrap_err()
            .contains("identifier cut short"));
    }

    #[test]
    fn indefinite_lengths_end_at_their_marker() {
        // SEQUENCE (indefinite) { OCTET STRING 01, SEQUENCE (indefinite) { NULL } } then 0xff
        let data = [
            0x30, 0x80, 0x04, 0x01, 0x01, 0x30, 0x80, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff,
        ];
        let (tlv, rest) = one(&data).unwrap();
        assert_eq!(tlv.content, &data[2..11]);
        assert_eq!(rest, [0xff]);
        let mut inner = tlv.reader();
        assert_eq!(inner.octets("x").unwrap().as_ref(), [0x01]);
        let mut nested = inner.sequence("y").unwrap();
        assert_eq!(nested.any().unwrap().ident, NULL);
        assert!(nested.is_empty() && inner.is_empty());
    }

    #[test]
    fn indefinite_length_faults() {
        assert!(one(&[0x30, 0x80, 0x05, 0x00])
            .unwrap_err()
            .contains("no end-of-contents"));
        assert!(one(&[0x04, 0x80, 0x00, 0x00])
            .unwrap_err()
            .contains("primitive"));
        // A stray end-of-contents marker inside a definite length.
        let mut r = Reader::new(&[0x00, 0x00]);
        assert!(r.any().unwrap_err().contains("end-of-contents"));
        // Nesting beyond the cap is an error, not a stack overflow.
        let deep: Vec<u8> = std::iter::repeat_n([0x30, 0x80], 100_000)
            .flatten()
            .collect();
        assert!(one(&deep).unwrap_err().contains("nested"));
    }

    #[test]
    fn chunked_octet_strings_are_put_together() {
        // [0] IMPLICIT constructed { OCTET STRING "ab", OCTET STRING (constructed) { "c" } }
        let data = [
            0xa0, 0x80, 0x04, 0x02, b'a', b'b', 0x24, 0x03, 0x04, 0x01, b'c', 0x00, 0x00,
        ];
        let (tlv, _) = one(&data).unwrap();
        assert_eq!(tlv.octets().unwrap().as_ref(), b"abc");
        let bad = [0xa0, 0x03, 0x02, 0x01, 0x00];
        assert!(one(&bad)
            .unwrap()
            .0
            .octets()
            .unwrap_err()
            .contains("INTEGER"));
        let deep: Vec<u8> = std::iter::repeat_n([0x24, 0x80], 40).flatten().collect();
        let mut deep = deep;
        deep.extend(std::iter::repeat_n(0, 80));
        assert!(Reader::new(&deep)
            .octets("x")
            .unwrap_err()
            .contains("nested"));
    }

    #[test]
    fn unsigned_integers() {
        let read = |content: &[u8]| {
            let mut data = vec![INTEGER, content.len() as u8];
            data.extend_from_slice(content);
            Reader::new(&data).unsigned("n")
        };
        assert_eq!(read(&[0x08, 0x00]), Ok(2048));
        assert_eq!(read(&[0x00, 0xff]), Ok(255));
        assert_eq!(read(&[0x00; 12]), Ok(0));
        assert_eq!(
            read(&[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Ok(u64::MAX)
        );
        assert!(read(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0])
            .unwrap_err()
            .contains("64 bits"));
        assert!(read(&[0xff]).unwrap_err().contains("negative"));
        assert!(read(&[]).unwrap_err().contains("empty"));
        let err = Reader::new(&[0x04, 0x00])
            .unsigned("iterations")
            .unwrap_err();
        assert_eq!(err, "iterations: OCTET STRING where INTEGER was expected");
    }

    #[test]
    fn oids_in_dotted_form() {
        assert_eq!(
            oid_text(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01]),
            "1.2.840.113549.1.7.1"
        );
        assert_eq!(oid_text(&[0x2b, 0x0e, 0x03, 0x02, 0x1a]), "1.3.14.3.2.26");
        assert_eq!(oid_text(&[0x88, 0x37]), "2.999");
        assert_eq!(oid_text(&[0x2a, 0x86]), "1.2 (cut short)");
        assert!(oid_text(&[0xff; 40]).contains("too large"));
    }

    #[test]
    fn a_cheap_look_at_headers() {
        assert_eq!(
            skip_header(&[0x30, 0x82, 0x10, 0x00, 0x02], SEQUENCE),
            Some(&[0x02][..])
        );
        assert_eq!(
            skip_header(&[0x30, 0x80, 0x02], SEQUENCE),
            Some(&[0x02][..])
        );
        assert_eq!(skip_header(&[0x31, 0x00], SEQUENCE), None);
        assert_eq!(skip_header(&[0x30, 0x82, 0x10], SEQUENCE), None);
    }
}
