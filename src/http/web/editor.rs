//! The campaign editor: the form, its live counter (`POST /api/sms/analyze`, in `pages`) and its
//! audience count with a real recipient's text (`POST /api/audience/preview`), both from the
//! functions a send uses, so the editor's numbers are the send's.

use super::i18n::Lang;
use super::pages::text_analysis;
use super::tz::Zone;
use super::{Layout, Web, WebError, WebForm, WebResult, html, redirect};
use crate::domain::Error;
use crate::domain::campaign::{Audience, Priority};
use crate::domain::time::rfc3339;
use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, Auth};
use crate::store::campaigns::{self, CampaignInput, CampaignRow};
use crate::store::{StoreId, segments, stores};
use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Who an unsaved campaign would reach and what its texts would be.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceRequest {
    audience: Audience,
    #[serde(default)]
    message: String,
    #[serde(default)]
    discount_code: String,
    #[serde(default)]
    greek_gsm: bool,
}

/// How many samples the editor offers to choose from.
const SAMPLES: usize = 5;

/// `POST /api/audience/preview`: recipients, exclusions, parts and cost of the editor's audience
/// and text as they stand, and the first recipients' exact texts — `campaigns::tally`, the walk
/// a preview and a send make, over a campaign that is not saved.
pub async fn audience(State(state): State<Arc<AppState>>, Auth(p): Auth, ApiJson(req): ApiJson<AudienceRequest>) -> ApiResult<Json<Value>> {
    Ok(Json(audience_preview(&state, p.store, req).await?))
}

pub async fn audience_preview(state: &AppState, store: StoreId, req: AudienceRequest) -> Result<Value, Error> {
    let store_row = stores::get(&state.db, store).await?;
    let audience = serde_json::to_string(&req.audience.validate()?).map_err(Error::internal)?;
    // Before the text is written the audience is still counted (with a stand-in text), without samples.
    let written = !req.message.trim().is_empty();
    let discount = Some(req.discount_code.trim().to_string()).filter(|d| !d.is_empty());
    let row = CampaignRow {
        store_id: store.0,
        message: if written { req.message.replace("\r\n", "\n") } else { ".".into() },
        audience,
        priority: Priority::Normal.as_str().into(),
        discount_code: discount,
        greek_gsm: req.greek_gsm,
        status: "draft".into(),
        track_links: true,
        ..CampaignRow::default()
    };
    let mut samples = Vec::new();
    let tally = campaigns::tally(&state.db, store, &row, &store_row.language, &state.settings.send, |m, text, info, cost| {
        if written && samples.len() < SAMPLES {
            let name = [m.first_name.as_deref(), m.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
            samples.push(json!({
                "contact_id": m.id, "name": name, "phone": m.phone, "text": text,
                "encoding": info.encoding.as_str(), "segments": info.segments, "cost": cost,
            }));
        }
        Ok(())
    })
    .await?;
    Ok(json!({
        "recipients": tally.recipients,
        "excluded": tally.excluded,
        "too_long": tally.too_long,
        "segments": if written { json!(tally.segments) } else { Value::Null },
        "estimated_cost": if written { json!(tally.cost) } else { Value::Null },
        "samples": samples,
    }))
}

/// A sample recipient as the editor lists it.
pub struct Sample {
    pub label: String,
    pub text: String,
}

/// The audience box of the editor, drawn from `audience_preview` (or its refusal).
#[derive(Default)]
pub struct AudienceView {
    pub recipients: String,
    pub excluded: String,
    pub segments: String,
    pub cost: String,
    pub samples: Vec<Sample>,
    pub none: bool,
    pub error: Option<String>,
}

impl AudienceView {
    fn new(lang: Lang, v: &Value) -> AudienceView {
        let n = |v: &Value| v.as_i64().map(|x| lang.int(x)).unwrap_or_else(|| "—".into());
        let x = &v["excluded"];
        let excluded: i64 = ["opted_out", "no_consent", "invalid_phone", "duplicate"].iter().map(|k| x[k].as_i64().unwrap_or(0)).sum();
        AudienceView {
            recipients: n(&v["recipients"]),
            excluded: lang.int(excluded),
            segments: n(&v["segments"]),
            cost: n(&v["estimated_cost"]),
            samples: v["samples"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let (name, phone) = (s["name"].as_str().unwrap_or(""), s["phone"].as_str().unwrap_or(""));
                    Sample {
                        label: if name.is_empty() { phone.to_string() } else { format!("{name} · {phone}") },
                        text: s["text"].as_str().unwrap_or("").to_string(),
                    }
                })
                .collect(),
            none: v["recipients"].as_i64() == Some(0),
            error: None,
        }
    }
}

