-- Clinician sign-in through the hospital's identity provider (OIDC). Accounts are linked
-- by the provider's issuer and subject (clinicians.oidc_issuer/oidc_subject, from 0001);
-- fhir_user is the clinician's FHIR resource (e.g. Practitioner/123) as the provider's
-- fhirUser claim names it, for finding the account on a first sign-in.
ALTER TABLE clinicians ADD COLUMN fhir_user TEXT;
CREATE UNIQUE INDEX clinicians_fhir_user ON clinicians(fhir_user);
