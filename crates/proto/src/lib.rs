//! The Rounds wire contract.
//!
//! Everything that crosses a process boundary is defined here exactly once: the REST bodies
//! of `/api/v1`, the claims inside the tokens the server signs, and (with the realtime work)
//! the signaling messages on `/rtc`. The server, the desktop app, the tests and, through generated
//! TypeScript (`ui/src/generated/proto.ts`), the web UI all use these types.
//!
//! This crate has no I/O. Personal data is wrapped in [`Phi`] so it can never be printed
//! into a log by accident.

mod claims;
mod phi;
mod rest;
mod signal;

pub use claims::*;
pub use phi::Phi;
pub use rest::*;
pub use signal::*;

/// Every TypeScript declaration generated from this crate, in a stable order.
///
/// `ui/src/generated/proto.ts` is exactly this text; a test fails when the file is stale.
pub fn typescript_bindings() -> String {
    use ts_rs::TS;
    let decls = [
        Role::decl(),
        Grant::decl(),
        RoomClaims::decl(),
        SessionClaims::decl(),
        Problem::decl(),
        LoginRequest::decl(),
        RefreshRequest::decl(),
        LogoutRequest::decl(),
        OidcSignIn::decl(),
        OidcTokenRequest::decl(),
        EhrLaunchOptions::decl(),
        EhrChoice::decl(),
        Clinician::decl(),
        SessionResponse::decl(),
        SignInTicket::decl(),
        TicketExchangeRequest::decl(),
        QueueEvent::decl(),
        VisitState::decl(),
        NetworkGrade::decl(),
        DeviceCheck::decl(),
        Visit::decl(),
        CreateVisitRequest::decl(),
        CreatedVisit::decl(),
        Queue::decl(),
        PatientLink::decl(),
        RunningLateRequest::decl(),
        ParticipantState::decl(),
        Participant::decl(),
        RoomToken::decl(),
        JoinLinkInfo::decl(),
        JoinRequest::decl(),
        GuestTokenRequest::decl(),
        Channel::decl(),
        Invitee::decl(),
        InvitationStatus::decl(),
        CreateInvitationRequest::decl(),
        Invitation::decl(),
        ChatMessage::decl(),
        PostChatRequest::decl(),
        ChatLog::decl(),
        Jwk::decl(),
        Jwks::decl(),
        Health::decl(),
        IntakeKind::decl(),
        IntakeQuestion::decl(),
        ConsentText::decl(),
        WaitingItemKind::decl(),
        WaitingItem::decl(),
        PatientContent::decl(),
        IntakeAnswer::decl(),
        CheckInRequest::decl(),
        ConsentRecord::decl(),
        IntakeAnswerRecord::decl(),
        SurveyRequest::decl(),
        SurveyRecord::decl(),
        CheckInRecord::decl(),
        WaitEstimate::decl(),
        NetworkTestInfo::decl(),
        NetworkTestUpload::decl(),
        Connectivity::decl(),
        PcKind::decl(),
        TrackKind::decl(),
        TrackInfo::decl(),
        IceCandidate::decl(),
        RenderSize::decl(),
        MediaKind::decl(),
        HostAction::decl(),
        ClientMessage::decl(),
        RoomParticipant::decl(),
        VideoConstraints::decl(),
        ParticipantQuality::decl(),
        ErrorCode::decl(),
        ServerMessage::decl(),
    ];
    let mut out = String::from(
        "// Generated from crates/proto by `cargo run -p rounds-proto --bin gen-ts`. Do not edit.\n\n",
    );
    for decl in decls {
        out.push_str("export ");
        out.push_str(&decl);
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}