/// The editor's fields as the form sends them.
#[derive(Deserialize, Default, Clone)]
pub struct EditorForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    audience: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    segment: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    schedule_at: String,
    #[serde(default)]
    discount_code: String,
    #[serde(default)]
    greek_gsm: Option<String>,
}

impl EditorForm {
    fn from_row(c: &CampaignRow, zone: &Zone) -> EditorForm {
        let (audience, tags, segment) = match c.audience() {
            Ok(Audience::Tags { any, all }) => {
                ("tags".to_string(), any.iter().chain(&all).cloned().collect::<Vec<_>>().join(", "), String::new())
            }
            Ok(Audience::Segment { id }) => ("segment".to_string(), String::new(), id.to_string()),
            _ => ("all".to_string(), String::new(), String::new()),
        };
        EditorForm {
            name: c.name.clone(),
            message: c.message.clone(),
            audience,
            tags,
            segment,
            priority: c.priority.clone(),
            // datetime-local shows minutes, in the store's time zone (the label names it).
            schedule_at: c.schedule_at.map(|t| zone.input_value(t)).unwrap_or_default(),
            discount_code: c.discount_code.clone().unwrap_or_default(),
            greek_gsm: c.greek_gsm.then(|| "on".into()),
        }
    }

    fn audience(&self) -> Result<Audience, Error> {
        Ok(match self.audience.as_str() {
            "tags" => {
                Audience::Tags { any: self.tags.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(), all: vec![] }
            }
            "segment" => Audience::Segment {
                id: self.segment.parse().map_err(|_| {
                    Error::invalid("invalid_audience", "Choose a segment.").with_details(serde_json::json!({"field": "audience"}))
                })?,
            },
            _ => Audience::All,
        })
    }

    /// The form as the API's input. The schedule is local time in the store's zone; a value that
    /// is not a local time goes on as typed, for the store's own check to refuse with its message.
    fn input(&self, zone: &Zone) -> Result<CampaignInput, Error> {
        let schedule = self.schedule_at.trim();
        let schedule = (!schedule.is_empty()).then(|| zone.from_local(schedule).map(rfc3339).unwrap_or_else(|| schedule.to_string()));
        Ok(CampaignInput {
            name: Some(self.name.clone()),
            message: Some(self.message.replace("\r\n", "\n")),
            audience: Some(self.audience()?),
            priority: Some(Priority::parse(&self.priority).unwrap_or_default()),
            schedule_at: Some(schedule),
            sender: None,
            discount_code: Some(Some(self.discount_code.trim().to_string()).filter(|s| !s.is_empty())),
            greek_gsm: Some(self.greek_gsm.is_some()),
        })
    }
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "editor.html")]
struct EditorPage {
    l: Layout,
    action: String,
    cancel_href: String,
    f: EditorForm,
    priorities: Vec<Choice>,
    segments: Vec<Choice>,
    /// The field the error is about, to mark it.
    bad_field: String,
    chars: String,
    segments_count: String,
    encoding: String,
    encoding_label: &'static str,
    ucs2_chars: String,
    /// SMS parts as written, and in Greek capitals without accents (when the text has Greek).
    greek_before: String,
    greek_segments: Option<String>,
    /// What each link counts as, when the text has links.
    links_note: Option<String>,
    audience_view: AudienceView,
}

