//! The token-abuse matrix: each way of misusing a token is refused with the right status.

use reqwest::StatusCode;
use rounds_auth::{KeySet, RoomGrant};
use rounds_proto::{Role, grants_for};
use serde_json::json;

use crate::common::*;

struct Fixture {
    server: Server,
    access: String,
    visit_a: String,
    visit_b: String,
    code_a: String,
    provider_a: String,
    patient_a: String,
    patient_a_id: String,
}

async fn fixture() -> Fixture {
    let server = Server::start().await;
    let access = server.access_token().await;
    let (a, code_a) = server.create_visit(&access, 5, "Pat A").await;
    let (b, _) = server.create_visit(&access, 5, "Pat B").await;
    let visit_a = a["id"].as_str().unwrap().to_owned();
    let visit_b = b["id"].as_str().unwrap().to_owned();
    let (_, p) = server
        .post(
            &format!("/api/v1/visits/{visit_a}/token"),
            Some(&access),
            json!({}),
        )
        .await;
    let (_, lobby) = server.join(&code_a, None).await;
    Fixture {
        access,
        visit_a,
        visit_b,
        code_a,
        provider_a: p["token"].as_str().unwrap().to_owned(),
        patient_a: lobby["token"].as_str().unwrap().to_owned(),
        patient_a_id: lobby["participant_id"].as_str().unwrap().to_owned(),
        server,
    }
}

