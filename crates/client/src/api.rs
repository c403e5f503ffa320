//! The REST calls a client needs around joining: clinician login, visits, and the room
//! tokens they lead to. Errors carry the server's problem `detail`.

use std::time::Duration;

use chrono::Utc;
use rounds_proto::{
    CreateVisitRequest, CreatedVisit, GuestTokenRequest, JoinRequest, LoginRequest, Participant,
    Phi, Problem, Role, RoomToken, SessionResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::ClientError;

/// A small client for `/api/v1`.
#[derive(Debug, Clone)]
pub struct Api {
    base: Url,
    http: reqwest::Client,
}

/// The code at the end of a patient or guest link (`.../join/{code}`).
pub fn link_code(link: &str) -> Option<&str> {
    let code = link.trim_end_matches('/').rsplit('/').next()?;
    (!code.is_empty() && link.contains("/join/")).then_some(code)
}

impl Api {
    pub fn new(base: Url) -> Result<Api, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Api { base, http })
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        let base = self.base.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path}"))
            .map_err(|e| ClientError::Config(format!("bad API URL: {e}")))
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: &B,
    ) -> Result<T, ClientError> {
        let mut request = self.http.post(self.url(path)?).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.json().await?);
        }
        let detail = match response.json::<Problem>().await {
            Ok(problem) => problem.detail,
            Err(_) => status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_owned(),
        };
        Err(ClientError::Api {
            status: status.as_u16(),
            detail,
        })
    }

    /// A clinician session (access and refresh tokens).
    pub async fn login(&self, email: &str, password: &str) -> Result<SessionResponse, ClientError> {
        let body = LoginRequest {
            email: email.to_owned(),
            password: password.to_owned(),
        };
        self.post("/api/v1/auth/login", None, &body).await
    }

    pub async fn create_visit(
        &self,
        access_token: &str,
        request: &CreateVisitRequest,
    ) -> Result<CreatedVisit, ClientError> {
        self.post("/api/v1/visits", Some(access_token), request)
            .await
    }

    /// A visit starting now, `duration_minutes` long, for a patient of that name.
    pub async fn create_visit_now(
        &self,
        access_token: &str,
        duration_minutes: u32,
        patient_name: &str,
    ) -> Result<CreatedVisit, ClientError> {
        let request = CreateVisitRequest {
            scheduled_at: Utc::now(),
            duration_minutes: Some(duration_minutes),
            patient_name: Some(Phi::new(patient_name.to_owned())),
        };
        self.create_visit(access_token, &request).await
    }

    /// The signed-in clinician's provider token for a visit's room.
    pub async fn provider_token(
        &self,
        access_token: &str,
        visit_id: &str,
    ) -> Result<RoomToken, ClientError> {
        self.post(
            &format!("/api/v1/visits/{visit_id}/token"),
            Some(access_token),
            &serde_json::json!({}),
        )
        .await
    }

    /// Checks in from a link code: a token in the lobby.
    pub async fn join_link(
        &self,
        code: &str,
        display_name: Option<&str>,
    ) -> Result<RoomToken, ClientError> {
        let body = JoinRequest {
            display_name: display_name.map(|n| Phi::new(n.to_owned())),
        };
        self.post(&format!("/api/v1/join/{code}"), None, &body)
            .await
    }

    /// A guest or interpreter token for a room, minted by an admitted participant with the
    /// invite grant (`room_token`).
    pub async fn guest_token(
        &self,
        room_token: &str,
        room: &str,
        display_name: &str,
        role: Role,
    ) -> Result<RoomToken, ClientError> {
        let body = GuestTokenRequest {
            display_name: Phi::new(display_name.to_owned()),
            role,
        };
        self.post(
            &format!("/api/v1/rooms/{room}/guest-tokens"),
            Some(room_token),
            &body,
        )
        .await
    }

    /// Admits a waiting participant (a clinician's access token or a host's room token).
    pub async fn admit(
        &self,
        bearer: &str,
        visit_id: &str,
        participant_id: &str,
    ) -> Result<Participant, ClientError> {
        self.post(
            &format!("/api/v1/visits/{visit_id}/admit/{participant_id}"),
            Some(bearer),
            &serde_json::json!({}),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_codes() {
        assert_eq!(
            link_code("http://127.0.0.1:8080/join/abc123"),
            Some("abc123")
        );
        assert_eq!(link_code("https://x.org/join/abc123/"), Some("abc123"));
        assert_eq!(link_code("https://x.org/visits/abc"), None);
    }
}
