//! The words of invitations and reminders, for SMS and email.
//!
//! A text message or an email can be read by anyone who picks up the phone or shares the
//! inbox, so these carry only the clinic's name, the start time and the link: never who the
//! visit is for, why, or with which kind of clinician. Wording aims at someone who may be
//! anxious and not at ease with computers: short sentences, one thing to do.
//!
//! Templates stick to the GSM-7 alphabet (no curly quotes, no ellipsis character) so an SMS
//! is not switched to UCS-2, which would cut each segment from 160 to 70 characters.

/// One notification, ready for every channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub sms: String,
    pub email_subject: String,
    pub email_text: String,
    pub email_html: String,
}

/// SMS longer than this are split into more than two segments; many phones then show them
/// out of order or late.
pub const MAX_SMS_CHARS: usize = 320;

const OPT_OUT: &str = "Reply STOP to opt out.";
const CLINIC_SMS_CHARS: usize = 40;
const CLINIC_EMAIL_CHARS: usize = 80;
const WHEN_CHARS: usize = 40;

/// The first message about a visit. `invitee_is_guest` is for someone the patient or
/// clinician asked to join (a relative, an interpreter), who is not the one being seen.
pub fn invitation(
    clinic_name: &str,
    link: &str,
    starts_at_local: &str,
    invitee_is_guest: bool,
) -> Outgoing {
    let when = one_line(starts_at_local, WHEN_CHARS);
    let link = link.trim();
    let clinic = one_line(clinic_name, CLINIC_EMAIL_CHARS);
    let clinic_sms = one_line(clinic_name, CLINIC_SMS_CHARS);

    let (sms, subject, intro) = if invitee_is_guest {
        (
            format!(
                "{clinic_sms}: you are invited to join a video visit at {when}. \
                 Join from your phone or computer: {link}\n{OPT_OUT}"
            ),
            format!("You are invited to a video visit with {clinic}"),
            format!("{clinic} has invited you to join a video visit as a guest."),
        )
    } else {
        (
            format!(
                "{clinic_sms}: your video visit is at {when}. \
                 Join from your phone or computer: {link}\n{OPT_OUT}"
            ),
            format!("Your video visit with {clinic}"),
            format!("{clinic} has set up a video visit for you."),
        )
    };
    let short = format!("{clinic_sms}: video visit at {when}. Join: {link}\n{OPT_OUT}");
    compose(
        fit_sms(sms, short),
        subject,
        &clinic,
        &intro,
        &when,
        link,
        "Open the link a few minutes before the start.",
    )
}

/// A reminder shortly before a visit.
pub fn reminder(clinic_name: &str, link: &str, starts_at_local: &str) -> Outgoing {
    let when = one_line(starts_at_local, WHEN_CHARS);
    let link = link.trim();
    let clinic = one_line(clinic_name, CLINIC_EMAIL_CHARS);
    let clinic_sms = one_line(clinic_name, CLINIC_SMS_CHARS);

    let sms = format!(
        "{clinic_sms} reminder: your video visit is at {when}. \
         Please join a few minutes early: {link}\n{OPT_OUT}"
    );
    let short = format!("{clinic_sms} reminder: video visit at {when}. Join: {link}\n{OPT_OUT}");
    compose(
        fit_sms(sms, short),
        format!("Reminder: your video visit with {clinic} is at {when}"),
        &clinic,
        &format!("This is a reminder of your video visit with {clinic}."),
        &when,
        link,
        "Please join a few minutes early.",
    )
}

fn fit_sms(full: String, short: String) -> String {
    if full.chars().count() <= MAX_SMS_CHARS {
        full
    } else {
        short
    }
}

fn compose(
    sms: String,
    email_subject: String,
    clinic: &str,
    intro: &str,
    when: &str,
    link: &str,
    timing: &str,
) -> Outgoing {
    let email_text = format!(
        "Hello,\n\
         \n\
         {intro}\n\
         \n\
         When: {when}\n\
         Join: {link}\n\
         \n\
         {timing}\n\
         It works on a phone, tablet or computer, and there is\n\
         nothing to install. When your browser asks, allow it\n\
         to use your camera and microphone.\n\
         \n\
         If you did not expect this message, you can ignore it.\n\
         \n\
         {clinic}\n"
    );

    let clinic_h = escape_html(clinic);
    let when_h = escape_html(when);
    let link_h = escape_html(link);
    // Only a web link becomes clickable; anything else is shown, never followed.
    let button = if link.starts_with("https://") || link.starts_with("http://") {
        format!(
            "<p style=\"margin:24px 0\"><a href=\"{link_h}\" style=\"background:#1f6feb;\
             color:#ffffff;padding:12px 20px;border-radius:6px;text-decoration:none;\
             font-weight:bold;display:inline-block\">Join the video visit</a></p>\n"
        )
    } else {
        String::new()
    };
    let email_html = format!(
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head>\n\
         <body style=\"font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5;\
         color:#1b1b1b;max-width:560px;margin:0 auto;padding:16px\">\n\
         <p>Hello,</p>\n\
         <p>{intro_h}</p>\n\
         <p><strong>When:</strong> {when_h}</p>\n\
         {button}\
         <p>If the button does not work, copy this link into your browser:<br>\
         <span style=\"word-break:break-all\">{link_h}</span></p>\n\
         <p>{timing_h} It works on a phone, tablet or computer, and there is nothing to \
         install. When your browser asks, allow it to use your camera and microphone.</p>\n\
         <p style=\"color:#555555;font-size:14px\">If you did not expect this message, \
         you can ignore it.</p>\n\
         <p>{clinic_h}</p>\n\
         </body>\n\
         </html>\n",
        title = escape_html(&email_subject),
        intro_h = escape_html(intro),
        timing_h = escape_html(timing),
    );

    Outgoing {
        sms,
        email_subject,
        email_text,
        email_html,
    }
}

/// Makes caller-supplied text safe to place on one line of a message: control characters
/// (a newline in a subject would end the header) become spaces, runs of spaces collapse,
/// and overlong text is cut.
fn one_line(text: &str, max_chars: usize) -> String {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .collect();
    let joined = words
        .into_iter()
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if joined.chars().count() <= max_chars {
        return joined;
    }
    let cut: String = joined.chars().take(max_chars.saturating_sub(3)).collect();
    format!("{}...", cut.trim_end())
}

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_flattens_and_cuts() {
        assert_eq!(
            one_line("  St. Mary's\r\nClinic\t", 40),
            "St. Mary's Clinic"
        );
        assert_eq!(one_line("abcdefghij", 8), "abcde...");
        assert_eq!(one_line("", 8), "");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn non_web_links_are_not_clickable() {
        let out = invitation("Clinic", "javascript:alert(1)", "Mon 24 Nov, 14:30", false);
        assert!(!out.email_html.contains("href=\"javascript"));
    }
}
