use super::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

#[test]
fn chunks_cover_every_row_with_few_distinct_sizes() {
    for n in [0, 1, 2, 3, 511, 512, 513, 1000, 1023, 1024, 1300, 5000] {
        let sizes = chunk_sizes(n, 512);
        assert_eq!(sizes.iter().sum::<usize>(), n, "{n}");
        assert!(sizes.iter().all(|s| s.is_power_of_two() && *s <= 512), "{n}: {sizes:?}");
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{n}: {sizes:?}");
    }
    assert_eq!(chunk_sizes(1300, 512), [512, 512, 256, 16, 4]);
}

/// Runs the parser over `bytes` as a store in Greece, collecting the rows it would write.
fn parse_all(bytes: &[u8]) -> (Result<ImportReport, Error>, Vec<Row>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let collector = std::thread::spawn(move || {
        let mut rows = Vec::new();
        while let Some(msg) = rx.blocking_recv() {
            if let Msg::Rows(r) = msg {
                rows.extend(r);
            }
        }
        rows
    });
    let report = parse(bytes, phonenumber::country::Id::GR, tx);
    (report, collector.join().expect("collector"))
}

/// What every answer keeps to: each non-blank row is written or skipped with a reason, and
/// the listed reasons are bounded.
fn consistent(report: &ImportReport, rows: &[Row]) -> Result<(), TestCaseError> {
    prop_assert_eq!(report.total, rows.len() as u64 + report.skipped);
    prop_assert_eq!(report.error_count, report.skipped);
    prop_assert!(report.errors.len() <= MAX_ERRORS);
    prop_assert!(report.errors.len() as u64 == report.error_count.min(MAX_ERRORS as u64));
    let mut phones: Vec<&str> = rows.iter().map(|r| &*r.phone).collect();
    phones.sort_unstable();
    phones.dedup();
    prop_assert_eq!(phones.len(), rows.len(), "no number is written twice");
    Ok(())
}

/// A contact as a store's export holds it.
#[derive(Debug, Clone)]
struct Contact {
    national: u32,
    first: String,
    last: String,
    tags: Vec<String>,
    consent: &'static str,
}

fn exported() -> impl Strategy<Value = Contact> {
    (
        0u32..100_000_000,
        crate::domain::fuzz::nasty_text(30),
        crate::domain::fuzz::nasty_text(30),
        prop::collection::vec("[A-Za-zά-ώ]{1,8}", 0..4),
        prop::sample::select(vec!["", "yes", "no", "opted_in", "Opted-Out", "unknown", "1"]),
    )
        .prop_map(|(national, first, last, tags, consent)| Contact { national, first, last, tags, consent })
}

