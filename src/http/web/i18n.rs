//! The pages' words in English and Greek: one typed catalogue, so a missing translation is a
//! compile error rather than a blank on a page.

mod el;
mod en;

pub use el::EL;
pub use en::EN;

/// A page language. The store's setting is the default; a cookie holds a person's own choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    El,
}

pub const LANG_COOKIE: &str = "smscast_lang";

impl Lang {
    pub fn parse(code: &str) -> Option<Lang> {
        match code.trim() {
            "en" => Some(Lang::En),
            "el" => Some(Lang::El),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::El => "el",
        }
    }

    pub fn t(self) -> &'static Msgs {
        match self {
            Lang::En => &EN,
            Lang::El => &EL,
        }
    }

    /// 1,234,567 in English, 1.234.567 in Greek.
    pub fn int(self, n: i64) -> String {
        let sep = match self {
            Lang::En => ',',
            Lang::El => '.',
        };
        let digits = n.unsigned_abs().to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
        if n < 0 {
            out.push('-');
        }
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(sep);
            }
            out.push(c);
        }
        out
    }

    /// One decimal, with the language's decimal mark.
    pub fn dec1(self, x: f64) -> String {
        let s = format!("{x:.1}");
        match self {
            Lang::En => s,
            Lang::El => s.replace('.', ","),
        }
    }

    pub fn status(self, status: &str) -> &'static str {
        let t = self.t();
        match status {
            "draft" => t.st_draft,
            "scheduled" => t.st_scheduled,
            "sending" => t.st_sending,
            "paused" => t.st_paused,
            "sent" => t.st_sent,
            "failed" => t.st_failed,
            "cancelled" => t.st_cancelled,
            _ => t.st_unknown,
        }
    }

    pub fn consent(self, consent: &str) -> &'static str {
        let t = self.t();
        match consent {
            "opted_in" => t.consent_in,
            "opted_out" => t.consent_out,
            _ => t.consent_unknown,
        }
    }

    pub fn priority(self, p: &str) -> &'static str {
        let t = self.t();
        match p {
            "low" => t.pr_low,
            "high" => t.pr_high,
            "urgent" => t.pr_urgent,
            _ => t.pr_normal,
        }
    }

    /// A failure category's name; the store's explanation says what it means.
    pub fn category(self, c: &str) -> String {
        let t = self.t();
        match c {
            "invalid_number" => t.cat_invalid_number.into(),
            "provider_rejected" => t.cat_provider_rejected.into(),
            "rate_limited" => t.cat_rate_limited.into(),
            "timeout" => t.cat_timeout.into(),
            "provider_error" => t.cat_provider_error.into(),
            "insufficient_credits" => t.cat_insufficient_credits.into(),
            "unknown_outcome" => t.cat_unknown_outcome.into(),
            "opted_out" => t.consent_out.into(),
            other => other.replace('_', " "),
        }
    }

    /// A failure category's explanation in Greek; in English the store's own text is shown
    /// (`operations::CATEGORIES`), so only the translation lives here.
    pub fn explanation(self, c: &str) -> Option<&'static str> {
        if self == Lang::En {
            return None;
        }
        Some(match c {
            "invalid_number" => "Ο αριθμός δεν είναι έγκυρο κινητό· ο πάροχος τον απέρριψε.",
            "provider_rejected" => "Ο πάροχος απέρριψε το μήνυμα για αυτόν τον αριθμό.",
            "rate_limited" => "Ο πάροχος ζητούσε συνεχώς πιο αργό ρυθμό και οι προσπάθειες εξαντλήθηκαν.",
            "timeout" => "Ο πάροχος δεν απάντησε εγκαίρως, επανειλημμένα.",
            "provider_error" => "Ο πάροχος είχε σφάλματα από τη μεριά του, επανειλημμένα.",
            "unknown_outcome" => "Χάθηκε η εικόνα του μηνύματος την ώρα της αποστολής· ίσως έφτασε. Δεν ξαναστέλνεται ποτέ αυτόματα.",
            "insufficient_credits" => "Δεν υπήρχαν αρκετές δεσμευμένες μονάδες για αυτό το μήνυμα.",
            "opted_out" => "Η επαφή διαγράφηκε μετά την αποστολή της καμπάνιας· δεν θα λάβει μηνύματα.",
            _ => return None,
        })
    }

    pub fn retry_failed(self, n: i64) -> String {
        match self {
            Lang::En => format!("Retry failed ({})", self.int(n)),
            Lang::El => format!("Επανάληψη αποτυχημένων ({})", self.int(n)),
        }
    }

    pub fn retry_confirm(self, n: i64, cost: i64) -> String {
        match self {
            Lang::En => format!("Send {} failed messages again for {} credits?", self.int(n), self.int(cost)),
            Lang::El => format!("Να σταλούν ξανά {} αποτυχημένα μηνύματα με {} μονάδες;", self.int(n), self.int(cost)),
        }
    }

    pub fn eta(self, seconds: i64) -> String {
        let (m, s) = (seconds / 60, seconds % 60);
        match (self, m) {
            (Lang::En, 0) => format!("{s} s"),
            (Lang::El, 0) => format!("{s} δευτ."),
            (Lang::En, _) => format!("{m} min {s} s"),
            (Lang::El, _) => format!("{m} λεπ. {s} δευτ."),
        }
    }

    pub fn resend_unknown(self, n: i64) -> String {
        match self {
            Lang::En => format!("Send again anyway ({})", self.int(n)),
            Lang::El => format!("Αποστολή ξανά παρ' όλα αυτά ({})", self.int(n)),
        }
    }

    pub fn resend_confirm(self, n: i64, cost: i64) -> String {
        match self {
            Lang::En => format!("Send {} messages whose outcome is unknown again, for {} credits?", self.int(n), self.int(cost)),
            Lang::El => format!("Να σταλούν ξανά {} μηνύματα με άγνωστη έκβαση, με {} μονάδες;", self.int(n), self.int(cost)),
        }
    }

    pub fn page_of(self, shown: usize) -> String {
        match self {
            Lang::En => format!("{shown} shown"),
            Lang::El => format!("{shown} στη σελίδα"),
        }
    }

    pub fn imported(self, created: i64, updated: i64, skipped: i64) -> String {
        match self {
            Lang::En => format!("{} added, {} updated, {} skipped.", self.int(created), self.int(updated), self.int(skipped)),
            Lang::El => format!("{} νέες, {} ενημερώθηκαν, {} παραλείφθηκαν.", self.int(created), self.int(updated), self.int(skipped)),
        }
    }
}

