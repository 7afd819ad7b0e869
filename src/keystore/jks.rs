//! Java keystores, JKS and JCEKS: the certificates of trusted-certificate entries and the
//! chains of private-key entries; the integrity digest checked when a password is given.
//!
//! Layout (big-endian): magic, version, entry count, the entries, then a SHA-1 digest of
//! the password (UTF-16BE), the words "Mighty Aphrodite" and every byte before it.
//! Certificates are stored in the clear, so the store reads without a password; a password
//! only checks the digest. Private keys are skipped by their length; a JCEKS secret key is
//! a Java serialization stream with no length, skipped by walking its grammar
//! ([`SerialSkipper`]). Whatever stops the walk, the certificates read before stay.

use sha1::{Digest, Sha1};

use super::{Entry, Opened};

/// Magic number of Sun's JKS.
const MAGIC_JKS: u32 = 0xFEED_FEED;
/// Magic number of Sun's JCEKS.
const MAGIC_JCEKS: u32 = 0xCECE_CECE;
/// Bytes of the integrity digest (SHA-1) that ends the store.
const DIGEST_LEN: usize = 20;
/// Bytes of magic, version and entry count.
const HEADER_LEN: usize = 12;
/// What Sun's keystores hash after the password and before the content.
const DIGEST_SALT: &[u8] = b"Mighty Aphrodite";
/// The fewest bytes an entry takes (a version-1 trusted certificate with an empty alias
/// and an empty certificate: tag 4, alias length 2, timestamp 8, certificate length 4).
const MIN_ENTRY_LEN: usize = 18;

/// Entry tag: a private key (skipped) and its certificate chain.
const TAG_PRIVATE_KEY: u32 = 1;
/// Entry tag: one trusted certificate.
const TAG_TRUSTED_CERT: u32 = 2;
/// Entry tag (JCEKS only): a secret key, as a serialized `javax.crypto.SealedObject`.
const TAG_SECRET_KEY: u32 = 3;

/// The one certificate type the stores hold in practice, and the one read.
const CERT_TYPE_X509: &str = "X.509";
/// The certificates read may take this many times the keystore's size in memory (plus
/// [`MEMORY_ALLOWANCE`]). A real store's certificates take about its size.
const MAX_MEMORY_RATIO: usize = 8;
/// Bytes the certificates may take whatever the keystore's size.
const MEMORY_ALLOWANCE: usize = 64 * 1024;
/// Per-entry failures listed one by one; more are counted in one message.
const MAX_ENTRY_ERRORS: usize = 64;
/// Characters of an alias or a type shown in a message.
const MAX_SHOWN_CHARS: usize = 64;

/// See [`super::open`].
pub fn open(data: &[u8], passwords: &[String]) -> Result<Opened, String> {
    let mut r = Reader::new(data);
    let magic = r.u32().map_err(|why| format!("JKS: {why}"))?;
    let (name, jceks) = match magic {
        MAGIC_JKS => ("JKS", false),
        MAGIC_JCEKS => ("JCEKS", true),
        other => {
            return Err(format!(
                "JKS: not a Java keystore: magic number {other:08X}, neither FEEDFEED (JKS) \
                 nor CECECECE (JCEKS)"
            ))
        }
    };
    let version = r.u32().map_err(|why| format!("{name}: {why}"))?;
    let known = if jceks {
        version == 2
    } else {
        version == 1 || version == 2
    };
    if !known {
        let read = if jceks {
            "version 2 is"
        } else {
            "versions 1 and 2 are"
        };
        return Err(format!(
            "{name}: unsupported version {version}: only {read} read"
        ));
    }
    let count = r.u32().map_err(|why| format!("{name}: {why}"))?;
    let store = Store {
        name,
        jceks,
        typed_certs: version == 2,
    };

    let mut found = Found {
        opened: Opened {
            entries: Vec::with_capacity(capped(count, r.left() / MIN_ENTRY_LEN)),
            errors: Vec::new(),
        },
        budget: data
            .len()
            .saturating_mul(MAX_MEMORY_RATIO)
            .saturating_add(MEMORY_ALLOWANCE),
        unlisted: 0,
    };
    // The last entry read whole: its number and alias, for the message when one is not.
    let mut last: Option<(u32, String)> = None;
    let mut stopped = false;
    for number in 1..=count {
        match read_entry(&mut r, &store, number, &mut found) {
            Ok(alias) => last = Some((number, alias)),
            Err(why) => {
                found.opened.errors.push(match &last {
                    Some((n, alias)) => format!(
                        "{name}: the rest of the keystore could not be read after entry {n} \
                         (alias {}): {why}",
                        shown(alias)
                    ),
                    None => format!(
                        "{name}: the keystore could not be read from its first entry: {why}"
                    ),
                });
                stopped = true;
                break;
            }
        }
    }
    let mut opened = found.opened;
    if found.unlisted > 0 {
        opened.errors.push(format!(
            "{name}: {} more certificates of a type other than {CERT_TYPE_X509} skipped (the \
             first {MAX_ENTRY_ERRORS} are listed)",
            found.unlisted
        ));
    }

    if !stopped {
        let (body, rest) = data.split_at(r.pos);
        match rest.get(..DIGEST_LEN) {
            None => opened.errors.push(format!(
                "{name}: truncated: the integrity digest after the last entry (byte {}) \
                 has {} of its {DIGEST_LEN} bytes",
                r.pos,
                rest.len()
            )),
            Some(stored) => {
                if !passwords.is_empty() && !any_password_matches(passwords, body, stored) {
                    return Err(wrong_password(name, passwords));
                }
                // Bytes after the digest are ignored, as Java ignores them.
            }
        }
    } else if !passwords.is_empty() {
        // The entries could not be walked to their end, so the digest is looked for where
        // a whole store has it: the last 20 bytes, over everything before them.
        let verified = data.len() >= HEADER_LEN + DIGEST_LEN && {
            let (body, stored) = data.split_at(data.len() - DIGEST_LEN);
            any_password_matches(passwords, body, stored)
        };
        if !verified {
            opened.errors.push(format!(
                "{name}: integrity not verified: the last {DIGEST_LEN} bytes are not the \
                 digest for any of the {} given passwords nor the empty one (a wrong \
                 password or a damaged keystore)",
                passwords.len()
            ));
        }
    }
    Ok(opened)
}

/// What the header says about how entries are laid out.
struct Store {
    /// "JKS" or "JCEKS", for messages.
    name: &'static str,
    /// JCEKS: secret key entries may appear.
    jceks: bool,
    /// Version 2: each certificate is preceded by its type ("X.509").
    typed_certs: bool,
}

/// What the entries yielded so far, and what more they may yield.
struct Found {
    opened: Opened,
    /// Bytes the certificates found may still take (copies of the alias included): a chain
    /// of a million empty certificates under a long alias must not take gigabytes.
    budget: usize,
    /// Per-entry failures beyond the first [`MAX_ENTRY_ERRORS`], counted, not listed.
    unlisted: u64,
}

impl Found {
    /// Adds a certificate, or says why not: the memory budget is spent.
    fn add(&mut self, alias: &str, der: &[u8]) -> Result<(), String> {
        let cost = alias.len() + der.len() + std::mem::size_of::<Entry>();
        self.budget = self.budget.checked_sub(cost).ok_or_else(|| {
            format!(
                "the certificates take more than {MAX_MEMORY_RATIO} times the keystore's \
                 size (a hostile keystore?)"
            )
        })?;
        self.opened.entries.push(Entry {
            alias: alias.to_string(),
            der: der.to_vec(),
        });
        Ok(())
    }

    /// Records a per-entry failure, listing the first [`MAX_ENTRY_ERRORS`].
    fn error(&mut self, message: String) {
        if self.opened.errors.len() < MAX_ENTRY_ERRORS {
            self.opened.errors.push(message);
        } else {
            self.unlisted += 1;
        }
    }
}

