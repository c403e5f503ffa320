//! The wording of invitations and reminders: what they must contain, and must not.

use rounds_notify::messages::{self, MAX_SMS_CHARS, Outgoing};

const LINK: &str = "https://rounds.clinic.example/j/Zm9vYmFyYmF6cXV4Zm9vYmFy";
const WHEN: &str = "Mon 24 Nov, 14:30";

fn all_variants(clinic: &str, link: &str, when: &str) -> Vec<(&'static str, Outgoing)> {
    vec![
        (
            "invitation",
            messages::invitation(clinic, link, when, false),
        ),
        (
            "guest invitation",
            messages::invitation(clinic, link, when, true),
        ),
        ("reminder", messages::reminder(clinic, link, when)),
    ]
}

fn texts(out: &Outgoing) -> [(&'static str, &str); 4] {
    [
        ("sms", &out.sms),
        ("subject", &out.email_subject),
        ("text", &out.email_text),
        ("html", &out.email_html),
    ]
}

#[test]
fn nothing_clinical() {
    const CLINICAL: &[&str] = &[
        "patient",
        "doctor",
        "dr.",
        "physician",
        "nurse",
        "clinician",
        "specialist",
        "diagnos",
        "symptom",
        "prescri",
        "medic",
        "treatment",
        "therap",
        "condition",
        "result",
        "psych",
        "mental",
        "counsel",
        "surgery",
        "pregnan",
        "illness",
        "disease",
        "health",
        "reason",
        "follow-up",
        "referral",
        "lab ",
    ];
    for (variant, out) in all_variants("Riverside", LINK, WHEN) {
        for (part, text) in texts(&out) {
            let lower = text.to_lowercase();
            for word in CLINICAL {
                assert!(
                    !lower.contains(word),
                    "{variant} {part} contains {word:?}:\n{text}"
                );
            }
        }
    }
}

#[test]
fn link_clinic_and_time_are_everywhere() {
    for (variant, out) in all_variants("Riverside Family Clinic", LINK, WHEN) {
        for (part, text) in texts(&out) {
            assert!(text.contains("Riverside Family Clinic"), "{variant} {part}");
            if part != "subject" {
                assert!(text.contains(LINK), "{variant} {part}");
            }
        }
        assert!(
            out.sms.contains(WHEN)
                && out.email_text.contains(WHEN)
                && out.email_html.contains(WHEN)
        );
        assert!(out.sms.contains("STOP"), "{variant}");
    }
    let guest = messages::invitation("Riverside", LINK, WHEN, true);
    let patient = messages::invitation("Riverside", LINK, WHEN, false);
    assert_ne!(guest.sms, patient.sms);
    assert!(guest.email_text.contains("guest"));
}

#[test]
fn html_escapes_the_clinic_name() {
    let clinic = "Oak & Elm <script>alert(\"x\")</script> 'Care'";
    for (variant, out) in all_variants(clinic, LINK, "<b>Mon</b>") {
        assert!(!out.email_html.contains("<script>"), "{variant}");
        assert!(!out.email_html.contains("<b>"), "{variant}");
        assert!(
            out.email_html.contains(
                "Oak &amp; Elm &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &#39;Care&#39;"
            ),
            "{variant}"
        );
        // Plain text is not markup: the name appears as given.
        assert!(out.email_text.contains(clinic));
    }
    let out = messages::invitation(
        "Clinic",
        "https://x.example/j/a\"onmouseover=\"alert(1)",
        WHEN,
        false,
    );
    assert!(!out.email_html.contains("\"onmouseover"));
}

#[test]
fn caller_text_can_not_break_lines_or_headers() {
    let out = messages::invitation(
        "Riverside\r\nBcc: eve@example.com",
        LINK,
        "Mon\n24 Nov",
        false,
    );
    assert!(!out.email_subject.contains('\n') && !out.email_subject.contains('\r'));
    assert!(out.email_subject.contains("Riverside Bcc: eve@example.com"));
    assert!(out.sms.contains("Mon 24 Nov"));
}

#[test]
fn sms_stays_within_two_segments() {
    let long_link = format!("https://rounds.clinic.example/j/{}", "x".repeat(90));
    let long_clinic =
        "The Very Long Named Community Practice of the Northern Valley Region ".repeat(3);
    let long_when = "Wednesday 24 September 2025, 14:30 Central European Summer Time";
    for (variant, out) in all_variants(&long_clinic, &long_link, long_when) {
        let chars = out.sms.chars().count();
        assert!(
            chars <= MAX_SMS_CHARS,
            "{variant}: {chars} chars\n{}",
            out.sms
        );
        assert!(out.sms.contains(&long_link), "{variant}");
    }
    for (variant, out) in all_variants("St. Mary's Clinic", LINK, WHEN) {
        assert!(out.sms.chars().count() <= 200, "{variant}: {}", out.sms);
        // GSM-7 text only, so the SMS is not sent as UCS-2.
        assert!(out.sms.is_ascii(), "{variant}: {}", out.sms);
    }
}