/// A file of mostly CSV: a header, rows of cells from the nasty alphabet, stray quotes,
/// invalid UTF-8, NUL bytes, a BOM, CR/LF/CRLF line ends.
fn almost_csv() -> impl Strategy<Value = Vec<u8>> {
    let cell = prop_oneof![
        4 => crate::domain::fuzz::nasty_text(12).prop_map(String::into_bytes),
        2 => "\\+?30?69[0-9]{8}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..8),
        1 => Just(b"\"".to_vec()),
    ];
    let row = prop::collection::vec(cell, 0..6).prop_map(|cells| cells.join(&b","[..]));
    let end = prop::sample::select(vec![&b"\n"[..], b"\r\n", b"\r"]);
    (
        any::<bool>(),
        prop::sample::select(vec!["phone", "Phone,First Name,tags,consent", "\"mobile\";x", "x,y"]),
        prop::collection::vec((row, end), 0..20),
    )
        .prop_map(|(bom, header, rows)| {
            let mut out = if bom { "\u{feff}".as_bytes().to_vec() } else { Vec::new() };
            out.extend_from_slice(header.as_bytes());
            for (r, e) in rows {
                out.extend_from_slice(e);
                out.extend_from_slice(&r);
            }
            out
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..600), almost_csv()]) {
        let (report, rows) = parse_all(&bytes);
        match report {
            Ok(r) => consistent(&r, &rows)?,
            Err(e) => prop_assert!(matches!(e.code.as_ref(), "invalid_csv" | "empty_file" | "missing_phone_column"), "{:?}", e),
        }
    }

    /// parse(write(contacts)) == contacts, cleaned as the import cleans them, whichever way
    /// the file was written: BOM or not, CRLF or LF, every cell quoted or only where needed.
    #[test]
    fn a_written_export_reads_back(
        contacts in prop::collection::vec(exported(), 1..30),
        bom: bool,
        crlf: bool,
        quote_all: bool,
    ) {
        let mut w = csv::WriterBuilder::new()
            .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
            .quote_style(if quote_all { csv::QuoteStyle::Always } else { csv::QuoteStyle::Necessary })
            .from_writer(if bom { "\u{feff}".as_bytes().to_vec() } else { Vec::new() });
        w.write_record(["Phone", "First Name", "last_name", "Tags", "consent"]).unwrap();
        for c in &contacts {
            w.write_record([format!("+30 69{:08}", c.national), c.first.clone(), c.last.clone(), c.tags.join(","), c.consent.into()]).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let (report, rows) = parse_all(&bytes);
        let report = report.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        consistent(&report, &rows)?;
        // The rows expected: the first of each number, cleaned; names that are too long are
        // skipped with a reason.
        let mut seen = HashSet::new();
        let mut want = Vec::new();
        for c in &contacts {
            let clean = |s: &str| contact::clean_text("x", Some(s), contact::MAX_NAME);
            let (Ok(first), Ok(last)) = (clean(&c.first), clean(&c.last)) else { continue };
            if !seen.insert(c.national) {
                continue;
            }
            let tags = contact::normalize_tags(c.tags.iter().map(String::as_str)).unwrap();
            let consent = Some(c.consent).filter(|s| !s.is_empty()).map(|s| Consent::parse_loose(s).unwrap());
            want.push((format!("+3069{:08}", c.national), first, last, tags, consent));
        }
        let got: Vec<_> = rows
            .iter()
            .map(|r| {
                let s = |v: &Option<Arc<str>>| v.as_deref().map(str::to_string);
                (r.phone.to_string(), s(&r.first_name), s(&r.last_name), r.tags.iter().map(|t| t.to_string()).collect::<Vec<_>>(), r.consent)
            })
            .collect();
        prop_assert_eq!(got, want);
    }
}

/// Excel's "CSV UTF-8" puts a BOM before the header, sometimes quoted; fields may be huge.
#[test]
fn bom_quoted_headers_and_huge_fields() {
    let (r, rows) = parse_all("\u{feff}\"phone\",\"first_name\"\r\n6912345678,Μαρία\r\n".as_bytes());
    assert_eq!((r.unwrap().total, rows.len()), (1, 1));
    assert_eq!(rows[0].first_name.as_deref(), Some("Μαρία"));
    let huge = format!("phone,first_name\n6912345678,{}\n6912345679,\"{}\"\n", "a".repeat(2_000_000), "\"\"".repeat(500_000));
    let (r, rows) = parse_all(huge.as_bytes());
    let r = r.unwrap();
    assert_eq!((r.total, r.skipped, rows.len()), (2, 2, 0));
    assert!(r.errors.iter().all(|e| e.code == "too_long" && e.column == "first_name"), "{:?}", r.errors);
    let (r, rows) = parse_all(&[b"phone\n".as_slice(), &[0xff, 0xfe, b'6'], b"\n6912345678\n"].concat());
    let r = r.unwrap();
    assert_eq!((r.total, rows.len(), r.errors[0].code.as_str()), (2, 1, "invalid_encoding"));
}

#[test]
fn sqlite_placeholders() {
    assert_eq!(sqlite_rows(2, 2), "(?,?),(?,?)");
    assert_eq!(sqlite_rows(1, 3), "(?,?,?)");
}