/// Reads entry `number`, adding its certificates (and any per-entry failure that still
/// lets the next entry be found) to `found`; returns its alias. An `Err` means the next
/// entry cannot be found: its message says where and why ("entry 3 (alias \"x\"): ...").
fn read_entry(
    r: &mut Reader<'_>,
    store: &Store,
    number: u32,
    found: &mut Found,
) -> Result<String, String> {
    let tag = r.u32().map_err(|why| format!("entry {number}: {why}"))?;
    let known = match tag {
        TAG_PRIVATE_KEY | TAG_TRUSTED_CERT => true,
        TAG_SECRET_KEY => store.jceks,
        _ => false,
    };
    if !known {
        let tags = if store.jceks { "1, 2 and 3" } else { "1 and 2" };
        return Err(format!(
            "entry {number}: unknown entry type {tag} at byte {} (known: {tags})",
            r.pos.saturating_sub(4)
        ));
    }
    let alias = r.utf().map_err(|why| format!("entry {number}: {why}"))?;
    let shown_alias = shown(&alias);
    let at = |why: String| format!("entry {number} (alias {shown_alias}): {why}");
    r.take(8).map_err(at)?; // the creation time, in ms since 1970

    match tag {
        TAG_PRIVATE_KEY => {
            let key_len = r.u32().map_err(at)?;
            r.take_len(u64::from(key_len))
                .map_err(|why| at(format!("private key: {why}")))?;
            let chain_len = r.u32().map_err(|why| at(format!("chain length: {why}")))?;
            for index in 1..=chain_len {
                let what = format!("certificate {index} of {chain_len} in the chain");
                let skipped = read_cert(r, store, &alias, found)
                    .map_err(|why| at(format!("{what}: {why}")))?;
                if let Some(why) = skipped {
                    found.error(format!("{}: {}", store.name, at(format!("{what}: {why}"))));
                }
            }
        }
        TAG_TRUSTED_CERT => {
            let skipped = read_cert(r, store, &alias, found)
                .map_err(|why| at(format!("certificate: {why}")))?;
            if let Some(why) = skipped {
                found.error(format!(
                    "{}: {}",
                    store.name,
                    at(format!("certificate: {why}"))
                ));
            }
        }
        _ => {
            SerialSkipper::skip_stream(r).map_err(|why| at(format!("secret key: {why}")))?;
        }
    }
    Ok(alias)
}

/// Reads one certificate and adds it to `found` under `alias`; returns why it was skipped
/// instead (not X.509). An `Err` means the reading cannot go on.
fn read_cert(
    r: &mut Reader<'_>,
    store: &Store,
    alias: &str,
    found: &mut Found,
) -> Result<Option<String>, String> {
    let cert_type = if store.typed_certs {
        Some(r.utf()?)
    } else {
        None
    };
    let len = r.u32()?;
    let der = r.take_len(u64::from(len))?;
    match cert_type {
        Some(t) if t != CERT_TYPE_X509 => Ok(Some(format!(
            "of type {}, not {CERT_TYPE_X509}: skipped",
            shown(&t)
        ))),
        _ => found.add(alias, der).map(|()| None),
    }
}

/// `text` quoted for a message, cut after [`MAX_SHOWN_CHARS`] characters: an alias may be
/// 65,535 bytes long.
fn shown(text: &str) -> String {
    match text.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// True when the digest of one of `passwords`, or of the empty password, over `body` is
/// `stored`.
fn any_password_matches(passwords: &[String], body: &[u8], stored: &[u8]) -> bool {
    let empty_given = passwords.iter().any(String::is_empty);
    passwords
        .iter()
        .map(String::as_str)
        .chain((!empty_given).then_some(""))
        .any(|password| integrity_digest(password, body)[..] == *stored)
}

/// The digest Sun's keystores end with: SHA-1 of the password's Java chars (UTF-16,
/// big-endian), the salt, and the store's bytes before the digest.
fn integrity_digest(password: &str, body: &[u8]) -> [u8; DIGEST_LEN] {
    let mut hasher = Sha1::new();
    for unit in password.encode_utf16() {
        hasher.update(unit.to_be_bytes());
    }
    hasher.update(DIGEST_SALT);
    hasher.update(body);
    hasher.finalize().into()
}

/// The message for a digest no password matches.
fn wrong_password(name: &str, passwords: &[String]) -> String {
    format!(
        "{name}: wrong password: the integrity digest matches none of the {} given nor the \
         empty password",
        passwords.len()
    )
}

/// `count`, or `cap` when smaller: a capacity a hostile count cannot inflate.
fn capped(count: u32, cap: usize) -> usize {
    usize::try_from(count).map_or(cap, |count| count.min(cap))
}

/// Java's "modified UTF-8" (`DataInput.readUTF`): UTF-8 of UTF-16 units, NUL as C0 80.
/// Anything malformed becomes U+FFFD.
fn modified_utf8(bytes: &[u8]) -> String {
    let continuation = |i: usize| bytes.get(i).copied().filter(|b| b & 0xC0 == 0x80);
    let mut units = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let (unit, len) = match b {
            0x00..=0x7F => (u16::from(b), 1),
            0xC0..=0xDF => match continuation(i + 1) {
                Some(b1) => ((u16::from(b & 0x1F) << 6) | u16::from(b1 & 0x3F), 2),
                None => (0xFFFD, 1),
            },
            0xE0..=0xEF => match (continuation(i + 1), continuation(i + 2)) {
                (Some(b1), Some(b2)) => (
                    (u16::from(b & 0x0F) << 12)
                        | (u16::from(b1 & 0x3F) << 6)
                        | u16::from(b2 & 0x3F),
                    3,
                ),
                _ => (0xFFFD, 1),
            },
            _ => (0xFFFD, 1),
        };
        units.push(unit);
        i += len;
    }
    String::from_utf16_lossy(&units)
}

/// A cursor over the store's bytes. Every read checks what is left first, so a length
/// field larger than the rest of the file fails without allocating.
struct Reader<'a> {
    data: &'a [u8],
    /// Bytes read so far; never more than `data.len()`.
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Bytes not read yet.
    fn left(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        match self.data.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(format!(
                "truncated at byte {}: {n} bytes needed, {} left",
                self.pos,
                self.left()
            )),
        }
    }

    /// The next `n` bytes, `n` read from the file.
    fn take_len(&mut self, n: u64) -> Result<&'a [u8], String> {
        match usize::try_from(n) {
            Ok(n) => self.take(n),
            Err(_) => Err(format!(
                "truncated at byte {}: {n} bytes needed, {} left",
                self.pos,
                self.left()
            )),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn peek_u8(&self) -> Result<u8, String> {
        self.data
            .get(self.pos)
            .copied()
            .ok_or_else(|| format!("truncated at byte {}: 1 byte needed, 0 left", self.pos))
    }

    fn u16(&mut self) -> Result<u16, String> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_be_bytes)
    }

    /// A Java `writeUTF` string: a u16 length, then modified UTF-8.
    fn utf(&mut self) -> Result<String, String> {
        let len = self.u16()?;
        self.take(usize::from(len)).map(modified_utf8)
    }

    /// Skips a Java `writeUTF` string.
    fn skip_utf(&mut self) -> Result<(), String> {
        let len = self.u16()?;
        self.take(usize::from(len)).map(drop)
    }
}