async fn editor(state: &AppState, web: &Web, id: Option<i64>, f: EditorForm, error: Option<&Error>) -> WebResult {
    let t = web.t();
    let lang = web.lang;
    let priorities = Priority::ALL
        .iter()
        .map(|p| Choice {
            value: p.as_str().into(),
            label: lang.priority(p.as_str()).into(),
            selected: f.priority == p.as_str() || (f.priority.is_empty() && *p == Priority::Normal),
        })
        .collect();
    let segs = segments::list(&state.db, web.p.store).await?;
    let segments = segs["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let v = s["id"].as_i64().unwrap_or(0).to_string();
            Choice { selected: v == f.segment, value: v, label: s["name"].as_str().unwrap_or("").to_string() }
        })
        .collect();
    let a = text_analysis(state, web.p.store, &f.message, Some(f.discount_code.as_str())).await?;
    let audience = match f.audience() {
        Ok(aud) => {
            let req = AudienceRequest {
                audience: aud,
                message: f.message.clone(),
                discount_code: f.discount_code.clone(),
                greek_gsm: f.greek_gsm.is_some(),
            };
            audience_preview(state, web.p.store, req).await
        }
        Err(e) => Err(e),
    };
    let audience = match audience {
        Ok(v) => AudienceView::new(lang, &v),
        Err(e) if e.kind == crate::domain::Kind::Internal => return Err(WebError(e)),
        Err(e) => AudienceView { error: Some(e.message), ..AudienceView::default() },
    };
    // With the Greek option on (and Greek in the text) the counter shows the text as it goes out.
    let sent_as = if f.greek_gsm.is_some() && a["greek_gsm"].is_object() { &a["greek_gsm"] } else { &a["with_footer"] };
    let enc = sent_as["encoding"].as_str().unwrap_or("gsm7").to_string();
    let status = error.map(|e| crate::http::error::status_of(e.kind)).unwrap_or(StatusCode::OK);
    let title = if id.is_some() { t.editor_edit } else { t.editor_new };
    let page = EditorPage {
        l: Layout { error: error.map(|e| e.message.clone()), ..web.layout(title, "campaigns") },
        action: id.map(|i| format!("/campaigns/{i}/edit")).unwrap_or_else(|| "/campaigns/new".into()),
        cancel_href: id.map(|i| format!("/campaigns/{i}")).unwrap_or_else(|| "/campaigns".into()),
        priorities,
        segments,
        bad_field: error.and_then(|e| e.details["field"].as_str()).unwrap_or("").to_string(),
        chars: lang.int(a["characters"].as_i64().unwrap_or(0)),
        segments_count: lang.int(sent_as["segments"].as_i64().unwrap_or(0)),
        encoding_label: if enc == "ucs2" { t.ucs2 } else { t.gsm7 },
        encoding: enc,
        ucs2_chars: a["ucs2_chars"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        greek_before: lang.int(a["with_footer"]["segments"].as_i64().unwrap_or(0)),
        greek_segments: a["greek_gsm"]["segments"].as_i64().map(|s| lang.int(s)),
        links_note: (a["links"].as_i64().unwrap_or(0) > 0)
            .then(|| t.links_short.replace("{n}", &lang.int(a["short_link_chars"].as_i64().unwrap_or(0)))),
        audience_view: audience,
        f,
    };
    Ok(html(status, &page))
}

pub async fn new_form(State(state): State<Arc<AppState>>, web: Web) -> WebResult {
    let f = EditorForm { audience: "all".into(), priority: "normal".into(), ..Default::default() };
    editor(&state, &web, None, f, None).await
}

pub async fn edit_form(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>) -> WebResult {
    let id: i64 = id.parse().map_err(|_| Error::not_found("campaign"))?;
    let c = campaigns::get(&state.db, web.p.store, id).await?;
    if !c.status().editable() {
        return Ok(redirect(&format!("/campaigns/{id}")));
    }
    editor(&state, &web, Some(id), EditorForm::from_row(&c, &web.zone), None).await
}

pub async fn create(State(state): State<Arc<AppState>>, web: Web, WebForm(f): WebForm<EditorForm>) -> WebResult {
    let made = match f.input(&web.zone) {
        Ok(input) => campaigns::create(&state.db, web.p.store, &web.p.actor, input, state.clock.now_ms()).await,
        Err(e) => Err(e),
    };
    match made {
        Ok(c) => Ok(redirect(&format!("/campaigns/{}?done=saved", c.id))),
        Err(e) if e.kind == crate::domain::Kind::Internal => Err(WebError(e)),
        Err(e) => editor(&state, &web, None, f, Some(&e)).await,
    }
}

pub async fn update(State(state): State<Arc<AppState>>, web: Web, Path(id): Path<String>, WebForm(f): WebForm<EditorForm>) -> WebResult {
    let id: i64 = id.parse().map_err(|_| Error::not_found("campaign"))?;
    let saved = match f.input(&web.zone) {
        Ok(input) => campaigns::update(&state.db, web.p.store, &web.p.actor, id, input, state.clock.now_ms()).await,
        Err(e) => Err(e),
    };
    match saved {
        Ok(c) => Ok(redirect(&format!("/campaigns/{}?done=saved", c.id))),
        Err(e) if matches!(e.kind, crate::domain::Kind::Internal | crate::domain::Kind::NotFound) => Err(WebError(e)),
        Err(e) => editor(&state, &web, Some(id), f, Some(&e)).await,
    }
}
