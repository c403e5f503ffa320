//! What each clinic shows patients and guests around a visit: the intake questions, the
//! consent text and the waiting-room content, in English and Spanish.
//!
//! A clinic's wording comes from the TOML file named by `server.clinic_content` (sections
//! keyed by clinic id or clinic name, with a `[default]` for the rest), or else from the
//! built-in wording below. Videos and captions it names are files next to that TOML file,
//! served at `/content/{file}` by `http::pages`. Nothing here is about a patient; answers
//! are checked here ([`ClinicContent::canonical_answers`]) and stored by `store::patient`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rounds_proto::{
    ConsentText, IntakeAnswer, IntakeKind, IntakeQuestion, PatientContent, Phi, Role, WaitingItem,
    WaitingItemKind,
};
use serde::Deserialize;

/// Languages the patient pages speak. The first is the fallback.
pub const LANGUAGES: [&str; 2] = ["en", "es"];
/// Longest intake answer kept, in characters.
pub const MAX_ANSWER_CHARS: usize = 2000;

/// Words in each language, keyed by language code.
pub type Localized<T> = BTreeMap<String, T>;

/// The whole content file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentFile {
    /// Used for every clinic without a section of its own.
    #[serde(default)]
    pub default: Option<ClinicContent>,
    /// Keyed by clinic id or by clinic name.
    #[serde(default)]
    pub clinics: BTreeMap<String, ClinicContent>,
    /// The folder `/content/` files are served from: the file's own folder.
    #[serde(skip)]
    pub media_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClinicContent {
    /// A phone number patients can call, shown on "this link cannot be used" pages.
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub intake: Vec<QuestionConfig>,
    pub consent: ConsentConfig,
    #[serde(default)]
    pub waiting: Vec<WaitingConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionConfig {
    pub id: String,
    pub kind: IntakeKind,
    #[serde(default)]
    pub required: bool,
    pub label: Localized<String>,
    #[serde(default)]
    pub help: Localized<String>,
    /// For `choice`: the options in each language, in the same order.
    #[serde(default)]
    pub choices: Localized<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentConfig {
    /// Change it whenever the wording changes; each agreement stores it.
    pub version: String,
    pub title: Localized<String>,
    pub paragraphs: Localized<Vec<String>>,
    pub checkbox: Localized<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitingConfig {
    pub kind: WaitingItemKind,
    pub title: Localized<String>,
    #[serde(default)]
    pub paragraphs: Localized<Vec<String>>,
    /// For videos: a file name in the content folder.
    #[serde(default)]
    pub video: Option<String>,
    /// WebVTT captions for the video, a file name in the content folder.
    #[serde(default)]
    pub captions: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
}

impl ContentFile {
    /// Reads and checks a content file.
    pub fn load(path: &Path) -> Result<Self, ContentError> {
        let text = std::fs::read_to_string(path).map_err(|source| ContentError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut file: ContentFile = toml::from_str(&text).map_err(|e| ContentError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        file.media_dir = path.parent().map(Path::to_owned).unwrap_or_default();
        let problems: Vec<String> = file
            .default
            .iter()
            .map(|c| ("default", c))
            .chain(file.clinics.iter().map(|(k, c)| (k.as_str(), c)))
            .flat_map(|(name, c)| {
                c.problems()
                    .into_iter()
                    .map(move |p| format!("{name}: {p}"))
            })
            .collect();
        if !problems.is_empty() {
            return Err(ContentError::Parse {
                path: path.to_owned(),
                message: problems.join("; "),
            });
        }
        Ok(file)
    }

    /// The content for one clinic: its own section, else `[default]`, else the built-in words.
    pub fn clinic(&self, clinic_id: &str, clinic_name: &str) -> ClinicContent {
        self.clinics
            .get(clinic_id)
            .or_else(|| self.clinics.get(clinic_name))
            .or(self.default.as_ref())
            .cloned()
            .unwrap_or_else(built_in)
    }
}

/// The configured content file (read once per path), or `None` for the built-in words.
pub fn configured(path: Option<&Path>) -> Option<Arc<ContentFile>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<ContentFile>>>> = OnceLock::new();
    let path = path?;
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(file) = cache.get(path) {
        return Some(file.clone());
    }
    match ContentFile::load(path) {
        Ok(file) => {
            let file = Arc::new(file);
            cache.insert(path.to_owned(), file.clone());
            Some(file)
        }
        Err(e) => {
            // The configuration was validated at start; the file changed since.
            tracing::error!(error = %e, "clinic content could not be read; using the built-in words");
            None
        }
    }
}

/// The content a clinic shows, from the configured file or the built-in words.
pub fn for_clinic(path: Option<&Path>, clinic_id: &str, clinic_name: &str) -> ClinicContent {
    match configured(path) {
        Some(file) => file.clinic(clinic_id, clinic_name),
        None => built_in(),
    }
}

/// The best supported language for a request like `es-MX` or `en`.
pub fn language(requested: Option<&str>) -> &'static str {
    let wanted = requested
        .unwrap_or("en")
        .split(['-', '_'])
        .next()
        .unwrap_or("en")
        .to_ascii_lowercase();
    LANGUAGES
        .iter()
        .copied()
        .find(|l| *l == wanted)
        .unwrap_or(LANGUAGES[0])
}

fn pick<'a, T>(words: &'a Localized<T>, lang: &str) -> Option<&'a T> {
    words
        .get(lang)
        .or_else(|| words.get(LANGUAGES[0]))
        .or_else(|| words.values().next())
}

fn pick_string(words: &Localized<String>, lang: &str) -> String {
    pick(words, lang).cloned().unwrap_or_default()
}

impl ClinicContent {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut ids = std::collections::BTreeSet::new();
        for q in &self.intake {
            if q.id.trim().is_empty() || !ids.insert(q.id.clone()) {
                out.push(format!(
                    "intake question ids must be unique and not empty (\"{}\")",
                    q.id
                ));
            }
            if !q.label.contains_key(LANGUAGES[0]) {
                out.push(format!(
                    "intake question \"{}\" needs an English label",
                    q.id
                ));
            }
            if q.kind == IntakeKind::Choice {
                let counts: Vec<usize> = q.choices.values().map(Vec::len).collect();
                if counts.is_empty()
                    || counts.contains(&0)
                    || counts.windows(2).any(|w| w[0] != w[1])
                {
                    out.push(format!(
                        "intake question \"{}\" needs the same, non-empty list of choices in every language",
                        q.id
                    ));
                }
            }
        }
        if self.consent.version.trim().is_empty() {
            out.push("consent.version must not be empty".into());
        }
        for w in &self.waiting {
            if w.kind == WaitingItemKind::Video && w.video.is_none() {
                out.push(
                    "a waiting-room video needs `video`, a file name in the content folder".into(),
                );
            }
            for file in w.video.iter().chain(w.captions.iter()) {
                if !is_plain_file_name(file) {
                    out.push(format!(
                        "\"{file}\" must be a plain file name in the content folder"
                    ));
                }
            }
        }
        out
    }

    /// The content in `lang`, as the patient pages show it. Guests get no intake.
    pub fn render(&self, clinic_name: &str, lang: &str, role: Role) -> PatientContent {
        let lang = language(Some(lang));
        let intake = if role == Role::Patient {
            self.intake
                .iter()
                .map(|q| IntakeQuestion {
                    id: q.id.clone(),
                    label: pick_string(&q.label, lang),
                    help: pick(&q.help, lang).cloned(),
                    kind: q.kind,
                    choices: pick(&q.choices, lang).cloned().unwrap_or_default(),
                    required: q.required,
                })
                .collect()
        } else {
            Vec::new()
        };
        PatientContent {
            clinic_name: clinic_name.to_owned(),
            lang: lang.to_owned(),
            clinic_phone: self.phone.clone(),
            intake,
            consent: ConsentText {
                version: self.consent.version.clone(),
                title: pick_string(&self.consent.title, lang),
                paragraphs: pick(&self.consent.paragraphs, lang)
                    .cloned()
                    .unwrap_or_default(),
                checkbox: pick_string(&self.consent.checkbox, lang),
            },
            waiting: self
                .waiting
                .iter()
                .map(|w| WaitingItem {
                    kind: w.kind,
                    title: pick_string(&w.title, lang),
                    paragraphs: pick(&w.paragraphs, lang).cloned().unwrap_or_default(),
                    src: w.video.as_ref().map(|f| format!("/content/{f}")),
                    captions: w.captions.as_ref().map(|f| format!("/content/{f}")),
                })
                .collect(),
        }
    }

    /// Checks answers against the questions and returns them in the clinic's words:
    /// `(question id, English label, answer)`, with choices and yes/no in English so the
    /// clinician reads one language whatever the patient used.
    pub fn canonical_answers(
        &self,
        answers: &[IntakeAnswer],
        lang: &str,
    ) -> Result<Vec<(String, String, Phi<String>)>, String> {
        let lang = language(Some(lang));
        let mut out = Vec::new();
        for a in answers {
            if !self.intake.iter().any(|q| q.id == a.question_id) {
                return Err(format!(
                    "There is no question \"{}\" on this form.",
                    a.question_id
                ));
            }
        }
        for q in &self.intake {
            let mut given = answers.iter().filter(|a| a.question_id == q.id);
            let answer = given
                .next()
                .map(|a| a.answer.expose().trim().to_owned())
                .unwrap_or_default();
            if given.next().is_some() {
                return Err(format!("The question \"{}\" was answered twice.", q.id));
            }
            let label = pick_string(&q.label, LANGUAGES[0]);
            if answer.is_empty() {
                if q.required {
                    return Err(format!("Please answer: {}", pick_string(&q.label, lang)));
                }
                continue;
            }
            if answer.chars().count() > MAX_ANSWER_CHARS {
                return Err(format!(
                    "Answers must be at most {MAX_ANSWER_CHARS} characters."
                ));
            }
            let canonical = match q.kind {
                IntakeKind::Text | IntakeKind::LongText => answer,
                IntakeKind::YesNo => match answer.as_str() {
                    "yes" | "no" => answer,
                    _ => return Err(format!("The answer to \"{}\" must be yes or no.", q.id)),
                },
                IntakeKind::Choice => {
                    let shown = pick(&q.choices, lang).cloned().unwrap_or_default();
                    let Some(index) = shown.iter().position(|c| *c == answer) else {
                        return Err(format!(
                            "The answer to \"{}\" is not one of its choices.",
                            q.id
                        ));
                    };
                    pick(&q.choices, LANGUAGES[0])
                        .and_then(|c| c.get(index))
                        .cloned()
                        .unwrap_or(answer)
                }
            };
            out.push((q.id.clone(), label, Phi::new(canonical)));
        }
        Ok(out)
    }
}