// Java Object Serialization Stream Protocol (the specification's chapter 6).
const STREAM_MAGIC: u16 = 0xACED;
const STREAM_VERSION: u16 = 5;
const TC_NULL: u8 = 0x70;
const TC_REFERENCE: u8 = 0x71;
const TC_CLASSDESC: u8 = 0x72;
const TC_OBJECT: u8 = 0x73;
const TC_STRING: u8 = 0x74;
const TC_ARRAY: u8 = 0x75;
const TC_CLASS: u8 = 0x76;
const TC_BLOCKDATA: u8 = 0x77;
const TC_ENDBLOCKDATA: u8 = 0x78;
const TC_RESET: u8 = 0x79;
const TC_BLOCKDATALONG: u8 = 0x7A;
const TC_EXCEPTION: u8 = 0x7B;
const TC_LONGSTRING: u8 = 0x7C;
const TC_PROXYCLASSDESC: u8 = 0x7D;
const TC_ENUM: u8 = 0x7E;
/// The first handle a stream assigns.
const BASE_WIRE_HANDLE: u32 = 0x7E_0000;
/// The class has a `writeObject` method: its field values are followed by an annotation.
const SC_WRITE_METHOD: u8 = 0x01;
/// The class is `Serializable`: its field values are in the stream.
const SC_SERIALIZABLE: u8 = 0x02;
/// The class is `Externalizable`: its data is whatever `writeExternal` wrote.
const SC_EXTERNALIZABLE: u8 = 0x04;
/// An externalizable class's data is in block-data mode (protocol 2), so it can be skipped.
const SC_BLOCK_DATA: u8 = 0x08;
/// How deeply objects, class descriptions and annotations may nest. A sealed secret key
/// nests 4 deep; the cap keeps a hostile stream from exhausting the stack.
const MAX_DEPTH: usize = 40;
/// How many classes a class hierarchy may have, so that a cycle of superclass references
/// ends.
const MAX_HIERARCHY: usize = 64;

/// What a stream handle refers to: a class description (whose layout later objects need)
/// or anything else.
enum Handle {
    Class(ClassDesc),
    Other,
}

/// What skipping an instance of a class needs to know.
#[derive(Clone)]
struct ClassDesc {
    /// `SC_*` flags.
    flags: u8,
    /// The type codes of its fields, in stream order.
    fields: Vec<u8>,
    /// For an array class (`[B`, `[Ljava.lang.String;`), its element's type code.
    element: Option<u8>,
    /// The handle of its superclass's description.
    superclass: Option<usize>,
}

/// Skips one serialized object, reading only as much of the grammar as finding its end
/// needs. Nesting is capped at [`MAX_DEPTH`], hierarchies at [`MAX_HIERARCHY`]; every
/// step reads at least one byte, so the work is bounded by the input's length.
struct SerialSkipper<'r, 'a> {
    r: &'r mut Reader<'a>,
    handles: Vec<Handle>,
}

impl<'r, 'a> SerialSkipper<'r, 'a> {
    /// Skips a whole stream: its header, then one object.
    fn skip_stream(r: &'r mut Reader<'a>) -> Result<(), String> {
        let at = r.pos;
        let magic = r.u16()?;
        let version = r.u16()?;
        if magic != STREAM_MAGIC || version != STREAM_VERSION {
            return Err(format!(
                "Java serialization: stream header {magic:04X} {version:04X} at byte {at}, \
                 not ACED 0005"
            ));
        }
        let mut skipper = SerialSkipper {
            r,
            handles: Vec::new(),
        };
        skipper
            .object(0)
            .map_err(|why| format!("Java serialization: {why}"))
    }

