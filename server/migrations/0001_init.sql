-- Rounds schema. Portable SQL: TEXT ids, BIGINT Unix milliseconds, no SQLite-only types,
-- so the same migrations can be ported to Postgres.

CREATE TABLE clinics (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    time_zone          TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);

CREATE TABLE clinicians (
    id                 TEXT PRIMARY KEY,
    clinic_id          TEXT NOT NULL REFERENCES clinics(id),
    email              TEXT NOT NULL UNIQUE,
    display_name       TEXT NOT NULL,
    -- argon2id PHC string for local accounts; NULL for accounts that sign in through OIDC.
    password_hash      TEXT,
    -- The identity provider's issuer and subject, for OIDC accounts.
    oidc_issuer        TEXT,
    oidc_subject       TEXT,
    disabled           INTEGER NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL
);
CREATE UNIQUE INDEX clinicians_oidc ON clinicians(oidc_issuer, oidc_subject);

-- Refresh tokens: single use, rotated; a reused one revokes its whole family.
CREATE TABLE refresh_tokens (
    token_hash         TEXT PRIMARY KEY,
    family_id          TEXT NOT NULL,
    clinician_id       TEXT NOT NULL REFERENCES clinicians(id),
    issued_at          BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    used_at            BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);

CREATE TABLE session_families (
    id                 TEXT PRIMARY KEY,
    clinician_id       TEXT NOT NULL REFERENCES clinicians(id),
    created_at         BIGINT NOT NULL,
    revoked_at         BIGINT,
    revoked_reason     TEXT
);

CREATE TABLE visits (
    id                 TEXT PRIMARY KEY,
    clinic_id          TEXT NOT NULL REFERENCES clinics(id),
    clinician_id       TEXT NOT NULL REFERENCES clinicians(id),
    scheduled_at       BIGINT NOT NULL,
    duration_minutes   INTEGER NOT NULL,
    patient_name       TEXT,
    waiting_since      BIGINT,
    started_at         BIGINT,
    ended_at           BIGINT,
    running_late_minutes INTEGER,
    device_check       TEXT,
    created_at         BIGINT NOT NULL
);
CREATE INDEX visits_clinician_day ON visits(clinician_id, scheduled_at);

-- Join links: only the SHA-256 of the 128-bit code is stored.
CREATE TABLE join_links (
    code_hash          TEXT PRIMARY KEY,
    visit_id           TEXT NOT NULL REFERENCES visits(id),
    role               TEXT NOT NULL,
    -- Everyone joining from links of one invitee is one participant (rejoin, reminders).
    invitee_id         TEXT NOT NULL,
    expires_at         BIGINT NOT NULL,
    revoked_at         BIGINT,
    created_at         BIGINT NOT NULL
);
CREATE INDEX join_links_visit ON join_links(visit_id);

CREATE TABLE participants (
    id                 TEXT PRIMARY KEY,
    visit_id           TEXT NOT NULL REFERENCES visits(id),
    role               TEXT NOT NULL,
    invitee_id         TEXT,
    clinician_id       TEXT,
    display_name       TEXT NOT NULL,
    state              TEXT NOT NULL,
    joined_at          BIGINT NOT NULL,
    admitted_at        BIGINT,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX participants_visit ON participants(visit_id);
CREATE UNIQUE INDEX participants_invitee ON participants(visit_id, invitee_id);
CREATE UNIQUE INDEX participants_clinician ON participants(visit_id, clinician_id);

CREATE TABLE invitations (
    id                 TEXT PRIMARY KEY,
    visit_id           TEXT NOT NULL REFERENCES visits(id),
    invitee            TEXT NOT NULL,
    invitee_id         TEXT NOT NULL,
    channel            TEXT NOT NULL,
    -- Phone or email: PHI, needed to send the reminder.
    recipient          TEXT,
    status             TEXT NOT NULL,
    provider_id        TEXT,
    reminder_at        BIGINT,
    reminder_sent_at   BIGINT,
    reminder_attempts  INTEGER NOT NULL DEFAULT 0,
    created_by         TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX invitations_reminder ON invitations(reminder_at);

CREATE TABLE chat_messages (
    id                 TEXT PRIMARY KEY,
    visit_id           TEXT NOT NULL REFERENCES visits(id),
    sender_id          TEXT NOT NULL,
    sender_role        TEXT NOT NULL,
    recipient_id       TEXT,
    body               TEXT NOT NULL,
    sent_at            BIGINT NOT NULL
);
CREATE INDEX chat_messages_visit ON chat_messages(visit_id, sent_at);

-- Append-only, hash-chained: hash = SHA-256(prev_hash || canonical row).
CREATE TABLE audit_log (
    seq                BIGINT PRIMARY KEY,
    at                 BIGINT NOT NULL,
    actor              TEXT NOT NULL,
    action             TEXT NOT NULL,
    visit_id           TEXT,
    subject            TEXT,
    detail             TEXT NOT NULL,
    prev_hash          TEXT NOT NULL,
    hash               TEXT NOT NULL
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
