//! DurableObjectId derivation and validation, byte-compatible with workerd.
//!
//! A namespace's key is SHA-256 of its unique key. A name-derived id is `a ‖ b` where
//! `a = HMAC(key, name)[..16]` and `b = HMAC(key, a)[..16]`; a unique id replaces `a` with 16 random
//! bytes. The second half is a MAC of the first, so an id from another namespace (or garbage of the
//! right length) is rejected. Jurisdictions go beyond workerd, which refuses them: each one gets its
//! own key derived from the namespace's, so the MAC also says which jurisdiction an id belongs to.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::CoreError;

pub const ID_BYTES: usize = 32;
const HALF: usize = ID_BYTES / 2;

pub const JURISDICTIONS: [&str; 4] = ["eu", "fedramp", "fedramp-high", "us"];

pub type IdBytes = [u8; ID_BYTES];

/// The keys of one namespace: the plain one (workerd's) and one per jurisdiction.
pub struct NamespaceKeys {
    plain: [u8; 32],
    jurisdictions: [[u8; 32]; JURISDICTIONS.len()],
}

impl NamespaceKeys {
    pub fn new(unique_key: &str) -> Self {
        let plain: [u8; 32] = Sha256::digest(unique_key.as_bytes()).into();
        let jurisdictions = JURISDICTIONS.map(|j| {
            let mut h = Sha256::new();
            h.update(plain);
            h.update(b"\0jurisdiction\0");
            h.update(j.as_bytes());
            h.finalize().into()
        });
        NamespaceKeys {
            plain,
            jurisdictions,
        }
    }

    fn key(&self, jurisdiction: Option<&str>) -> Result<&[u8; 32], CoreError> {
        match jurisdiction {
            None => Ok(&self.plain),
            Some(j) => JURISDICTIONS
                .iter()
                .position(|known| *known == j)
                .map(|i| &self.jurisdictions[i])
                .ok_or_else(|| CoreError::UnknownJurisdiction(j.to_owned())),
        }
    }

    pub fn from_name(&self, name: &str, jurisdiction: Option<&str>) -> Result<IdBytes, CoreError> {
        let key = self.key(jurisdiction)?;
        Ok(complete(key, &mac16(key, name.as_bytes())))
    }

    pub fn unique(&self, jurisdiction: Option<&str>) -> Result<IdBytes, CoreError> {
        let key = self.key(jurisdiction)?;
        let mut first = [0u8; HALF];
        getrandom::fill(&mut first).map_err(|e| CoreError::Random(e.to_string()))?;
        Ok(complete(key, &first))
    }

    /// Parses a hex id (either case) and finds the jurisdiction whose key authenticates it.
    pub fn parse(&self, text: &str) -> Result<(IdBytes, Option<&'static str>), CoreError> {
        let mut bytes = [0u8; ID_BYTES];
        if text.len() != ID_BYTES * 2 || hex::decode_to_slice(text, &mut bytes).is_err() {
            return Err(CoreError::IdFormat);
        }
        let (first, second) = bytes.split_at(HALF);
        if mac16(&self.plain, first) == second {
            return Ok((bytes, None));
        }
        for (i, key) in self.jurisdictions.iter().enumerate() {
            if mac16(key, first) == second {
                return Ok((bytes, Some(JURISDICTIONS[i])));
            }
        }
        Err(CoreError::IdForeign)
    }
}

fn mac16(key: &[u8; 32], data: &[u8]) -> [u8; HALF] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; HALF];
    out.copy_from_slice(&full[..HALF]);
    out
}

fn complete(key: &[u8; 32], first: &[u8; HALF]) -> IdBytes {
    let mut id = [0u8; ID_BYTES];
    id[..HALF].copy_from_slice(first);
    id[HALF..].copy_from_slice(&mac16(key, first));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_derivation_matches_workerd() {
        // spec 183: uniqueKey "probe-unique-key", name "foo", observed on workerd.
        let keys = NamespaceKeys::new("probe-unique-key");
        let id = keys.from_name("foo", None).unwrap();
        assert_eq!(
            hex::encode(id),
            "d20c3594dd036e13f796a34584917d05bb9786c7f2b3e9efabb90112aa7cb49a"
        );
    }

    #[test]
    fn parse_accepts_upper_case_and_rejects_foreign_ids() {
        let keys = NamespaceKeys::new("a");
        let id = hex::encode(keys.from_name("x", None).unwrap());
        assert_eq!(
            keys.parse(&id.to_uppercase()).unwrap().0,
            keys.parse(&id).unwrap().0
        );
        let other = NamespaceKeys::new("b");
        assert!(matches!(other.parse(&id), Err(CoreError::IdForeign)));
        assert!(matches!(
            keys.parse(&"0".repeat(64)),
            Err(CoreError::IdForeign)
        ));
        assert!(matches!(keys.parse("abc"), Err(CoreError::IdFormat)));
        assert!(matches!(
            keys.parse(&"g".repeat(64)),
            Err(CoreError::IdFormat)
        ));
    }

    #[test]
    fn unique_ids_validate_and_differ() {
        let keys = NamespaceKeys::new("a");
        let a = keys.unique(None).unwrap();
        let b = keys.unique(None).unwrap();
        assert_ne!(a, b);
        assert_eq!(keys.parse(&hex::encode(a)).unwrap(), (a, None));
    }

    #[test]
    fn jurisdiction_is_recovered_from_the_mac() {
        let keys = NamespaceKeys::new("a");
        let eu = keys.from_name("x", Some("eu")).unwrap();
        assert_ne!(eu, keys.from_name("x", None).unwrap());
        assert_eq!(keys.parse(&hex::encode(eu)).unwrap().1, Some("eu"));
        let us = keys.unique(Some("fedramp-high")).unwrap();
        assert_eq!(
            keys.parse(&hex::encode(us)).unwrap().1,
            Some("fedramp-high")
        );
        assert!(matches!(
            keys.from_name("x", Some("mars")),
            Err(CoreError::UnknownJurisdiction(_))
        ));
    }
}