    /// Skips one `object` of the grammar (`TC_RESET`s before it allowed at the top).
    fn object(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "nested deeper than {MAX_DEPTH} at byte {}",
                self.r.pos
            ));
        }
        let at = self.r.pos;
        let mut tc = self.r.u8()?;
        while tc == TC_RESET && depth == 0 {
            self.handles.clear();
            tc = self.r.u8()?;
        }
        match tc {
            TC_NULL => Ok(()),
            TC_REFERENCE => self.reference().map(drop),
            TC_CLASSDESC => self.new_class_desc(depth + 1).map(drop),
            TC_PROXYCLASSDESC => self.new_proxy_class_desc(depth + 1).map(drop),
            TC_OBJECT => {
                let class = self.required_class_desc(depth + 1)?;
                self.handles.push(Handle::Other);
                self.class_data(class, depth + 1)
            }
            TC_STRING => {
                self.handles.push(Handle::Other);
                self.r.skip_utf()
            }
            TC_LONGSTRING => {
                self.handles.push(Handle::Other);
                let len = self.r.u64()?;
                self.r.take_len(len).map(drop)
            }
            TC_ARRAY => {
                let class = self.required_class_desc(depth + 1)?;
                self.handles.push(Handle::Other);
                self.array_values(class, depth + 1)
            }
            TC_CLASS => {
                self.class_desc(depth + 1)?;
                self.handles.push(Handle::Other);
                Ok(())
            }
            TC_ENUM => {
                self.required_class_desc(depth + 1)?;
                self.handles.push(Handle::Other);
                self.string(depth + 1)
            }
            TC_EXCEPTION => Err(format!("the writer failed (TC_EXCEPTION) at byte {at}")),
            other => Err(format!(
                "type code {other:02X} at byte {at} where an object was expected"
            )),
        }
    }

    /// Skips a string object (a field's type, an enum constant's name): new or a reference.
    fn string(&mut self, depth: usize) -> Result<(), String> {
        let at = self.r.pos;
        match self.r.peek_u8()? {
            TC_STRING | TC_LONGSTRING | TC_REFERENCE => self.object(depth),
            other => Err(format!(
                "type code {other:02X} at byte {at} where a string was expected"
            )),
        }
    }

    /// Reads a `TC_REFERENCE`'s handle (its tag already read) and returns its index.
    fn reference(&mut self) -> Result<usize, String> {
        let at = self.r.pos;
        let handle = self.r.u32()?;
        handle
            .checked_sub(BASE_WIRE_HANDLE)
            .and_then(|index| usize::try_from(index).ok())
            .filter(|index| *index < self.handles.len())
            .ok_or_else(|| {
                format!(
                    "reference at byte {at} to handle {handle:08X}, of {} assigned",
                    self.handles.len()
                )
            })
    }

    /// Reads a `classDesc` (new, a reference to one, or null) and returns its handle.
    fn class_desc(&mut self, depth: usize) -> Result<Option<usize>, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "nested deeper than {MAX_DEPTH} at byte {}",
                self.r.pos
            ));
        }
        let at = self.r.pos;
        match self.r.u8()? {
            TC_NULL => Ok(None),
            TC_REFERENCE => {
                let index = self.reference()?;
                match self.handles.get(index) {
                    Some(Handle::Class(_)) => Ok(Some(index)),
                    _ => Err(format!(
                        "reference at byte {at} to a handle that is not a class description"
                    )),
                }
            }
            TC_CLASSDESC => self.new_class_desc(depth + 1).map(Some),
            TC_PROXYCLASSDESC => self.new_proxy_class_desc(depth + 1).map(Some),
            other => Err(format!(
                "type code {other:02X} at byte {at} where a class description was expected"
            )),
        }
    }

    /// A `classDesc` that must not be null (an object's, an array's).
    fn required_class_desc(&mut self, depth: usize) -> Result<usize, String> {
        let at = self.r.pos;
        self.class_desc(depth)?
            .ok_or_else(|| format!("null class description at byte {at}"))
    }

    /// Reads a `TC_CLASSDESC` (its tag already read) and returns its handle.
    fn new_class_desc(&mut self, depth: usize) -> Result<usize, String> {
        let name_len = self.r.u16()?;
        let name = self.r.take(usize::from(name_len))?;
        self.r.take(8)?; // serialVersionUID
        let flags = self.r.u8()?;
        let index = self.handles.len();
        self.handles.push(Handle::Class(ClassDesc {
            flags,
            fields: Vec::new(),
            element: match name {
                [b'[', code, ..] => Some(*code),
                _ => None,
            },
            superclass: None,
        }));
        let count = self.r.u16()?;
        let mut fields = Vec::with_capacity(usize::from(count).min(self.r.left() / 3));
        for _ in 0..count {
            let at = self.r.pos;
            let code = self.r.u8()?;
            self.r.skip_utf()?; // the field's name
            match code {
                b'B' | b'C' | b'D' | b'F' | b'I' | b'J' | b'S' | b'Z' => {}
                b'L' | b'[' => self.string(depth + 1)?, // the field's type
                other => {
                    return Err(format!(
                        "field type code {other:02X} at byte {at} is none of BCDFIJSZL["
                    ))
                }
            }
            fields.push(code);
        }
        self.annotation(depth + 1)?;
        let superclass = self.class_desc(depth + 1)?;
        if let Some(Handle::Class(desc)) = self.handles.get_mut(index) {
            desc.fields = fields;
            desc.superclass = superclass;
        }
        Ok(index)
    }

    /// Reads a `TC_PROXYCLASSDESC` (its tag already read) and returns its handle.
    fn new_proxy_class_desc(&mut self, depth: usize) -> Result<usize, String> {
        let index = self.handles.len();
        self.handles.push(Handle::Class(ClassDesc {
            flags: SC_SERIALIZABLE,
            fields: Vec::new(),
            element: None,
            superclass: None,
        }));
        let count = self.r.u32()?;
        for _ in 0..count {
            self.r.skip_utf()?; // an interface's name
        }
        self.annotation(depth + 1)?;
        let superclass = self.class_desc(depth + 1)?;
        if let Some(Handle::Class(desc)) = self.handles.get_mut(index) {
            desc.superclass = superclass;
        }
        Ok(index)
    }

    /// The description behind handle `index`.
    fn class(&self, index: usize) -> Result<&ClassDesc, String> {
        match self.handles.get(index) {
            Some(Handle::Class(desc)) => Ok(desc),
            _ => Err(format!("handle {index} is not a class description")),
        }
    }

    /// Skips block data and objects up to and including `TC_ENDBLOCKDATA`.
    fn annotation(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "nested deeper than {MAX_DEPTH} at byte {}",
                self.r.pos
            ));
        }
        loop {
            match self.r.peek_u8()? {
                TC_ENDBLOCKDATA => {
                    self.r.u8()?;
                    return Ok(());
                }
                TC_BLOCKDATA => {
                    self.r.u8()?;
                    let len = self.r.u8()?;
                    self.r.take(usize::from(len))?;
                }
                TC_BLOCKDATALONG => {
                    self.r.u8()?;
                    let len = self.r.u32()?;
                    self.r.take_len(u64::from(len))?;
                }
                _ => self.object(depth + 1)?,
            }
        }
    }

    /// Skips the data of an object of class `index`: each class's field values from the
    /// topmost superclass down, with the annotation of those that have `writeObject`.
    fn class_data(&mut self, index: usize, depth: usize) -> Result<(), String> {
        let class = self.class(index)?;
        if class.flags & SC_EXTERNALIZABLE != 0 {
            if class.flags & SC_BLOCK_DATA == 0 {
                return Err(format!(
                    "an externalizable object written with stream protocol 1 (byte {}) \
                     cannot be skipped",
                    self.r.pos
                ));
            }
            return self.annotation(depth + 1);
        }
        let mut hierarchy = vec![index];
        let mut next = class.superclass;
        while let Some(up) = next {
            if hierarchy.len() >= MAX_HIERARCHY {
                return Err(format!(
                    "a class hierarchy deeper than {MAX_HIERARCHY} (or a loop) at byte {}",
                    self.r.pos
                ));
            }
            hierarchy.push(up);
            next = self.class(up)?.superclass;
        }
        for &index in hierarchy.iter().rev() {
            let class = self.class(index)?;
            if class.flags & SC_SERIALIZABLE == 0 {
                continue;
            }
            let (fields, write_method) = (class.fields.clone(), class.flags & SC_WRITE_METHOD);
            for code in fields {
                match primitive_size(code) {
                    Some(size) => self.r.take(usize::from(size)).map(drop)?,
                    None => self.object(depth + 1)?,
                }
            }
            if write_method != 0 {
                self.annotation(depth + 1)?;
            }
        }
        Ok(())
    }

    /// Skips an array's length and elements; `index` is its class's handle.
    fn array_values(&mut self, index: usize, depth: usize) -> Result<(), String> {
        let element = self.class(index)?.element;
        let at = self.r.pos;
        let len = self.r.u32()?;
        if len > 0x7FFF_FFFF {
            return Err(format!("negative array length at byte {at}"));
        }
        match element {
            Some(b'L' | b'[') => {
                for _ in 0..len {
                    self.object(depth + 1)?;
                }
                Ok(())
            }
            Some(code) => match primitive_size(code) {
                Some(size) => self.r.take_len(u64::from(len) * u64::from(size)).map(drop),
                None => Err(format!(
                    "array at byte {at} of element type code {code:02X}"
                )),
            },
            None => Err(format!(
                "array at byte {at} of a class that is not an array"
            )),
        }
    }
}

