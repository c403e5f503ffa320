//! Minting and verifying Rounds tokens.
//!
//! Tokens are compact JWS (JWT) signed with Ed25519 (`alg: EdDSA`). Every token names its key
//! in `kid`, which is the key's RFC 7638 thumbprint. A [`KeySet`] holds the current signing
//! key and the retired keys that must keep verifying until the last token they signed has
//! expired; [`KeySet::jwks`] publishes their public halves.
//!
//! Nothing here touches the clock, the disk or the network: callers pass `now` (Unix seconds)
//! and store the key set themselves ([`KeySet::to_json`] / [`KeySet::from_json`]).

mod jwt;
mod keys;

pub use jwt::{Claims, TokenError, VerifiedTokens, peek_audience, random_id};
pub use keys::{KeyError, KeySet};

use rounds_proto::{Grant, ROOM_AUDIENCE, Role, RoomClaims, SESSION_AUDIENCE, SessionClaims};

/// What to put in a room token.
#[derive(Debug, Clone)]
pub struct RoomGrant<'a> {
    pub participant: &'a str,
    pub name: &'a str,
    pub room: &'a str,
    pub role: Role,
    pub grants: Vec<Grant>,
}

impl KeySet {
    /// Signs a room token valid from `now` for `ttl_secs`, capped at
    /// [`rounds_proto::MAX_ROOM_TOKEN_TTL_SECS`].
    pub fn mint_room(
        &self,
        issuer: &str,
        grant: RoomGrant<'_>,
        now: i64,
        ttl_secs: i64,
    ) -> (String, RoomClaims) {
        let ttl = ttl_secs.clamp(1, rounds_proto::MAX_ROOM_TOKEN_TTL_SECS);
        let claims = RoomClaims {
            iss: issuer.to_owned(),
            aud: ROOM_AUDIENCE.to_owned(),
            sub: grant.participant.to_owned(),
            name: grant.name.to_owned(),
            room: grant.room.to_owned(),
            role: grant.role,
            grants: grant.grants,
            iat: now,
            nbf: now,
            exp: now + ttl,
            jti: random_id(),
        };
        (self.sign(&claims), claims)
    }

    /// Signs a clinician's API access token.
    pub fn mint_session(
        &self,
        issuer: &str,
        clinician: &str,
        clinic: &str,
        family: &str,
        now: i64,
        ttl_secs: i64,
    ) -> (String, SessionClaims) {
        let claims = SessionClaims {
            iss: issuer.to_owned(),
            aud: SESSION_AUDIENCE.to_owned(),
            sub: clinician.to_owned(),
            clinic: clinic.to_owned(),
            sid: family.to_owned(),
            iat: now,
            nbf: now,
            exp: now + ttl_secs.max(1),
            jti: random_id(),
        };
        (self.sign(&claims), claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn grant(room: &str) -> RoomGrant<'_> {
        RoomGrant {
            participant: "p1",
            name: "Dr. Who",
            room,
            role: Role::Provider,
            grants: rounds_proto::grants_for(Role::Provider),
        }
    }

    #[test]
    fn room_token_round_trips() {
        let keys = KeySet::generate(NOW);
        let (token, claims) = keys.mint_room("https://rounds.test", grant("r1"), NOW, 3600);
        let back: RoomClaims = keys.verify(&token, ROOM_AUDIENCE, NOW + 10, 0).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.exp, NOW + 3600);
    }

    #[test]
    fn ttl_is_capped_at_four_hours() {
        let keys = KeySet::generate(NOW);
        let (_, claims) = keys.mint_room("iss", grant("r1"), NOW, 10 * 3600);
        assert_eq!(claims.exp - claims.iat, 4 * 3600);
    }

    #[test]
    fn rejects_expired_and_not_yet_valid() {
        let keys = KeySet::generate(NOW);
        let (token, _) = keys.mint_room("iss", grant("r1"), NOW, 60);
        let err = keys
            .verify::<RoomClaims>(&token, ROOM_AUDIENCE, NOW + 61, 0)
            .unwrap_err();
        assert_eq!(err, TokenError::Expired);
        let err = keys
            .verify::<RoomClaims>(&token, ROOM_AUDIENCE, NOW - 30, 5)
            .unwrap_err();
        assert_eq!(err, TokenError::NotYetValid);
        // Within leeway is fine.
        keys.verify::<RoomClaims>(&token, ROOM_AUDIENCE, NOW - 3, 5)
            .unwrap();
    }

