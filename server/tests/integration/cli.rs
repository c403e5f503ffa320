//! The command line: audit verification of a tampered log, key rotation, config errors, demo.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_names_the_first_altered_row() {
    let mut server = Server::start().await;
    let access = server.access_token().await;
    for i in 0..3 {
        server.create_visit(&access, 10 + i, "Someone").await;
    }
    server.stop();
    let (ok, report) = server.audit_verify();
    assert!(ok, "{report}");
    assert!(report.contains("intact"), "{report}");

    // The log refuses edits through SQL...
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        server.data_dir().join("rounds.db").display()
    ))
    .await
    .unwrap();
    let err = sqlx::query("UPDATE audit_log SET actor = 'nobody' WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    // ... and someone who bypasses that is caught.
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'nobody' WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let out = server.cli(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("BROKEN at row 3"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_keys_keep_old_tokens_valid() {
    let mut server = Server::start().await;
    let access = server.access_token().await;
    let (visit, code) = server.create_visit(&access, 10, "Rotation").await;
    let (_, lobby) = server.join(&code, None).await;
    let old = lobby["token"].as_str().unwrap().to_owned();
    let old_kid = header(&old)["kid"].as_str().unwrap().to_owned();
    server.stop();

    let out = server.cli(&["keys", "rotate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.spawn().await;

    let (_, jwks) = server.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let (status, _) = server
        .get(
            &format!("/api/v1/rooms/{}/me", visit["id"].as_str().unwrap()),
            Some(&old),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a token from the old key still verifies"
    );
    let (_, again) = server.join(&code, None).await;
    assert_ne!(
        header(again["token"].as_str().unwrap())["kid"]
            .as_str()
            .unwrap(),
        old_kid,
        "new tokens use the new key"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_token_command_mints_a_scoped_token() {
    let server = Server::start().await;
    let access = server.access_token().await;
    let (visit, _) = server.create_visit(&access, 10, "Cli").await;
    let id = visit["id"].as_str().unwrap();
    let out = server.cli(&[
        "token",
        "--room",
        id,
        "--role",
        "interpreter",
        "--name",
        "Interpreter",
        "--ttl",
        "600",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(claims(&token)["room"], id);
    assert_eq!(claims(&token)["role"], "interpreter");
    let (status, me) = server
        .get(&format!("/api/v1/rooms/{id}/me"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["state"], "lobby");
    let out = server.cli(&["token", "--room", "nope", "--role", "guest", "--name", "X"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no visit"));
}

#[test]
fn bad_configuration_is_explained_and_help_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[tokens]\nprovider_ttl_secs = 99999\n[server]\npublic_url = \"nope\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tokens.provider_ttl_secs") && err.contains("server.public_url"),
        "{err}"
    );

    std::fs::write(&path, "[server]\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"));

    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for command in [
        "serve",
        "demo",
        "migrate",
        "token",
        "audit",
        "keys",
        "clinician",
    ] {
        assert!(help.contains(command), "--help lacks {command}:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_prints_a_working_login_and_patient_link() {
    let dir = tempfile::tempdir().unwrap();
    let ui = write_ui_fixture(dir.path());
    let port = free_port();
    let mut child = Command::new(BIN)
        .args([
            "--ui-dir",
            ui.to_str().unwrap(),
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--media-udp",
            "127.0.0.1:0",
            "demo",
        ])
        .env("ROUNDS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut email, mut password, mut link) = (None, None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        let value = line
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_owned();
        if line.contains("email:") {
            email = Some(value);
        } else if line.contains("password:") {
            password = Some(value);
        } else if line.contains("Patient link:") {
            link = Some(value);
        } else if line.contains("Ctrl-C") {
            break;
        }
    }
    let (email, password, link) = (email.unwrap(), password.unwrap(), link.unwrap());
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{port}/join/")),
        "{link}"
    );
    let http = reqwest::Client::new();
    let mut ok = false;
    for _ in 0..100 {
        if let Ok(r) = http
            .post(format!("http://127.0.0.1:{port}/api/v1/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
        {
            assert_eq!(r.status(), StatusCode::OK);
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "could not log in to the demo");
    // The link opens the patient app; the app reads the clinic's name from the API.
    let page = http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains(FIXTURE_SCRIPT));
    let code = link.rsplit('/').next().unwrap();
    let info = http
        .get(format!("http://127.0.0.1:{port}/api/v1/join/{code}"))
        .send()
        .await
        .unwrap();
    assert!(info.text().await.unwrap().contains("Rounds Demo Clinic"));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn firewall_prints_the_exact_ports() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rounds.toml");
    std::fs::write(&path, "[server]\nlisten = \"0.0.0.0:443\"\npublic_url = \"https://visits.example.org\"\n[media]\nudp_listen = \"0.0.0.0:3478\"\nadvertise_ip = \"203.0.113.10\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .args(["firewall", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rules: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules = rules.as_array().unwrap();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(rules[0]["host"], "visits.example.org");
    assert_eq!(rules[0]["port"], 443);
    assert_eq!(rules[0]["protocol"], "tcp");
    assert_eq!(rules[1]["host"], "203.0.113.10");
    assert_eq!(rules[1]["port"], 3478);
    assert_eq!(rules[1]["protocol"], "udp");
    let table = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("firewall")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("PURPOSE") && table.contains("3478") && table.contains("no STUN"),
        "{table}"
    );
}