/// The bytes of a primitive field of type `code`; `None` for objects and arrays.
fn primitive_size(code: u8) -> Option<u8> {
    match code {
        b'B' | b'Z' => Some(1),
        b'C' | b'S' => Some(2),
        b'F' | b'I' => Some(4),
        b'D' | b'J' => Some(8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/keystores");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn pw(passwords: &[&str]) -> Vec<String> {
        passwords.iter().map(|p| p.to_string()).collect()
    }

    // -----------------------------------------------------------------------------------
    // Stores by hand

    fn utf(s: &str) -> Vec<u8> {
        let mut out = (s.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(s.as_bytes());
        out
    }

    fn raw_utf(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    fn cert(version: u32, cert_type: &str, der: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if version == 2 {
            out.extend(utf(cert_type));
        }
        out.extend((der.len() as u32).to_be_bytes());
        out.extend_from_slice(der);
        out
    }

    fn trusted(version: u32, alias: &str, der: &[u8]) -> Vec<u8> {
        let mut out = 2u32.to_be_bytes().to_vec();
        out.extend(utf(alias));
        out.extend(1_700_000_000_000u64.to_be_bytes());
        out.extend(cert(version, "X.509", der));
        out
    }

    fn private(version: u32, alias: &str, chain: &[&[u8]]) -> Vec<u8> {
        let mut out = 1u32.to_be_bytes().to_vec();
        out.extend(utf(alias));
        out.extend(1_700_000_000_000u64.to_be_bytes());
        out.extend(5u32.to_be_bytes());
        out.extend(b"key!!");
        out.extend((chain.len() as u32).to_be_bytes());
        for der in chain {
            out.extend(cert(version, "X.509", der));
        }
        out
    }

    fn secret(alias: &str, stream: &[u8]) -> Vec<u8> {
        let mut out = 3u32.to_be_bytes().to_vec();
        out.extend(utf(alias));
        out.extend(1_700_000_000_000u64.to_be_bytes());
        out.extend_from_slice(stream);
        out
    }

    /// Header, entries and the digest for `password` (zeros for `None`).
    fn store(magic: u32, version: u32, entries: &[Vec<u8>], password: Option<&str>) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        out.extend(version.to_be_bytes());
        out.extend((entries.len() as u32).to_be_bytes());
        for entry in entries {
            out.extend(entry);
        }
        let digest = match password {
            Some(p) => integrity_digest(p, &out),
            None => [0; DIGEST_LEN],
        };
        out.extend(digest);
        out
    }

    fn aliases(opened: &Opened) -> Vec<(&str, &[u8])> {
        opened
            .entries
            .iter()
            .map(|e| (e.alias.as_str(), e.der.as_slice()))
            .collect()
    }

    // -----------------------------------------------------------------------------------
    // Real stores (fixtures/keystores/gen.sh)

    /// Checks a keytool store holding a trusted "ca" and "leaf" whose chain is leaf, ca.
    fn check_chain_and_trusted(opened: &Opened) {
        assert!(opened.errors.is_empty(), "{:?}", opened.errors);
        let ca: Vec<&Entry> = opened.entries.iter().filter(|e| e.alias == "ca").collect();
        let leaf: Vec<&Entry> = opened
            .entries
            .iter()
            .filter(|e| e.alias == "leaf")
            .collect();
        assert_eq!((ca.len(), leaf.len(), opened.entries.len()), (1, 2, 3));
        assert_eq!(
            leaf[1].der, ca[0].der,
            "the chain is leaf first, then the CA"
        );
        assert_ne!(leaf[0].der, ca[0].der);
        for entry in &opened.entries {
            assert_eq!(entry.der[0], 0x30, "a DER SEQUENCE");
        }
    }

    #[test]
    fn keytool_jks_reads_without_and_with_the_password() {
        let data = fixture("chain-and-trusted.jks");
        check_chain_and_trusted(&open(&data, &[]).unwrap());
        check_chain_and_trusted(&open(&data, &pw(&["changeit"])).unwrap());
        check_chain_and_trusted(&open(&data, &pw(&["nope", "changeit"])).unwrap());
        let err = open(&data, &pw(&["nope", "also-not"])).unwrap_err();
        assert_eq!(
            err,
            "JKS: wrong password: the integrity digest matches none of the 2 given nor the \
             empty password"
        );
    }

    #[test]
    fn keytool_jceks_skips_the_secret_key() {
        let data = fixture("chain-secret-trusted.jceks");
        check_chain_and_trusted(&open(&data, &[]).unwrap());
        check_chain_and_trusted(&open(&data, &pw(&["changeit"])).unwrap());
        let err = open(&data, &pw(&["nope"])).unwrap_err();
        assert!(err.starts_with("JCEKS: wrong password: "), "{err}");
        assert!(err.contains("none of the 1 given"), "{err}");
    }

    /// Cut `data` at every length: no panic, and every certificate whose bytes end before
    /// the cut is still read, in order, with an error saying the store is truncated.
    fn check_every_truncation(data: &[u8]) {
        let full = open(data, &[]).unwrap();
        assert!(full.errors.is_empty(), "{:?}", full.errors);
        let mut ends = Vec::new();
        let mut from = 0;
        for entry in &full.entries {
            let at = from
                + data[from..]
                    .windows(entry.der.len())
                    .position(|w| w == entry.der)
                    .unwrap();
            from = at + entry.der.len();
            ends.push(from);
        }
        let passwords = pw(&["changeit"]);
        for len in 0..data.len() {
            for given in [&[][..], &passwords[..]] {
                match open(&data[..len], given) {
                    Err(why) => {
                        assert!(len < HEADER_LEN, "cut at {len}: {why}");
                        assert!(why.contains("truncated"), "cut at {len}: {why}");
                    }
                    Ok(opened) => {
                        let kept = ends.iter().filter(|end| **end <= len).count();
                        assert_eq!(opened.entries, full.entries[..kept], "cut at {len}");
                        assert!(
                            opened.errors.iter().any(|e| e.contains("truncated")),
                            "cut at {len}: {:?}",
                            opened.errors
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn truncation_at_every_length_keeps_what_came_before() {
        check_every_truncation(&fixture("chain-and-trusted.jks"));
        check_every_truncation(&fixture("chain-secret-trusted.jceks"));
    }

    #[test]
    fn a_truncated_secret_key_says_where_the_reading_stopped() {
        let data = store(
            MAGIC_JCEKS,
            2,
            &[
                trusted(2, "first", b"cert-1"),
                secret("s", &fixture_stream()),
                trusted(2, "after", b"cert-2"),
            ],
            None,
        );
        let stream_at = data.windows(2).position(|w| w == [0xAC, 0xED]).unwrap();
        let opened = open(&data[..stream_at + 40], &[]).unwrap();
        assert_eq!(aliases(&opened), [("first", &b"cert-1"[..])]);
        assert_eq!(opened.errors.len(), 1);
        assert!(
            opened.errors[0].starts_with(
                "JCEKS: the rest of the keystore could not be read after entry 1 (alias \
                 \"first\"): entry 2 (alias \"s\"): secret key: Java serialization: truncated \
                 at byte"
            ),
            "{}",
            opened.errors[0]
        );
    }

    // -----------------------------------------------------------------------------------
    // Stores by hand

    #[test]
    fn versions_1_and_2_read_in_file_order() {
        for version in [1, 2] {
            let data = store(
                MAGIC_JKS,
                version,
                &[
                    trusted(version, "t1", b"one"),
                    private(version, "key", &[b"leaf", b"mid", b"root"]),
                    private(version, "no-chain", &[]),
                    trusted(version, "t2", b"two"),
                ],
                Some("pw"),
            );
            let opened = open(&data, &pw(&["pw"])).unwrap();
            assert!(opened.errors.is_empty(), "{:?}", opened.errors);
            assert_eq!(
                aliases(&opened),
                [
                    ("t1", &b"one"[..]),
                    ("key", b"leaf"),
                    ("key", b"mid"),
                    ("key", b"root"),
                    ("t2", b"two"),
                ]
            );
        }
    }

    #[test]
    fn aliases_are_modified_utf8() {
        // NUL as C0 80, U+1F600 as a surrogate pair of three bytes each, then a lone
        // continuation byte and a truncated sequence.
        let mut alias = b"a\xC0\x80b".to_vec();
        alias.extend(b"\xED\xA0\xBD\xED\xB8\x80");
        alias.extend(b"\x80z\xE2\x82");
        let mut entry = 2u32.to_be_bytes().to_vec();
        entry.extend(raw_utf(&alias));
        entry.extend(0u64.to_be_bytes());
        entry.extend(cert(2, "X.509", b"der"));
        let opened = open(&store(MAGIC_JKS, 2, &[entry], None), &[]).unwrap();
        assert_eq!(
            opened.entries[0].alias,
            "a\0b\u{1F600}\u{FFFD}z\u{FFFD}\u{FFFD}"
        );
    }

    #[test]
    fn wrong_magic_and_versions_are_refused() {
        let err = open(b"\x30\x82\x01\x00rest", &[]).unwrap_err();
        assert_eq!(
            err,
            "JKS: not a Java keystore: magic number 30820100, neither FEEDFEED (JKS) nor \
             CECECECE (JCEKS)"
        );
        let err = open(&store(MAGIC_JKS, 3, &[], None), &[]).unwrap_err();
        assert_eq!(
            err,
            "JKS: unsupported version 3: only versions 1 and 2 are read"
        );
        let err = open(&store(MAGIC_JCEKS, 1, &[], None), &[]).unwrap_err();
        assert_eq!(err, "JCEKS: unsupported version 1: only version 2 is read");
        let err = open(b"\xFE\xED", &[]).unwrap_err();
        assert_eq!(err, "JKS: truncated at byte 0: 4 bytes needed, 2 left");
        let err = open(b"\xCE\xCE\xCE\xCE\x00\x00\x00\x02\x00", &[]).unwrap_err();
        assert_eq!(err, "JCEKS: truncated at byte 8: 4 bytes needed, 1 left");
    }

    #[test]
    fn an_empty_store_is_fine() {
        let opened = open(&store(MAGIC_JKS, 2, &[], Some("")), &pw(&["x"])).unwrap();
        assert_eq!(opened, Opened::default());
    }

    #[test]
    fn huge_lengths_fail_without_allocating() {
        let first = trusted(2, "first", b"kept");
        // A certificate length of 4 GiB.
        let mut huge_cert = 2u32.to_be_bytes().to_vec();
        huge_cert.extend(utf("big"));
        huge_cert.extend(0u64.to_be_bytes());
        huge_cert.extend(utf("X.509"));
        huge_cert.extend(u32::MAX.to_be_bytes());
        huge_cert.extend(b"tiny");
        // A private key length of 4 GiB.
        let mut huge_key = 1u32.to_be_bytes().to_vec();
        huge_key.extend(utf("key"));
        huge_key.extend(0u64.to_be_bytes());
        huge_key.extend(u32::MAX.to_be_bytes());
        // A chain of 4 billion certificates.
        let mut huge_chain = 1u32.to_be_bytes().to_vec();
        huge_chain.extend(utf("chain"));
        huge_chain.extend(0u64.to_be_bytes());
        huge_chain.extend(0u32.to_be_bytes());
        huge_chain.extend(u32::MAX.to_be_bytes());
        huge_chain.extend(cert(2, "X.509", b"only-one"));
        for (entry, why) in [
            (
                huge_cert,
                "entry 2 (alias \"big\"): certificate: truncated at byte",
            ),
            (
                huge_key,
                "entry 2 (alias \"key\"): private key: truncated at byte",
            ),
            (
                huge_chain,
                "entry 2 (alias \"chain\"): certificate 2 of 4294967295 in the chain: \
                 truncated at byte",
            ),
        ] {
            let mut data = store(MAGIC_JKS, 2, &[first.clone(), entry], None);
            data.truncate(data.len() - DIGEST_LEN);
            let opened = open(&data, &[]).unwrap();
            assert_eq!(opened.entries[0].der, b"kept");
            assert_eq!(opened.errors.len(), 1, "{:?}", opened.errors);
            let expected = format!(
                "JKS: the rest of the keystore could not be read after entry 1 (alias \
                 \"first\"): {why}"
            );
            assert!(
                opened.errors[0].starts_with(&expected),
                "{:?}",
                opened.errors
            );
        }
    }

    #[test]
    fn an_entry_count_of_2_31_reads_what_is_there() {
        let mut data = store(MAGIC_JKS, 2, &[trusted(2, "only", b"der")], None);
        data.truncate(data.len() - DIGEST_LEN);
        data[8..12].copy_from_slice(&0x8000_0000u32.to_be_bytes());
        let opened = open(&data, &[]).unwrap();
        assert_eq!(aliases(&opened), [("only", &b"der"[..])]);
        assert_eq!(
            opened.errors,
            [
                "JKS: the rest of the keystore could not be read after entry 1 (alias \
                 \"only\"): entry 2: truncated at byte 44: 4 bytes needed, 0 left"
                    .to_string()
            ]
        );
        data[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(open(&data, &pw(&["x"])).unwrap().entries.len(), 1);
    }

    #[test]
    fn the_digest_is_checked_against_each_password_and_the_empty_one() {
        let entries = [trusted(2, "t", b"der")];
        let data = store(MAGIC_JKS, 2, &entries, Some("s3cret"));
        assert_eq!(open(&data, &[]).unwrap().entries.len(), 1);
        assert_eq!(open(&data, &pw(&["s3cret"])).unwrap().entries.len(), 1);
        assert_eq!(
            open(&data, &pw(&["a", "b", "s3cret"]))
                .unwrap()
                .entries
                .len(),
            1
        );
        let err = open(&data, &pw(&["S3cret"])).unwrap_err();
        assert!(err.contains("wrong password"), "{err}");
        // The empty password, tried after the given ones.
        let data = store(MAGIC_JKS, 2, &entries, Some(""));
        assert_eq!(open(&data, &pw(&["x"])).unwrap().entries.len(), 1);
        // Java chars: UTF-16 big-endian, a surrogate pair for U+1F511.
        let data = store(MAGIC_JCEKS, 2, &entries, Some("clé\u{1F511}"));
        assert_eq!(
            open(&data, &pw(&["clé\u{1F511}"])).unwrap().entries.len(),
            1
        );
        let mut digest = Sha1::new();
        digest.update(b"\x00c\x00l\x00\xE9\xD8\x3D\xDD\x11Mighty Aphrodite");
        digest.update(&data[..data.len() - DIGEST_LEN]);
        assert_eq!(digest.finalize()[..], data[data.len() - DIGEST_LEN..]);
    }

    #[test]
    fn a_missing_digest_and_trailing_bytes_are_reported() {
        let data = store(MAGIC_JKS, 2, &[trusted(2, "t", b"der")], Some("pw"));
        let cut = &data[..data.len() - 7];
        let opened = open(cut, &pw(&["other"])).unwrap();
        assert_eq!(opened.entries.len(), 1);
        assert_eq!(
            opened.errors,
            [
                "JKS: truncated: the integrity digest after the last entry (byte 41) has 13 of \
              its 20 bytes"
                    .to_string()
            ]
        );
        let mut longer = data.clone();
        longer.extend(b"junk");
        let opened = open(&longer, &pw(&["pw"])).unwrap();
        assert_eq!(opened.entries.len(), 1);
        assert!(
            opened.errors.is_empty(),
            "Java ignores them: {:?}",
            opened.errors
        );
        assert!(open(&longer, &pw(&["x"]))
            .unwrap_err()
            .contains("wrong password"));
    }

    #[test]
    fn a_certificate_not_x509_is_skipped_and_the_rest_read() {
        let mut odd = 2u32.to_be_bytes().to_vec();
        odd.extend(utf("pgp"));
        odd.extend(0u64.to_be_bytes());
        odd.extend(cert(2, "PGP", b"not-x509"));
        let mut chain = 1u32.to_be_bytes().to_vec();
        chain.extend(utf("k"));
        chain.extend(0u64.to_be_bytes());
        chain.extend(0u32.to_be_bytes());
        chain.extend(2u32.to_be_bytes());
        chain.extend(cert(2, "X.509", b"leaf"));
        chain.extend(cert(2, "X.5O9", b"odd"));
        let data = store(
            MAGIC_JKS,
            2,
            &[trusted(2, "a", b"1"), odd, chain, trusted(2, "z", b"2")],
            None,
        );
        let opened = open(&data, &[]).unwrap();
        assert_eq!(
            aliases(&opened),
            [("a", &b"1"[..]), ("k", b"leaf"), ("z", b"2")]
        );
        assert_eq!(
            opened.errors,
            [
                "JKS: entry 2 (alias \"pgp\"): certificate: of type \"PGP\", not X.509: skipped"
                    .to_string(),
                "JKS: entry 3 (alias \"k\"): certificate 2 of 2 in the chain: of type \
                 \"X.5O9\", not X.509: skipped"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn many_tiny_certificates_under_a_long_alias_cannot_take_gigabytes() {
        let alias = "a".repeat(65_535);
        let mut entry = 1u32.to_be_bytes().to_vec();
        entry.extend(utf(&alias));
        entry.extend(0u64.to_be_bytes());
        entry.extend(0u32.to_be_bytes());
        entry.extend(100_000u32.to_be_bytes());
        for _ in 0..100_000 {
            entry.extend(0u32.to_be_bytes()); // an empty certificate (version 1)
        }
        let data = store(MAGIC_JKS, 1, &[entry], None);
        let opened = open(&data, &[]).unwrap();
        let taken: usize = opened.entries.iter().map(|e| e.alias.len()).sum();
        assert!(taken <= 8 * data.len() + 64 * 1024, "{taken}");
        assert!(opened.entries.len() > 10, "{}", opened.entries.len());
        assert_eq!(opened.errors.len(), 1);
        let shown = format!("\"{}\"…", "a".repeat(64));
        let expected = format!(
            "JKS: the keystore could not be read from its first entry: entry 1 (alias {shown}): \
             certificate {} of 100000 in the chain: the certificates take more than 8 times \
             the keystore's size (a hostile keystore?)",
            opened.entries.len() + 1
        );
        assert_eq!(opened.errors[0], expected);
    }

    #[test]
    fn per_entry_failures_are_listed_up_to_64() {
        let mut entries = Vec::new();
        for i in 0..100 {
            let mut odd = 2u32.to_be_bytes().to_vec();
            odd.extend(utf(&format!("pgp{i}")));
            odd.extend(0u64.to_be_bytes());
            odd.extend(cert(2, &"P".repeat(100), b"not-x509"));
            entries.push(odd);
        }
        entries.push(trusted(2, "last", b"der"));
        let opened = open(&store(MAGIC_JKS, 2, &entries, None), &[]).unwrap();
        assert_eq!(aliases(&opened), [("last", &b"der"[..])]);
        assert_eq!(opened.errors.len(), 65);
        assert_eq!(
            opened.errors[0],
            format!(
                "JKS: entry 1 (alias \"pgp0\"): certificate: of type \"{}\"…, not X.509: \
                 skipped",
                "P".repeat(64)
            )
        );
        assert_eq!(
            opened.errors[64],
            "JKS: 36 more certificates of a type other than X.509 skipped (the first 64 are \
             listed)"
        );
    }

    #[test]
    fn an_unknown_tag_keeps_the_certificates_before_it() {
        let mut odd = 9u32.to_be_bytes().to_vec();
        odd.extend(utf("x"));
        let data = store(MAGIC_JKS, 2, &[trusted(2, "a", b"1"), odd], None);
        let opened = open(&data, &[]).unwrap();
        assert_eq!(aliases(&opened), [("a", &b"1"[..])]);
        assert_eq!(
            opened.errors,
            [
                "JKS: the rest of the keystore could not be read after entry 1 (alias \"a\"): \
              entry 2: unknown entry type 9 at byte 39 (known: 1 and 2)"
                    .to_string()
            ]
        );
        // A secret key is JCEKS only.
        let data = store(MAGIC_JKS, 2, &[secret("s", &fixture_stream())], None);
        let opened = open(&data, &[]).unwrap();
        assert_eq!(
            opened.errors,
            [
                "JKS: the keystore could not be read from its first entry: entry 1: unknown \
              entry type 3 at byte 12 (known: 1 and 2)"
                    .to_string()
            ]
        );
    }

    #[test]
    fn when_the_walk_stops_the_digest_is_looked_for_at_the_end() {
        let mut odd = 9u32.to_be_bytes().to_vec();
        odd.extend(utf("x"));
        let data = store(MAGIC_JKS, 2, &[trusted(2, "a", b"1"), odd], Some("pw"));
        let opened = open(&data, &pw(&["pw"])).unwrap();
        assert_eq!(opened.errors.len(), 1, "{:?}", opened.errors);
        let opened = open(&data, &pw(&["other"])).unwrap();
        assert_eq!(opened.entries.len(), 1);
        assert_eq!(opened.errors.len(), 2, "{:?}", opened.errors);
        assert_eq!(
            opened.errors[1],
            "JKS: integrity not verified: the last 20 bytes are not the digest for any of the \
             1 given passwords nor the empty one (a wrong password or a damaged keystore)"
        );
    }

    // -----------------------------------------------------------------------------------
    // Java serialization streams

    /// The sealed secret key of the keytool JCEKS fixture, as written by JDK 17.
    fn fixture_stream() -> Vec<u8> {
        let data = fixture("chain-secret-trusted.jceks");
        let start = data.windows(2).position(|w| w == [0xAC, 0xED]).unwrap();
        let mut r = Reader::new(&data[start..]);
        SerialSkipper::skip_stream(&mut r).unwrap();
        data[start..start + r.pos].to_vec()
    }

    const HEAD: [u8; 4] = [0xAC, 0xED, 0x00, 0x05];

    fn handle(n: u32) -> Vec<u8> {
        let mut out = vec![TC_REFERENCE];
        out.extend((BASE_WIRE_HANDLE + n).to_be_bytes());
        out
    }

    /// A `TC_CLASSDESC` with no annotation; `fields` are (code, name, type for objects).
    fn class_desc(
        name: &str,
        flags: u8,
        fields: &[(u8, &str, &str)],
        superclass: &[u8],
    ) -> Vec<u8> {
        let mut out = vec![TC_CLASSDESC];
        out.extend(utf(name));
        out.extend(0x0123_4567_89AB_CDEFu64.to_be_bytes());
        out.push(flags);
        out.extend((fields.len() as u16).to_be_bytes());
        for (code, field, class) in fields {
            out.push(*code);
            out.extend(utf(field));
            if !class.is_empty() {
                out.push(TC_STRING);
                out.extend(utf(class));
            }
        }
        out.push(TC_ENDBLOCKDATA);
        out.extend_from_slice(superclass);
        out
    }

    /// A JCEKS store: a certificate, a secret key holding `stream`, a certificate.
    fn around(stream: &[u8]) -> Opened {
        let data = store(
            MAGIC_JCEKS,
            2,
            &[
                trusted(2, "before", b"cert-1"),
                secret("s", stream),
                trusted(2, "after", b"cert-2"),
            ],
            Some("pw"),
        );
        open(&data, &pw(&["pw"])).unwrap()
    }

    fn skips(stream: &[u8]) {
        let opened = around(stream);
        assert!(opened.errors.is_empty(), "{:?}", opened.errors);
        assert_eq!(
            aliases(&opened),
            [("before", &b"cert-1"[..]), ("after", b"cert-2")]
        );
    }

    fn fails(stream: &[u8], why: &str) {
        let opened = around(stream);
        assert_eq!(
            aliases(&opened),
            [("before", &b"cert-1"[..])],
            "{why}: {:?}",
            opened.errors
        );
        let expected = format!(
            "JCEKS: the rest of the keystore could not be read after entry 1 (alias \
             \"before\"): entry 2 (alias \"s\"): secret key: Java serialization: {why}"
        );
        assert!(
            opened.errors[0].starts_with(&expected),
            "{:?}\nwanted {expected}",
            opened.errors
        );
    }

    #[test]
    fn the_keytool_sealed_key_is_skipped() {
        skips(&fixture_stream());
    }

    #[test]
    fn the_grammar_is_skipped_whole() {
        // Handles: 0 Outer, 1 "Ljava/lang/Object;", 2 "[J", 3 the object.
        let mut s = HEAD.to_vec();
        s.push(TC_OBJECT);
        s.extend(class_desc(
            "Outer",
            SC_SERIALIZABLE | SC_WRITE_METHOD,
            &[
                (b'I', "n", ""),
                (b'L', "o", "Ljava/lang/Object;"),
                (b'[', "a", "[J"),
            ],
            &[TC_NULL],
        ));
        s.extend(7u32.to_be_bytes()); // n
                                      // o: an enum constant. Handles: 4 E, 5 java.lang.Enum, 6 the constant, 7 "A".
        s.push(TC_ENUM);
        s.extend(class_desc(
            "E",
            SC_SERIALIZABLE | 0x10,
            &[],
            &class_desc("java.lang.Enum", SC_SERIALIZABLE | 0x10, &[], &[TC_NULL]),
        ));
        s.push(TC_STRING);
        s.extend(utf("A"));
        // a: two longs. Handles: 8 [J, 9 the array.
        s.push(TC_ARRAY);
        s.extend(class_desc("[J", SC_SERIALIZABLE, &[], &[TC_NULL]));
        s.extend(2u32.to_be_bytes());
        s.extend([0; 16]);
        // What writeObject wrote.
        s.extend([TC_BLOCKDATA, 3, b'x', b'y', b'z']);
        s.push(TC_BLOCKDATALONG);
        s.extend(2u32.to_be_bytes());
        s.extend(b"ab");
        s.push(TC_CLASS); // handle 10
        s.extend(handle(0));
        s.push(TC_LONGSTRING); // handle 11
        s.extend(3u64.to_be_bytes());
        s.extend(b"abc");
        // Handles: 12 [Ljava.lang.Object;, 13 the array.
        s.push(TC_ARRAY);
        s.extend(class_desc(
            "[Ljava.lang.Object;",
            SC_SERIALIZABLE,
            &[],
            &[TC_NULL],
        ));
        s.extend(4u32.to_be_bytes());
        s.push(TC_NULL);
        // A proxy (handles 14, 15), then the outer object and the "[J" string again.
        s.extend([TC_OBJECT, TC_PROXYCLASSDESC]);
        s.extend(1u32.to_be_bytes());
        s.extend(utf("java.lang.Runnable"));
        s.push(TC_ENDBLOCKDATA);
        s.push(TC_NULL);
        s.extend(handle(3));
        s.extend(handle(2));
        // An object of Outer again, by reference to its description (handle 16).
        s.push(TC_OBJECT);
        s.extend(handle(0));
        s.extend(1u32.to_be_bytes());
        s.push(TC_NULL);
        s.push(TC_NULL);
        s.push(TC_ENDBLOCKDATA);
        // An externalizable object in block-data mode (handles 17, 18).
        s.push(TC_OBJECT);
        s.extend(class_desc(
            "X",
            SC_EXTERNALIZABLE | SC_BLOCK_DATA,
            &[],
            &[TC_NULL],
        ));
        s.extend([TC_BLOCKDATA, 1, 0, TC_ENDBLOCKDATA]);
        // A subclass's fields come after its superclass's: Sub (19) extends Base (20).
        s.push(TC_ENDBLOCKDATA);
        skips(&s);

        let mut s = HEAD.to_vec();
        s.extend([TC_RESET, TC_RESET, TC_OBJECT]);
        s.extend(class_desc(
            "Sub",
            SC_SERIALIZABLE,
            &[(b'J', "j", "")],
            &class_desc(
                "Base",
                SC_SERIALIZABLE | SC_WRITE_METHOD,
                &[(b'Z', "z", "")],
                &[TC_NULL],
            ),
        ));
        s.push(1); // Base.z
        s.push(TC_ENDBLOCKDATA); // Base's writeObject wrote nothing
        s.extend([0; 8]); // Sub.j
        skips(&s);

        let mut s = HEAD.to_vec();
        s.push(TC_NULL);
        skips(&s);
    }

    #[test]
    fn what_cannot_be_skipped_is_an_error_not_a_panic() {
        let object_of = |desc: Vec<u8>, data: &[u8]| {
            let mut s = HEAD.to_vec();
            s.push(TC_OBJECT);
            s.extend(desc);
            s.extend_from_slice(data);
            s
        };
        // A class whose superclass is itself.
        fails(
            &object_of(class_desc("A", SC_SERIALIZABLE, &[], &handle(0)), &[]),
            "a class hierarchy deeper than 64 (or a loop)",
        );
        // An object holding itself, 10,000 deep.
        let mut deep = object_of(
            class_desc("A", SC_SERIALIZABLE, &[(b'L', "f", "LA;")], &[TC_NULL]),
            &[],
        );
        for _ in 0..10_000 {
            deep.push(TC_OBJECT);
            deep.extend(handle(0));
        }
        fails(&deep, "nested deeper than 40");
        // Superclass descriptions 10,000 deep.
        let mut deep = HEAD.to_vec();
        deep.push(TC_OBJECT);
        for _ in 0..10_000 {
            deep.push(TC_CLASSDESC);
            deep.extend(utf("A"));
            deep.extend([0; 8]);
            deep.extend([SC_SERIALIZABLE, 0, 0, TC_ENDBLOCKDATA]);
        }
        fails(&deep, "nested deeper than 40");
        // Annotations 10,000 deep.
        let mut deep = HEAD.to_vec();
        for _ in 0..10_000 {
            deep.push(TC_CLASSDESC);
            deep.extend(utf("A"));
            deep.extend([0; 8]);
            deep.extend([SC_SERIALIZABLE, 0, 0]);
        }
        fails(&deep, "nested deeper than 40");
        fails(
            &object_of(class_desc("X", SC_EXTERNALIZABLE, &[], &[TC_NULL]), &[1, 2]),
            "an externalizable object written with stream protocol 1",
        );
        let mut s = HEAD.to_vec();
        s.extend([TC_BLOCKDATA, 1, 0]);
        fails(&s, "type code 77 at byte 68 where an object was expected");
        // Handles: 0 A, 1 "LA;", 2 the object; then an object whose class is handle 1.
        // (Byte numbers count from the start of the store: the stream starts at 64.)
        let mut s = object_of(
            class_desc("A", SC_SERIALIZABLE, &[(b'L', "f", "LA;")], &[TC_NULL]),
            &[TC_OBJECT],
        );
        s.extend(handle(1));
        fails(
            &s,
            "reference at byte 97 to a handle that is not a class description",
        );
        let mut s = HEAD.to_vec();
        s.push(TC_OBJECT);
        s.extend(handle(0));
        fails(&s, "reference at byte 70 to handle 007E0000, of 0 assigned");
        let mut s = HEAD.to_vec();
        s.extend([TC_ARRAY, TC_NULL]);
        fails(&s, "null class description at byte 69");
        let mut s = HEAD.to_vec();
        s.push(TC_ARRAY);
        s.extend(class_desc("NotAnArray", SC_SERIALIZABLE, &[], &[TC_NULL]));
        s.extend(0u32.to_be_bytes());
        fails(&s, "array at byte");
        let mut s = HEAD.to_vec();
        s.push(TC_ARRAY);
        s.extend(class_desc("[J", SC_SERIALIZABLE, &[], &[TC_NULL]));
        s.extend(0x7FFF_FFFFu32.to_be_bytes());
        fails(&s, "truncated at byte");
        let mut s = HEAD.to_vec();
        s.push(TC_ARRAY);
        s.extend(class_desc("[J", SC_SERIALIZABLE, &[], &[TC_NULL]));
        s.extend(u32::MAX.to_be_bytes());
        fails(&s, "negative array length");
        let mut s = HEAD.to_vec();
        s.push(TC_LONGSTRING);
        s.extend(u64::MAX.to_be_bytes());
        fails(&s, "truncated at byte");
        let mut s = HEAD.to_vec();
        s.push(TC_OBJECT);
        s.extend(class_desc(
            "W",
            SC_SERIALIZABLE | SC_WRITE_METHOD,
            &[],
            &[TC_NULL],
        ));
        s.push(TC_BLOCKDATALONG);
        s.extend(u32::MAX.to_be_bytes());
        fails(&s, "truncated at byte");
        let mut s = HEAD.to_vec();
        s.push(TC_OBJECT);
        s.extend(class_desc(
            "W",
            SC_SERIALIZABLE | SC_WRITE_METHOD,
            &[],
            &[TC_NULL],
        ));
        s.push(TC_RESET);
        fails(&s, "type code 79 at byte");
        let mut s = HEAD.to_vec();
        s.push(TC_OBJECT);
        s.extend(class_desc(
            "F",
            SC_SERIALIZABLE,
            &[(b'Q', "q", "")],
            &[TC_NULL],
        ));
        fails(&s, "field type code 51 at byte");
        fails(
            &[0xAC, 0xED, 0x00, 0x04, TC_NULL],
            "stream header ACED 0004 at byte",
        );
        let mut s = HEAD.to_vec();
        s.push(TC_EXCEPTION);
        fails(&s, "the writer failed (TC_EXCEPTION) at byte 68");
        let mut s = HEAD.to_vec();
        s.push(TC_ENUM);
        s.extend(class_desc("E", SC_SERIALIZABLE, &[], &[TC_NULL]));
        s.push(TC_NULL);
        fails(&s, "type code 70 at byte");
    }
}