/// A file name with no folder part, safe to join to the content folder.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn words<T: Clone>(en: T, es: T) -> Localized<T> {
    BTreeMap::from([("en".to_owned(), en), ("es".to_owned(), es)])
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// The wording used when a clinic configured none.
pub fn built_in() -> ClinicContent {
    ClinicContent {
        phone: None,
        intake: vec![
            QuestionConfig {
                id: "reason".into(),
                kind: IntakeKind::LongText,
                required: true,
                label: words("What would you like to talk about today?".into(), "¿De qué le gustaría hablar hoy?".into()),
                help: words(
                    "A few words are enough. Your care team reads this before the visit.".into(),
                    "Unas pocas palabras son suficientes. Su equipo de atención lo lee antes de la consulta.".into(),
                ),
                choices: BTreeMap::new(),
            },
            QuestionConfig {
                id: "medicines_changed".into(),
                kind: IntakeKind::YesNo,
                required: false,
                label: words(
                    "Have your medicines changed since your last visit?".into(),
                    "¿Han cambiado sus medicamentos desde su última consulta?".into(),
                ),
                help: BTreeMap::new(),
                choices: BTreeMap::new(),
            },
            QuestionConfig {
                id: "pharmacy".into(),
                kind: IntakeKind::Text,
                required: false,
                label: words("Which pharmacy do you use?".into(), "¿Qué farmacia usa?".into()),
                help: words("Name and town, if you know them.".into(), "Nombre y ciudad, si los sabe.".into()),
                choices: BTreeMap::new(),
            },
        ],
        consent: ConsentConfig {
            version: "telehealth-consent-1".into(),
            title: words("Agreeing to a video visit".into(), "Aceptar una consulta por video".into()),
            paragraphs: words(
                lines(&[
                    "Your visit happens over video instead of in person. Your clinician may decide that you need to be seen in person.",
                    "The video is private and is not recorded unless you are asked and agree.",
                    "If the video stops working, your clinic may call you by phone to finish the visit.",
                    "In an emergency, call 911 instead.",
                ]),
                lines(&[
                    "Su consulta se hace por video en lugar de en persona. Su médico puede decidir que necesita verle en persona.",
                    "El video es privado y no se graba a menos que se le pida y usted acepte.",
                    "Si el video deja de funcionar, su clínica puede llamarle por teléfono para terminar la consulta.",
                    "En una emergencia, llame al 911.",
                ]),
            ),
            checkbox: words(
                "I understand and agree to have this visit by video.".into(),
                "Entiendo y acepto tener esta consulta por video.".into(),
            ),
        },
        waiting: vec![
            WaitingConfig {
                kind: WaitingItemKind::Text,
                title: words("While you wait".into(), "Mientras espera".into()),
                paragraphs: words(
                    lines(&[
                        "Find a quiet, private place with good light in front of you.",
                        "Have your medicines or a list of them nearby.",
                    ]),
                    lines(&[
                        "Busque un lugar tranquilo y privado con buena luz delante de usted.",
                        "Tenga sus medicamentos o una lista de ellos cerca.",
                    ]),
                ),
                video: None,
                captions: None,
            },
            WaitingConfig {
                kind: WaitingItemKind::Article,
                title: words("Getting the most from your visit".into(), "Cómo aprovechar su consulta".into()),
                paragraphs: words(
                    lines(&[
                        "Write down your questions before the visit starts, most important first.",
                        "It is fine to ask your clinician to repeat or explain something.",
                        "You can ask a family member or an interpreter to join. Tell the clinic in the chat.",
                    ]),
                    lines(&[
                        "Escriba sus preguntas antes de empezar, las más importantes primero.",
                        "Puede pedirle a su médico que repita o explique algo.",
                        "Puede pedir que un familiar o un intérprete se una. Dígaselo a la clínica en el chat.",
                    ]),
                ),
                video: None,
                captions: None,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: &str, text: &str) -> IntakeAnswer {
        IntakeAnswer {
            question_id: id.into(),
            answer: Phi::new(text.into()),
        }
    }

    #[test]
    fn built_in_content_is_valid_in_both_languages() {
        let c = built_in();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let es = c.render("St. Mary's", "es-MX", Role::Patient);
        assert_eq!(es.lang, "es");
        assert!(es.consent.checkbox.starts_with("Entiendo"));
        assert_eq!(es.intake.len(), 3);
        assert!(c.render("St. Mary's", "fr", Role::Guest).intake.is_empty());
    }

    #[test]
    fn answers_are_checked_and_made_canonical() {
        let mut c = built_in();
        c.intake.push(QuestionConfig {
            id: "visit_kind".into(),
            kind: IntakeKind::Choice,
            required: false,
            label: words("Kind".into(), "Tipo".into()),
            help: BTreeMap::new(),
            choices: words(
                lines(&["New problem", "Follow-up"]),
                lines(&["Problema nuevo", "Seguimiento"]),
            ),
        });
        let ok = c
            .canonical_answers(
                &[
                    answer("reason", " cough "),
                    answer("medicines_changed", "no"),
                    answer("visit_kind", "Seguimiento"),
                ],
                "es",
            )
            .unwrap();
        let texts: Vec<_> = ok
            .iter()
            .map(|(id, _, a)| (id.as_str(), a.expose().as_str()))
            .collect();
        assert_eq!(
            texts,
            vec![
                ("reason", "cough"),
                ("medicines_changed", "no"),
                ("visit_kind", "Follow-up")
            ]
        );
        assert!(
            c.canonical_answers(&[], "en")
                .unwrap_err()
                .contains("What would you like")
        );
        assert!(
            c.canonical_answers(&[answer("reason", "x"), answer("nope", "y")], "en")
                .is_err()
        );
        assert!(
            c.canonical_answers(
                &[answer("reason", "x"), answer("medicines_changed", "maybe")],
                "en"
            )
            .is_err()
        );
        assert!(
            c.canonical_answers(
                &[answer("reason", "x"), answer("visit_kind", "Other")],
                "en"
            )
            .is_err()
        );
    }

    #[test]
    fn content_file_picks_by_id_then_name_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("content.toml");
        std::fs::write(
            &path,
            r#"
[default]
phone = "555-0100"
[default.consent]
version = "d1"
title = { en = "Consent" }
paragraphs = { en = ["Text."] }
checkbox = { en = "I agree" }

[clinics."Riverside Clinic"]
phone = "555-0199"
[clinics."Riverside Clinic".consent]
version = "r1"
title = { en = "Consent", es = "Consentimiento" }
paragraphs = { en = ["Text."], es = ["Texto."] }
checkbox = { en = "I agree", es = "Acepto" }
[[clinics."Riverside Clinic".waiting]]
kind = "video"
title = { en = "Breathing" }
video = "breathing.webm"
captions = "breathing.en.vtt"
"#,
        )
        .unwrap();
        let file = ContentFile::load(&path).unwrap();
        assert_eq!(file.media_dir, dir.path());
        let riverside = file.clinic("some-id", "Riverside Clinic").render(
            "Riverside Clinic",
            "es",
            Role::Patient,
        );
        assert_eq!(riverside.consent.version, "r1");
        assert_eq!(riverside.consent.checkbox, "Acepto");
        assert_eq!(
            riverside.waiting[0].src.as_deref(),
            Some("/content/breathing.webm")
        );
        assert!(riverside.intake.is_empty());
        assert_eq!(file.clinic("x", "Elsewhere").consent.version, "d1");

        std::fs::write(&path, "[default.consent]\nversion = \"\"\ntitle = {}\nparagraphs = {}\ncheckbox = {}\n[[default.waiting]]\nkind = \"video\"\ntitle = {}\nvideo = \"../etc/passwd\"\n").unwrap();
        let err = ContentFile::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("consent.version") && err.contains("plain file name"),
            "{err}"
        );
    }
}
