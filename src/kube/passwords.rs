//! Keystore passwords kept in other Secrets (`--keystore-password-secret`), as cert-manager
//! keeps them: read with a GET when a keystore needs them, remembered for a few seconds so
//! that a list of many keystores in one namespace costs one GET, never logged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::client::Client;
use crate::keystore::passwords::password_of;
use crate::pem;

/// How long a password Secret read is used before it is read again.
const FRESH_FOR: Duration = Duration::from_secs(10);

/// A key of a Secret that holds a keystore password: `[NAMESPACE/]NAME:KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The Secret's namespace; `None`: the keystore's own.
    pub namespace: Option<String>,
    /// The Secret's name.
    pub name: String,
    /// The data key holding the password.
    pub key: String,
}

impl SecretRef {
    /// Parses `[NAMESPACE/]NAME:KEY`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (place, key) = text
            .split_once(':')
            .ok_or_else(|| format!("expected [NAMESPACE/]NAME:KEY, got {text:?}"))?;
        let (namespace, name) = match place.split_once('/') {
            Some((namespace, name)) => (Some(namespace.to_string()), name),
            None => (None, place),
        };
        let valid = |part: &str| !part.is_empty() && !part.contains(['/', '?', '#', '%']);
        if !valid(name) || !valid(key) || !namespace.as_deref().is_none_or(valid) {
            return Err(format!("expected [NAMESPACE/]NAME:KEY, got {text:?}"));
        }
        Ok(Self {
            namespace,
            name: name.to_string(),
            key: key.to_string(),
        })
    }
}

/// The password Secrets and what was last read of them.
pub struct PasswordSecrets {
    client: Client,
    refs: Vec<SecretRef>,
    /// (namespace, name) → when it was read, and what came of it.
    read: Mutex<HashMap<(String, String), (Instant, Read)>>,
}

/// One password Secret read: its wanted keys' passwords, or why the read failed (a Secret
/// that does not exist holds none, without failing).
type Read = Result<BTreeMap<String, String>, String>;

/// A Secret as a GET returns it; only its data is looked at.
#[derive(Deserialize)]
struct Secret {
    #[serde(default)]
    data: Option<BTreeMap<String, String>>,
}

impl PasswordSecrets {
    /// Reads `refs` through `client`.
    pub fn new(client: Client, refs: Vec<SecretRef>) -> Self {
        Self {
            client,
            refs,
            read: Mutex::new(HashMap::new()),
        }
    }

    /// The passwords for a keystore in `namespace`, in flag order, and one message per
    /// password Secret that could not be read ("password Secret ns/name: 403 Forbidden:
    /// ..."). A Secret or key that does not exist gives no password and no message: a
    /// flag may name a Secret only some namespaces hold.
    pub fn passwords(&self, namespace: &str) -> (Vec<String>, Vec<String>) {
        let mut passwords = Vec::new();
        let mut errors = Vec::new();
        for secret in &self.refs {
            let namespace = secret.namespace.as_deref().unwrap_or(namespace);
            let place = (namespace.to_string(), secret.name.clone());
            let known = {
                let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
                read.retain(|_, (at, _)| at.elapsed() < FRESH_FOR);
                read.get(&place).map(|(_, data)| data.clone())
            };
            // Read without the lock held: a server slow to answer holds up only this
            // keystore's thread, not every other thread decoding keystores.
            let data = known.unwrap_or_else(|| {
                let data = self.get(namespace, &secret.name);
                let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
                read.insert(place, (Instant::now(), data.clone()));
                data
            });
            match &data {
                Ok(data) => passwords.extend(data.get(&secret.key).cloned()),
                Err(why) => errors.push(format!(
                    "password Secret {namespace}/{}: {why}",
                    secret.name
                )),
            }
        }
        (passwords, errors)
    }

    /// The passwords of every wanted key of one Secret.
    fn get(&self, namespace: &str, name: &str) -> Read {
        let path = format!("/api/v1/namespaces/{namespace}/secrets/{name}");
        let body = match self.client.get(&path, &[]) {
            Ok(body) => body,
            Err(e) if e.status == Some(404) => return Ok(BTreeMap::new()),
            Err(e) => return Err(e.to_string()),
        };
        let secret: Secret =
            serde_json::from_slice(&body).map_err(|e| format!("not a Secret: {e}"))?;
        let mut wanted = BTreeMap::new();
        let data = secret.data.unwrap_or_default();
        for secret_ref in self.refs.iter().filter(|r| r.name == name) {
            let Some(value) = data.get(&secret_ref.key) else {
                continue;
            };
            let password = pem::decode_base64(value.as_bytes())
                .ok()
                .and_then(password_of)
                .ok_or_else(|| format!("key {}: not base64 of UTF-8 text", secret_ref.key))?;
            wanted.insert(secret_ref.key.clone(), password);
        }
        Ok(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_key_of_a_secret_in_a_namespace_or_the_keystores_own() {
        assert_eq!(
            SecretRef::parse("pw:password").unwrap(),
            SecretRef {
                namespace: None,
                name: "pw".into(),
                key: "password".into()
            }
        );
        assert_eq!(
            SecretRef::parse("ops/pw:key.txt").unwrap().namespace,
            Some("ops".to_string())
        );
        for bad in ["pw", ":k", "pw:", "a/b/c:k", "/pw:k", "pw:k/x", "p%2f:k"] {
            assert!(SecretRef::parse(bad).is_err(), "{bad}");
        }
    }
}
