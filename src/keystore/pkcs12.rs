//! PKCS#12 (RFC 7292): the certificate bags of a PFX, in plain or password-encrypted safe
//! contents, the MAC verified when there is one.

use super::Opened;

/// True when `data` starts like a PFX: a SEQUENCE holding INTEGER 3, then a ContentInfo.
pub fn looks_like(data: &[u8]) -> bool {
    let _ = data;
    false
}

/// See [`super::open`].
pub fn open(data: &[u8], passwords: &[String]) -> Result<Opened, String> {
    let _ = (data, passwords);
    Err("PKCS#12: not read yet".to_string())
}
