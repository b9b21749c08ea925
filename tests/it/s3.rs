//! The lake on S3, for real: an S3-compatible server (moto) on 127.0.0.1 runs the same
//! round-trip and interrupted-write scenarios as the local lake, and two writers committing to
//! one table at once lose nothing (Delta commits with conditional puts: `If-None-Match: *`).
//!
//! `.ci/run` installs `moto[server]`; on a machine without it the test says so and passes only
//! outside CI.

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use revlake::lake::{DatasetRef, Lake};

use crate::common::{arrow_schema, count, deals, deals_schema};
use crate::lake::{
    an_interrupted_write_leaves_the_previous_version, round_trip_through_every_write_mode,
};

struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_installed() -> bool {
    Command::new("python3")
        .args(["-c", "import moto.server, flask"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn start_moto() -> Option<Moto> {
    if !moto_installed() {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto[server] is not installed; .ci/run installs it (pip install 'moto[server]')"
        );
        eprintln!("SKIPPED: S3 lake tests need `pip install 'moto[server]'`");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
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
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto");
    let endpoint = format!("http://127.0.0.1:{port}");
    let moto = Moto { child, endpoint };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if client.get(&moto.endpoint).send().await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moto did not start on {}",
            moto.endpoint
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Some(moto)
}

impl Moto {
    async fn bucket(&self, name: &str) -> HashMap<String, String> {
        let status = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "create bucket {name}: {status}");
        HashMap::from([
            ("aws_endpoint".to_string(), self.endpoint.clone()),
            ("aws_access_key_id".to_string(), "revlake".to_string()),
            (
                "aws_secret_access_key".to_string(),
                "revlake-secret".to_string(),
            ),
            ("aws_region".to_string(), "us-east-1".to_string()),
            ("allow_http".to_string(), "true".to_string()),
        ])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_s3_lake_round_trips_survives_interrupted_writes_and_concurrent_writers() {
    let Some(moto) = start_moto().await else {
        return;
    };

    let options = moto.bucket("roundtrip").await;
    let lake = Lake::open_with_options("s3://roundtrip/lake", options.clone())
        .await
        .unwrap();
    round_trip_through_every_write_mode(&lake).await;

    let options = moto.bucket("interrupted").await;
    let lake = Lake::open_with_options("s3://interrupted/lake", options)
        .await
        .unwrap();
    an_interrupted_write_leaves_the_previous_version(&lake).await;

    // Two writers (separate handles, separate connections) append to the same new table at once.
    let options = moto.bucket("concurrent").await;
    let a = Lake::open_with_options("s3://concurrent/lake", options.clone())
        .await
        .unwrap();
    let b = Lake::open_with_options("s3://concurrent/lake", options)
        .await
        .unwrap();
    let per_writer = 6;
    let writer = |lake: Lake, name: &'static str| {
        tokio::spawn(async move {
            let schema = deals_schema("staging.deals");
            let mut versions = Vec::new();
            for i in 0..per_writer {
                let id = format!("{name}-{i}");
                let out = lake
                    .write("staging.deals".parse().unwrap())
                    .with_schema(Some(&schema))
                    .with_batches(
                        arrow_schema(),
                        vec![deals(&[("w", id.as_str(), "lead", 1.0)])],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("writer {name} commit {i}: {e}"));
                versions.push(out.version);
            }
            versions
        })
    };
    let (va, vb) = tokio::join!(writer(a.clone(), "a"), writer(b, "b"));
    let (va, vb) = (va.unwrap(), vb.unwrap());
    let mut all: Vec<i64> = va.iter().chain(vb.iter()).copied().collect();
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        2 * per_writer,
        "two commits got the same version: {va:?} {vb:?}"
    );
    assert_eq!(count(&a, "staging.deals").await, 2 * per_writer as u64);
    let d: DatasetRef = "staging.deals".parse().unwrap();
    let info = a.info(&d).await.unwrap();
    assert_eq!(info.version, *all.last().unwrap());

    // A lake in a bucket that does not exist names its URL.
    let err = Lake::open_with_options("s3://no-such-bucket/lake", moto.bucket("other").await)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("s3://no-such-bucket/lake"), "{err}");
}
