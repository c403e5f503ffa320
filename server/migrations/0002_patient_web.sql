-- What the patient pages collect around a visit. Portable SQL, like 0001.

-- Intake answers: PHI, stored with the visit. One current answer per question; checking in
-- again replaces them. `label` is the question's wording as asked (English), so a later
-- change of the form does not change what the clinician reads.
CREATE TABLE intake_answers (
    visit_id           TEXT NOT NULL REFERENCES visits(id),
    question_id        TEXT NOT NULL,
    participant_id     TEXT NOT NULL REFERENCES participants(id),
    label              TEXT NOT NULL,
    answer             TEXT NOT NULL,
    lang               TEXT NOT NULL,
    submitted_at       BIGINT NOT NULL,
    PRIMARY KEY (visit_id, question_id)
);

-- Every consent agreement, with the version of the wording shown. Append-only.
CREATE TABLE consents (
    id                 TEXT PRIMARY KEY,
    visit_id           TEXT NOT NULL REFERENCES visits(id),
    participant_id     TEXT NOT NULL REFERENCES participants(id),
    role               TEXT NOT NULL,
    version            TEXT NOT NULL,
    lang               TEXT NOT NULL,
    accepted_at        BIGINT NOT NULL
);
CREATE INDEX consents_visit ON consents(visit_id, accepted_at);

-- The post-visit survey: one per participant; answering again replaces it. The comment is PHI.
CREATE TABLE surveys (
    participant_id     TEXT PRIMARY KEY REFERENCES participants(id),
    visit_id           TEXT NOT NULL REFERENCES visits(id),
    role               TEXT NOT NULL,
    rating             INTEGER NOT NULL,
    comment            TEXT,
    submitted_at       BIGINT NOT NULL
);
CREATE INDEX surveys_visit ON surveys(visit_id);