/// Every fixed text on the pages. Texts with numbers in them are methods on [`Lang`].
pub struct Msgs {
    pub skip: &'static str,
    pub main_nav: &'static str,
    pub nav_dashboard: &'static str,
    pub nav_campaigns: &'static str,
    pub nav_contacts: &'static str,
    pub logout: &'static str,
    pub language: &'static str,
    pub login_title: &'static str,
    pub login_intro: &'static str,
    pub email: &'static str,
    pub password: &'static str,
    pub log_in: &'static str,
    pub invalid_login: &'static str,
    pub not_found_title: &'static str,
    pub not_found_text: &'static str,
    pub go_home: &'static str,
    pub error_title: &'static str,
    pub dash_title: &'static str,
    pub available_credits: &'static str,
    pub held_credits: &'static str,
    pub held_hint: &'static str,
    pub sent_today: &'static str,
    pub sent_month: &'static str,
    pub delivery_rate: &'static str,
    pub delivery_none: &'static str,
    pub delivery_hint: &'static str,
    pub recent_campaigns: &'static str,
    pub view_all: &'static str,
    pub no_campaigns: &'static str,
    pub no_campaigns_text: &'static str,
    pub new_campaign: &'static str,
    pub st_draft: &'static str,
    pub st_scheduled: &'static str,
    pub st_sending: &'static str,
    pub st_paused: &'static str,
    pub st_sent: &'static str,
    pub st_failed: &'static str,
    pub st_cancelled: &'static str,
    pub st_unknown: &'static str,
    pub all_statuses: &'static str,
    pub campaigns_title: &'static str,
    pub status: &'static str,
    pub filter: &'static str,
    pub progress: &'static str,
    pub no_match: &'static str,
    pub pending: &'static str,
    pub sending: &'static str,
    pub sent: &'static str,
    pub failed: &'static str,
    pub unknown: &'static str,
    pub cancelled: &'static str,
    pub delivered: &'static str,
    pub total: &'static str,
    pub rate: &'static str,
    pub per_second: &'static str,
    pub eta: &'static str,
    pub live: &'static str,
    pub sent_explain: &'static str,
    pub timeline: &'static str,
    pub no_history: &'static str,
    pub failures: &'static str,
    pub no_failures: &'static str,
    pub retryable: &'static str,
    pub not_retryable: &'static str,
    pub cancel: &'static str,
    pub cancel_confirm: &'static str,
    pub keep_sending: &'static str,
    pub pause: &'static str,
    pub resume: &'static str,
    pub retry_title: &'static str,
    pub edit: &'static str,
    pub review_send: &'static str,
    pub message: &'static str,
    pub done_cancelled: &'static str,
    pub done_paused: &'static str,
    pub done_resumed: &'static str,
    pub done_started: &'static str,
    pub done_retried: &'static str,
    pub done_saved: &'static str,
    pub editor_new: &'static str,
    pub editor_edit: &'static str,
    pub name: &'static str,
    pub insert_tag: &'static str,
    pub tag_first_name: &'static str,
    pub tag_last_name: &'static str,
    pub tag_discount: &'static str,
    pub characters: &'static str,
    pub segments: &'static str,
    pub encoding: &'static str,
    pub gsm7: &'static str,
    pub ucs2: &'static str,
    pub ucs2_chars: &'static str,
    pub greek_saving: &'static str,
    pub greek_gsm: &'static str,
    pub greek_gsm_hint: &'static str,
    pub counter_hint: &'static str,
    pub audience: &'static str,
    pub aud_all: &'static str,
    pub aud_tags: &'static str,
    pub aud_tags_hint: &'static str,
    pub discount_code: &'static str,
    pub priority: &'static str,
    pub pr_low: &'static str,
    pub pr_normal: &'static str,
    pub pr_high: &'static str,
    pub pr_urgent: &'static str,
    pub schedule: &'static str,
    pub schedule_hint: &'static str,
    pub save: &'static str,
    pub back: &'static str,
    pub confirm_title: &'static str,
    pub recipients: &'static str,
    pub excluded: &'static str,
    pub ex_opted_out: &'static str,
    pub ex_no_consent: &'static str,
    pub ex_invalid_phone: &'static str,
    pub ex_duplicate: &'static str,
    pub cost: &'static str,
    pub credits: &'static str,
    pub available: &'static str,
    pub balance_after: &'static str,
    pub phone_preview: &'static str,
    pub type_name: &'static str,
    pub type_name_mismatch: &'static str,
    pub send_fmt: &'static str,
    pub blocked: &'static str,
    pub close: &'static str,
    pub loading: &'static str,
    pub contacts_title: &'static str,
    pub search: &'static str,
    pub consent: &'static str,
    pub consent_any: &'static str,
    pub consent_in: &'static str,
    pub consent_out: &'static str,
    pub consent_unknown: &'static str,
    pub phone: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub tags: &'static str,
    pub add_contact: &'static str,
    pub add: &'static str,
    pub import_csv: &'static str,
    pub import_hint: &'static str,
    pub csv_file: &'static str,
    pub import: &'static str,
    pub import_done: &'static str,
    pub row: &'static str,
    pub problem: &'static str,
    pub next_page: &'static str,
    pub first_page: &'static str,
    pub no_contacts: &'static str,
    pub no_contacts_text: &'static str,
    pub contact_added: &'static str,
    pub contact_title: &'static str,
    pub contact_saved: &'static str,
    pub tags_hint: &'static str,
    pub consent_history: &'static str,
    pub no_consent_history: &'static str,
    pub history_when: &'static str,
    pub history_change: &'static str,
    pub history_source: &'static str,
    pub history_by: &'static str,
    pub all_contacts: &'static str,
    pub download_errors: &'static str,
    pub cat_invalid_number: &'static str,
    pub cat_provider_rejected: &'static str,
    pub cat_rate_limited: &'static str,
    pub cat_timeout: &'static str,
    pub cat_provider_error: &'static str,
    pub cat_insufficient_credits: &'static str,
    pub cat_unknown_outcome: &'static str,
    pub nav_settings: &'static str,
    pub settings_title: &'static str,
    pub store_name: &'static str,
    pub sender_name: &'static str,
    pub country: &'static str,
    pub timezone: &'static str,
    pub store_language: &'static str,
    pub settings_saved: &'static str,
    pub settings_saved_pending: &'static str,
    pub sender_now: &'static str,
    pub sender_pending: &'static str,
    pub sender_rejected: &'static str,
    pub sender_reason: &'static str,
    pub keys_title: &'static str,
    pub key_name: &'static str,
    pub create_key: &'static str,
    pub key_once: &'static str,
    pub key_prefix: &'static str,
    pub key_created: &'static str,
    pub key_last_used: &'static str,
    pub key_revoke: &'static str,
    pub key_revoke_confirm: &'static str,
    pub key_revoked: &'static str,
    pub key_active: &'static str,
    pub key_revoked_done: &'static str,
    pub no_keys: &'static str,
    pub never: &'static str,
    pub op_title: &'static str,
    pub op_login_title: &'static str,
    pub op_key: &'static str,
    pub op_key_hint: &'static str,
    pub op_bad_key: &'static str,
    pub op_stores: &'static str,
    pub op_store: &'static str,
    pub op_top_up: &'static str,
    pub op_amount: &'static str,
    pub op_reason: &'static str,
    pub op_topped_up: &'static str,
    pub op_queue: &'static str,
    pub op_waiting: &'static str,
    pub op_delayed: &'static str,
    pub op_active: &'static str,
    pub op_completed: &'static str,
    pub op_last_minute: &'static str,
    pub op_oldest: &'static str,
    pub op_workers: &'static str,
    pub op_no_workers: &'static str,
    pub op_no_stores: &'static str,
    pub op_senders: &'static str,
    pub op_no_senders: &'static str,
    pub op_requested: &'static str,
    pub op_current_sender: &'static str,
    pub op_approve: &'static str,
    pub op_reject: &'static str,
    pub op_reject_reason: &'static str,
    pub op_approved: &'static str,
    pub op_rejected: &'static str,
    pub op_rates: &'static str,
    pub op_rates_intro: &'static str,
    pub op_rate_key: &'static str,
    pub op_rate: &'static str,
    pub op_no_limit: &'static str,
    pub op_no_rates: &'static str,
    pub op_rate_add: &'static str,
    pub op_rate_saved: &'static str,
    pub undelivered: &'static str,
    pub awaiting: &'static str,
    pub awaiting_hint: &'static str,
    pub report_title: &'static str,
    pub clicks: &'static str,
    pub click_rate: &'static str,
    pub unsubscribes: &'static str,
    pub charged: &'static str,
    pub chart_title: &'static str,
    pub times_in: &'static str,
    pub duplicate_warning: &'static str,
    pub resend_accept: &'static str,
    pub resend_must_accept: &'static str,
    pub done_resent: &'static str,
    pub links_short: &'static str,
    pub sample_for: &'static str,
    pub aud_none: &'static str,
    pub aud_hint: &'static str,
    pub aud_segment: &'static str,
    pub segment: &'static str,
    pub uploading: &'static str,
    pub importing: &'static str,
}

#[cfg(test)]
mod tests {
    use super::Lang;

    #[test]
    fn numbers_group_by_language() {
        assert_eq!(Lang::En.int(1_234_567), "1,234,567");
        assert_eq!(Lang::El.int(1_234_567), "1.234.567");
        assert_eq!(Lang::En.int(-999), "-999");
        assert_eq!(Lang::El.int(1000), "1.000");
        assert_eq!(Lang::El.dec1(2.5), "2,5");
    }
}
