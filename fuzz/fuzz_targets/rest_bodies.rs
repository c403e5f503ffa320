//! REST bodies: every JSON body the API accepts is decoded into one of these types before a
//! handler sees it. The first byte picks the type; the rest is the body. Decoding must never
//! panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rounds_proto::{
    CheckInRequest, CreateInvitationRequest, CreateVisitRequest, GuestTokenRequest, JoinRequest,
    LoginRequest, LogoutRequest, PostChatRequest, RefreshRequest, RunningLateRequest,
    SurveyRequest,
};

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) {
    let _ = serde_json::from_slice::<T>(body);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 11 {
        0 => decode::<LoginRequest>(body),
        1 => decode::<RefreshRequest>(body),
        2 => decode::<LogoutRequest>(body),
        3 => decode::<CreateVisitRequest>(body),
        4 => decode::<RunningLateRequest>(body),
        5 => decode::<JoinRequest>(body),
        6 => decode::<GuestTokenRequest>(body),
        7 => decode::<CreateInvitationRequest>(body),
        8 => decode::<PostChatRequest>(body),
        9 => decode::<CheckInRequest>(body),
        _ => decode::<SurveyRequest>(body),
    }
});
