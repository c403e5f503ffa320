-- SMART on FHIR launches. Portable SQL, like 0001.

-- One Rounds visit per EHR encounter: a second launch for the same encounter opens the same
-- room. The encounter id is the EHR's own identifier, so it is kept here and nowhere else
-- (never in logs or audit details).
CREATE TABLE ehr_encounters (
    iss                TEXT NOT NULL,
    encounter_id       TEXT NOT NULL,
    visit_id           TEXT NOT NULL REFERENCES visits(id),
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (iss, encounter_id)
);
CREATE INDEX ehr_encounters_visit ON ehr_encounters(visit_id);