    #[test]
    fn rejects_other_audience() {
        let keys = KeySet::generate(NOW);
        let (token, _) = keys.mint_session("iss", "c1", "k1", "f1", NOW, 600);
        let err = keys
            .verify::<RoomClaims>(&token, ROOM_AUDIENCE, NOW, 0)
            .unwrap_err();
        assert!(matches!(
            err,
            TokenError::WrongAudience | TokenError::Malformed(_)
        ));
        keys.verify::<SessionClaims>(&token, SESSION_AUDIENCE, NOW, 0)
            .unwrap();
    }

    #[test]
    fn rejects_forged_signature_and_unknown_key() {
        let keys = KeySet::generate(NOW);
        let other = KeySet::generate(NOW);
        let (token, _) = other.mint_room("iss", grant("r1"), NOW, 60);
        assert_eq!(
            keys.verify::<RoomClaims>(&token, ROOM_AUDIENCE, NOW, 0)
                .unwrap_err(),
            TokenError::UnknownKey
        );

        // Same kid as ours, different signer: a forgery.
        let (mine, _) = keys.mint_room("iss", grant("r1"), NOW, 60);
        let (theirs, _) = other.mint_room("iss", grant("r1"), NOW, 60);
        let forged = format!(
            "{}.{}.{}",
            mine.split('.').next().unwrap(),
            theirs.split('.').nth(1).unwrap(),
            theirs.split('.').nth(2).unwrap()
        );
        assert_eq!(
            keys.verify::<RoomClaims>(&forged, ROOM_AUDIENCE, NOW, 0)
                .unwrap_err(),
            TokenError::BadSignature
        );

        // Tampered payload: upgrade the room.
        let parts: Vec<&str> = mine.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            theirs.split('.').nth(1).unwrap(),
            parts[2]
        );
        assert_eq!(
            keys.verify::<RoomClaims>(&tampered, ROOM_AUDIENCE, NOW, 0)
                .unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn peeks_the_audience_without_trusting_it() {
        let keys = KeySet::generate(NOW);
        let (room, _) = keys.mint_room("iss", grant("r1"), NOW, 60);
        let (session, _) = keys.mint_session("iss", "c1", "k1", "f1", NOW, 600);
        assert_eq!(peek_audience(&room).as_deref(), Some(ROOM_AUDIENCE));
        assert_eq!(peek_audience(&session).as_deref(), Some(SESSION_AUDIENCE));
        assert_eq!(peek_audience("not.a.token"), None);
    }

    #[test]
    fn rejects_alg_none_and_garbage() {
        let keys = KeySet::generate(NOW);
        for junk in ["", "a.b", "a.b.c", "....", "eyJhbGciOiJub25lIn0.e30."] {
            assert!(
                keys.verify::<RoomClaims>(junk, ROOM_AUDIENCE, NOW, 0)
                    .is_err(),
                "{junk}"
            );
        }
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_they_expire() {
        let mut keys = KeySet::generate(NOW);
        let (old_token, _) = keys.mint_room("iss", grant("r1"), NOW, 4 * 3600);
        let old_kid = keys.current_kid().to_owned();

        keys.rotate(NOW + 100);
        assert_ne!(keys.current_kid(), old_kid);
        let (new_token, _) = keys.mint_room("iss", grant("r1"), NOW + 100, 60);
        assert!(new_token.starts_with(&keys.header_prefix()));

        // Both verify, both published.
        keys.verify::<RoomClaims>(&old_token, ROOM_AUDIENCE, NOW + 200, 0)
            .unwrap();
        keys.verify::<RoomClaims>(&new_token, ROOM_AUDIENCE, NOW + 120, 0)
            .unwrap();
        assert_eq!(keys.jwks().keys.len(), 2);

        // Pruning before the retired key's last token expires keeps it.
        keys.prune(NOW + 100 + 4 * 3600 - 1, 4 * 3600);
        assert_eq!(keys.jwks().keys.len(), 2);
        // After, it is gone and its tokens fail as unknown-key.
        keys.prune(NOW + 100 + 4 * 3600 + 1, 4 * 3600);
        assert_eq!(keys.jwks().keys.len(), 1);
        assert_eq!(
            keys.verify::<RoomClaims>(&old_token, ROOM_AUDIENCE, NOW + 200, 0)
                .unwrap_err(),
            TokenError::UnknownKey
        );
    }

    #[test]
    fn key_set_survives_serialization() {
        let mut keys = KeySet::generate(NOW);
        keys.rotate(NOW + 5);
        let (token, _) = keys.mint_room("iss", grant("r9"), NOW + 5, 60);
        let restored = KeySet::from_json(&keys.to_json()).unwrap();
        assert_eq!(restored.current_kid(), keys.current_kid());
        restored
            .verify::<RoomClaims>(&token, ROOM_AUDIENCE, NOW + 6, 0)
            .unwrap();
        assert_eq!(restored.jwks(), keys.jwks());
    }

    #[test]
    fn a_remembered_token_skips_only_the_signature_check() {
        let mut keys = KeySet::generate(NOW);
        let seen = VerifiedTokens::new(16);
        let (token, _) = keys.mint_room("iss", grant("r1"), NOW, 60);
        for _ in 0..2 {
            keys.verify_remembering::<RoomClaims>(&token, ROOM_AUDIENCE, NOW, 0, &seen)
                .unwrap();
        }
        assert_eq!(seen.len(), 1);

        // Every other check still runs on a remembered token.
        assert_eq!(
            keys.verify_remembering::<RoomClaims>(&token, SESSION_AUDIENCE, NOW, 0, &seen)
                .unwrap_err(),
            TokenError::WrongAudience
        );
        assert_eq!(
            keys.verify_remembering::<RoomClaims>(&token, ROOM_AUDIENCE, NOW + 60, 0, &seen)
                .unwrap_err(),
            TokenError::Expired
        );

        // Anything but the exact text verified before is checked in full.
        let parts: Vec<&str> = token.split('.').collect();
        let (other, _) = keys.mint_room("iss", grant("r2"), NOW, 60);
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            other.split('.').nth(1).unwrap(),
            parts[2]
        );
        assert_eq!(
            keys.verify_remembering::<RoomClaims>(&tampered, ROOM_AUDIENCE, NOW, 0, &seen)
                .unwrap_err(),
            TokenError::BadSignature
        );

        // A token signed with a key that has left the set is refused, remembered or not.
        keys.rotate(NOW + 1);
        keys.prune(NOW + 1000, 60);
        assert_eq!(
            keys.verify_remembering::<RoomClaims>(&token, ROOM_AUDIENCE, NOW, 0, &seen)
                .unwrap_err(),
            TokenError::UnknownKey
        );
    }

    #[test]
    fn the_memory_of_verified_tokens_is_bounded() {
        let keys = KeySet::generate(NOW);
        let seen = VerifiedTokens::new(4);
        for i in 0..10 {
            let (token, _) = keys.mint_room("iss", grant(&format!("r{i}")), NOW, 60);
            keys.verify_remembering::<RoomClaims>(&token, ROOM_AUDIENCE, NOW, 0, &seen)
                .unwrap();
            assert!(seen.len() <= 4, "{} remembered", seen.len());
        }
        // Expired entries make room first.
        let (short, _) = keys.mint_room("iss", grant("short"), NOW, 1);
        let seen = VerifiedTokens::new(2);
        keys.verify_remembering::<RoomClaims>(&short, ROOM_AUDIENCE, NOW, 0, &seen)
            .unwrap();
        let (long, _) = keys.mint_room("iss", grant("long"), NOW, 600);
        keys.verify_remembering::<RoomClaims>(&long, ROOM_AUDIENCE, NOW, 0, &seen)
            .unwrap();
        let (third, _) = keys.mint_room("iss", grant("third"), NOW + 10, 600);
        keys.verify_remembering::<RoomClaims>(&third, ROOM_AUDIENCE, NOW + 10, 0, &seen)
            .unwrap();
        assert_eq!(seen.len(), 2, "the expired one went, the live ones stayed");
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        let keys = KeySet::generate(NOW);
        let jwk = &keys.jwks().keys[0];
        use base64::Engine;
        use sha2::Digest;
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, jwk.x);
        let thumb = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(canonical.as_bytes()));
        assert_eq!(jwk.kid, thumb);
    }
}
