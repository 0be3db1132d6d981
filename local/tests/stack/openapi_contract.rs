//! The OpenAPI document tells the truth: schemathesis generates requests from `/openapi.json`
//! (valid and invalid ones, every documented operation, and the stateful chain `POST /token` ->
//! `GET /chat_history` through the document's link) and checks every answer against it.

use std::path::PathBuf;

use chat_testkit::{TempDir, TestApp};

/// The schemathesis CLI: `SCHEMATHESIS`, or where `scripts/test.sh` installs it.
fn schemathesis() -> PathBuf {
    let path = std::env::var_os("SCHEMATHESIS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/chatbot/schemathesis/bin/schemathesis")
    });
    assert!(
        path.is_file(),
        "schemathesis is not installed at {}: run scripts/test.sh, which installs it",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_every_answer_documented() {
    // Hundreds of sessions from one address, and hundreds of reads and changes of one session:
    // those limits are lifted (their 429s have stories of their own), every other is the default.
    let app = TestApp::builder()
        .vars(&[
            ("SESSIONS_PER_IP_PER_WINDOW", "0"),
            ("HISTORY_READS_PER_SESSION_PER_WINDOW", "0"),
            ("CHANGES_PER_SESSION_PER_WINDOW", "0"),
        ])
        .spawn()
        .await;
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let workdir = TempDir::new("schemathesis");
    let output = tokio::process::Command::new(schemathesis())
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/openapi.json", app.base))
        .args(["--checks", "all", "--seed", "20261125", "--max-examples", "100"])
        .args(["--generation-database", "none", "--no-color", "--workers", "1"])
        .current_dir(workdir.path())
        .output()
        .await
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "schemathesis found the document untruthful:\n{report}");
    // It really tested every operation, in every phase that applies.
    assert!(report.contains("Tested: 13"), "{report}");
    for phase in ["Coverage", "Fuzzing", "Stateful"] {
        assert!(report.contains(&format!("✅ {phase}")), "the {phase} phase did not pass:\n{report}");
    }
    println!("{report}");
}
