//! Files on object stores: file:// and s3:// (a moto server on 127.0.0.1).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_url_is_imported_like_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let path = dir.path().join("deals.ndjson");
    std::fs::write(&path, "{\"id\": 1}\n{\"id\": 2}\n").unwrap();
    let url = url::Url::from_file_path(&path).unwrap().to_string();
    let outcome = import_file(&lake, url.clone(), ws())
        .with_dataset(ds("raw.url_deals"))
        .await
        .unwrap();
    assert_eq!(outcome.rows, 2);
    assert_eq!(outcome.format, FileFormat::Ndjson);
    let rows = query(
        &lake,
        &["raw.url_deals"],
        "SELECT DISTINCT _source_file FROM raw_url_deals",
    )
    .await;
    assert_eq!(rows, [url]);
}

/// An S3-compatible server (moto) on 127.0.0.1, as in `s3.rs`.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_moto() -> Option<Moto> {
    let installed = Command::new("python3")
        .args(["-c", "import moto.server, flask"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto[server] is not installed; .ci/run installs it"
        );
        eprintln!("SKIPPED: the s3:// import test needs `pip install 'moto[server]'`");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start moto");
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while reqwest::Client::new()
        .get(&moto.endpoint)
        .send()
        .await
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Some(moto)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_file_is_downloaded_and_imported() {
    let Some(moto) = start_moto().await else {
        return;
    };
    let client = reqwest::Client::new();
    let status = client
        .put(format!("{}/exports", moto.endpoint))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
    let status = client
        .put(format!("{}/exports/2025-06/deals.csv", moto.endpoint))
        .body("Id,Amount\nd1,10\nd2,20\n")
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    let options: HashMap<String, String> = [
        ("aws_endpoint", moto.endpoint.as_str()),
        ("aws_access_key_id", "revlake"),
        ("aws_secret_access_key", "revlake-secret"),
        ("aws_region", "us-east-1"),
        ("allow_http", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let outcome = import_file(&lake, "s3://exports/2025-06/deals.csv", ws())
        .with_dataset(ds("raw.s3_deals"))
        .with_storage_options(options.clone())
        .await
        .unwrap();
    assert_eq!(outcome.rows, 2);
    let rows = query(
        &lake,
        &["raw.s3_deals"],
        "SELECT id, amount, _source_file FROM raw_s3_deals ORDER BY id",
    )
    .await;
    assert_eq!(
        rows,
        [
            "d1,10,s3://exports/2025-06/deals.csv",
            "d2,20,s3://exports/2025-06/deals.csv"
        ]
    );
    let err = import_file(&lake, "s3://exports/2025-06/none.csv", ws())
        .with_dataset(ds("raw.s3_deals"))
        .with_storage_options(options)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot fetch s3://exports/2025-06/none.csv"),
        "{err}"
    );
}
