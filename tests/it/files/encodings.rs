//! Text encodings, quoted newlines and delimiters.

use super::*;

fn utf16(text: &str, little_endian: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend(if little_endian {
            [0xFF, 0xFE]
        } else {
            [0xFE, 0xFF]
        });
    }
    for u in text.encode_utf16() {
        out.extend(if little_endian {
            u.to_le_bytes()
        } else {
            u.to_be_bytes()
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_encodings_are_detected_from_bom_nul_bytes_and_invalid_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let body = "Id;Name;City\n1;Jürgen Müller;Köln\n2;Zoë;Besançon\n";
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend(body.as_bytes());
    let (latin, _, _) = encoding_rs::WINDOWS_1252.encode(body);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("utf8", body.as_bytes().to_vec(), "utf-8"),
        ("utf8_bom", bom, "utf-8"),
        ("utf16le_bom", utf16(body, true, true), "utf-16le"),
        ("utf16be_bom", utf16(body, false, true), "utf-16be"),
        ("utf16le", utf16(body, true, false), "utf-16le"),
        ("utf16be", utf16(body, false, false), "utf-16be"),
        ("cp1252", latin.to_vec(), "windows-1252"),
    ];
    for (tag, bytes, encoding) in cases {
        let path = dir.path().join(format!("{tag}.csv"));
        std::fs::write(&path, bytes).unwrap();
        let dataset = format!("raw.enc_{tag}");
        let outcome = import(&lake, &path, &dataset).await;
        assert_eq!(
            outcome.encoding.map(|e| e.to_string()).as_deref(),
            Some(encoding),
            "{tag}"
        );
        assert_eq!(outcome.delimiter.as_deref(), Some(";"), "{tag}");
        let rows = query(
            &lake,
            &[&dataset],
            &format!("SELECT id, name, city FROM raw_enc_{tag} ORDER BY id"),
        )
        .await;
        assert_eq!(rows, ["1,Jürgen Müller,Köln", "2,Zoë,Besançon"], "{tag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quoted_fields_with_embedded_newlines_keep_records_and_lines_whole() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let path = dir.path().join("notes.csv");
    std::fs::write(
        &path,
        "Id,Note,Amount\r\nn1,\"first line\r\nsecond, line\",1\r\nn2,plain,2\r\nn3,\"a \"\"quoted\"\"\nword\",oops\r\nn4,\"x\",4\r\n",
    )
    .unwrap();
    let outcome = import(&lake, &path, "raw.crm_notes").await;
    assert_eq!((outcome.rows, outcome.quarantined), (4, 0));
    let rows = query(
        &lake,
        &["raw.crm_notes"],
        "SELECT id, note, amount, _source_record FROM raw_crm_notes ORDER BY id",
    )
    .await;
    assert_eq!(
        rows,
        [
            "n1,first line\r\nsecond, line,1,2",
            "n2,plain,2,4",
            "n3,a \"quoted\"\nword,oops,5",
            "n4,x,4,7",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delimiters_are_sniffed_and_can_be_forced() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    for (tag, body, delimiter) in [
        (
            "semicolon",
            "Id;Amount;Note\n1;1,5;\"a;b\"\n2;2,5;c, d\n",
            ";",
        ),
        ("pipe", "Id|Amount|Note\n1|1.5|a, b\n2|2.5|c\n", "|"),
        ("tab", "Id\tAmount\tNote\n1\t1.5\ta; b\n2\t2.5\tc\n", "tab"),
        ("comma", "Id,Amount,Note\n1,1.5,\"a|b\"\n2,2.5,c\n", ","),
    ] {
        let path = dir.path().join(format!("{tag}.csv"));
        std::fs::write(&path, body).unwrap();
        let outcome = import(&lake, &path, &format!("raw.delim_{tag}")).await;
        assert_eq!(outcome.delimiter.as_deref(), Some(delimiter), "{tag}");
        assert_eq!(outcome.rows, 2, "{tag}");
    }
    // A file the sniffer would read with `,` lands with the delimiter given.
    let path = dir.path().join("forced.txt");
    std::fs::write(&path, "Id,Name;Note\n1,a;x\n").unwrap();
    let out = revlake(
        dir.path(),
        &dir.path().join("lake"),
        &[
            "import",
            path.to_str().unwrap(),
            "--dataset",
            "raw.delim_forced",
            "--delimiter",
            ";",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("delimiter ;"),
        "{}",
        text(&out.stdout)
    );
    let rows = query(
        &lake,
        &["raw.delim_forced"],
        "SELECT id_name, note FROM raw_delim_forced",
    )
    .await;
    assert_eq!(rows, ["1,a,x"]);
}