fn grant<'a>(participant: &'a str, room: &'a str, role: Role) -> RoomGrant<'a> {
    RoomGrant {
        participant,
        name: "Mallory",
        room,
        role,
        grants: grants_for(role),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_abuse_matrix() {
    let f = fixture().await;
    let s = &f.server;
    let me_a = format!("/api/v1/rooms/{}/me", f.visit_a);
    let now = chrono::Utc::now().timestamp();
    let keys = s.keys();
    let issuer = s.url.clone();

    // The honest token works.
    let (status, _) = s.get(&me_a, Some(&f.patient_a)).await;
    assert_eq!(status, StatusCode::OK);

    // 1. Forged signature: our kid, someone else's signature.
    let other = KeySet::generate(now);
    let (theirs, _) = other.mint_room(
        &issuer,
        grant(&f.patient_a_id, &f.visit_a, Role::Provider),
        now,
        600,
    );
    let forged = format!(
        "{}.{}",
        keys.header_prefix().trim_end_matches('.'),
        theirs.split_once('.').unwrap().1
    );
    let (status, p) = s.get(&me_a, Some(&forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "forged: {p}");
    assert_eq!(p["type"], "https://rounds.health/problems/invalid-token");

    // Tampered claims: the patient's token with the role changed to provider.
    let (_, claims_b64) = f.patient_a.split_once('.').unwrap();
    let mut c = claims(&f.patient_a);
    c["role"] = json!("provider");
    c["grants"] = json!([
        "admit",
        "chat",
        "invite",
        "moderate",
        "publish",
        "record",
        "subscribe"
    ]);
    use base64::Engine;
    let tampered_payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
    let sig = claims_b64.rsplit('.').next().unwrap();
    let tampered = format!(
        "{}.{}.{}",
        f.patient_a.split('.').next().unwrap(),
        tampered_payload,
        sig
    );
    let (status, _) = s
        .post(
            &format!("/api/v1/visits/{}/admit/{}", f.visit_a, f.patient_a_id),
            Some(&tampered),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "tampered claims");

    // 2. Unknown kid.
    let (status, p) = s.get(&me_a, Some(&theirs)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        p["type"],
        "https://rounds.health/problems/unknown-signing-key"
    );

    // alg=none.
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        f.patient_a.split('.').nth(1).unwrap()
    );
    let (status, _) = s.get(&me_a, Some(&none)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // 3. Expired (well past the leeway).
    let (expired, _) = keys.mint_room(
        &issuer,
        grant(&f.patient_a_id, &f.visit_a, Role::Patient),
        now - 7200,
        600,
    );
    let (status, p) = s.get(&me_a, Some(&expired)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(p["type"], "https://rounds.health/problems/token-expired");

    // 4. nbf in the future.
    let (future, _) = keys.mint_room(
        &issuer,
        grant(&f.patient_a_id, &f.visit_a, Role::Patient),
        now + 3600,
        600,
    );
    let (status, p) = s.get(&me_a, Some(&future)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        p["type"],
        "https://rounds.health/problems/token-not-yet-valid"
    );

    // 5. Wrong room: room A's provider token used on room B.
    let (status, p) = s
        .post(
            &format!("/api/v1/visits/{}/end", f.visit_b),
            Some(&f.provider_a),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(p["type"], "https://rounds.health/problems/wrong-room");
    let (status, _) = s
        .get(
            &format!("/api/v1/rooms/{}/me", f.visit_b),
            Some(&f.patient_a),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // 6. Patient calling admit (on themselves, in their own room).
    let (status, p) = s
        .post(
            &format!("/api/v1/visits/{}/admit/{}", f.visit_a, f.patient_a_id),
            Some(&f.patient_a),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(p["type"], "https://rounds.health/problems/missing-grant");
    let (_, me) = s.get(&me_a, Some(&f.patient_a)).await;
    assert_eq!(me["state"], "lobby", "the patient is still waiting");

    // 7. Guest minting a token for another room.
    let (status, guest) = s
        .post(
            &format!("/api/v1/rooms/{}/guest-tokens", f.visit_a),
            Some(&f.provider_a),
            json!({ "display_name": "Interpreter", "role": "interpreter" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let guest_token = guest["token"].as_str().unwrap();
    let (status, _) = s
        .post(
            &format!("/api/v1/rooms/{}/guest-tokens", f.visit_b),
            Some(guest_token),
            json!({ "display_name": "Eve", "role": "guest" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // ... or even for their own room: guests hold no invite grant.
    let (status, _) = s
        .post(
            &format!("/api/v1/rooms/{}/guest-tokens", f.visit_a),
            Some(guest_token),
            json!({ "display_name": "Eve", "role": "guest" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A provider token cannot mint into a room that does not exist.
    let (status, _) = s
        .post(
            "/api/v1/rooms/ffffffffffffffffffffffffffffffff/guest-tokens",
            Some(&f.provider_a),
            json!({ "display_name": "Eve", "role": "guest" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // 8. Guest creating a room.
    let at = chrono::Utc::now() + chrono::Duration::minutes(5);
    let (status, p) = s
        .post(
            "/api/v1/visits",
            Some(guest_token),
            json!({ "scheduled_at": at }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(p["type"], "https://rounds.health/problems/clinicians-only");
    let (status, _) = s
        .post("/api/v1/visits", None, json!({ "scheduled_at": at }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // 9. Revoked link.
    let (status, _) = s
        .call(
            "DELETE",
            &format!("/api/v1/visits/{}/patient-link", f.visit_a),
            Some(&f.access),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, p) = s.join(&f.code_a, None).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(p["type"], "https://rounds.health/problems/revoked-link");
    let (status, _) = s.get(&format!("/api/v1/join/{}", f.code_a), None).await;
    assert_eq!(status, StatusCode::GONE);
    // Unknown links are 404 with a friendly sentence.
    let (status, p) = s.get("/api/v1/join/abcdefghijkmnpqrstuvwxyz23", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(p["detail"].as_str().unwrap().contains("call your clinic"));

    // A clinician of another clinic cannot see or act on this visit.
    s.add_other_clinic_clinician("lee@riverside.example");
    let (_, other) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": "lee@riverside.example", "password": PASSWORD }),
        )
        .await;
    let other_access = other["access_token"].as_str().unwrap();
    let (status, _) = s
        .get(&format!("/api/v1/visits/{}", f.visit_a), Some(other_access))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .post(
            &format!("/api/v1/visits/{}/admit/{}", f.visit_a, f.patient_a_id),
            Some(other_access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn reusing_a_refresh_token_revokes_the_whole_session() {
    let server = Server::start().await;
    let first = server.login().await;
    let r1 = first["refresh_token"].as_str().unwrap();

    let (status, second) = server
        .post("/api/v1/auth/refresh", None, json!({ "refresh_token": r1 }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let r2 = second["refresh_token"].as_str().unwrap();
    let access2 = second["access_token"].as_str().unwrap();
    assert_ne!(r1, r2);
    let (status, _) = server.get("/api/v1/visits", Some(access2)).await;
    assert_eq!(status, StatusCode::OK);

    // r1 again: someone copied it. The whole family dies.
    let (status, p) = server
        .post("/api/v1/auth/refresh", None, json!({ "refresh_token": r1 }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        p["type"],
        "https://rounds.health/problems/refresh-token-reused"
    );
    let (status, _) = server
        .post("/api/v1/auth/refresh", None, json!({ "refresh_token": r2 }))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the rotated token dies with its family"
    );
    let (status, _) = server.get("/api/v1/visits", Some(access2)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "access tokens of the family stop working"
    );

    // Another session is unaffected, and signing out ends it.
    let other = server.login().await;
    let (status, _) = server
        .get(
            "/api/v1/visits",
            Some(other["access_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": other["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .get(
            "/api/v1/visits",
            Some(other["access_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_join_lookups_and_minting_are_rate_limited() {
    let server = Server::start_with(
        "[limits]\nlogin_per_minute = 5\njoin_per_minute = 5\ntoken_per_minute = 5\n",
        "info",
    )
    .await;
    let mut limited = None;
    for _ in 0..8 {
        let (status, body) = server
            .post(
                "/api/v1/auth/login",
                None,
                json!({ "email": EMAIL, "password": "wrong password!" }),
            )
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(body);
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let limited = limited.expect("login attempts were never limited");
    assert!(limited["retry_after"].as_u64().unwrap() >= 1);
    assert!(limited["detail"].as_str().unwrap().contains("Wait"));

    let mut statuses = vec![];
    for _ in 0..8 {
        statuses.push(
            server
                .get("/api/v1/join/abcdefghijkmnpqrstuvwxyz23", None)
                .await
                .0,
        );
    }
    assert!(statuses.contains(&StatusCode::NOT_FOUND));
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}
