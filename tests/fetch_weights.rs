//! tools/fetch-weights.sh's download path, against stand-in hosts on 127.0.0.1 laid out
//! like the Hugging Face hub and PaddleNLP's bucket (HF_ENDPOINT, PADDLENLP_ENDPOINT):
//! download, check against the hub's sha256, convert; fall back to PaddleNLP's copy;
//! refuse a download whose sha256 differs, leaving nothing behind.

mod common;

use bit50::weights::{self, sha256_hex};
use bit50::reference;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Serves `root` over HTTP on 127.0.0.1 (GET only; the query string is ignored) and
/// returns the base URL. The thread ends with the test process.
fn serve(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap().trim_start_matches('/').to_string();
            let mut stream = &stream;
            match std::fs::read(root.join(&path)).ok().filter(|_| !path.contains("..")) {
                Some(body) => {
                    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                    let _ = stream.write_all(&body);
                }
                None => {
                    let _ = write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                }
            }
        }
    });
    url
}

/// A hub with the tiny model as google/bit-50, listing `listed_sha256` for model.safetensors.
fn hub(dir: &Path, listed_sha256: &str) -> String {
    let files = dir.join("google/bit-50/resolve/main");
    std::fs::create_dir_all(&files).unwrap();
    for f in ["config.json", "preprocessor_config.json", "model.safetensors"] {
        std::fs::copy(fixtures().join("tiny").join(f), files.join(f)).unwrap();
    }
    std::fs::create_dir_all(dir.join("api/models/google")).unwrap();
    let api = format!(r#"{{"id":"google/bit-50","siblings":[{{"rfilename":"config.json"}},{{"rfilename":"model.safetensors","lfs":{{"sha256":"{listed_sha256}","size":1}}}}]}}"#);
    std::fs::write(dir.join("api/models/google/bit-50"), api).unwrap();
    serve(dir.to_path_buf())
}

fn fetch(hf: &str, paddle: &str, dir: &Path) -> Output {
    Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/fetch-weights.sh"))
        .args(["--dir", dir.join("weights").to_str().unwrap(), "--out", dir.join("out").to_str().unwrap()])
        .env("HF_ENDPOINT", hf)
        .env("PADDLENLP_ENDPOINT", paddle)
        .env("CONNECT_TIMEOUT", "2")
        .env("BIT50", env!("CARGO_BIN_EXE_bit50"))
        .env("NODEVICE_SELECT", "1")
        .output()
        .unwrap()
}

fn tiny_sha256() -> String {
    sha256_hex(&std::fs::read(fixtures().join("tiny/model.safetensors")).unwrap())
}

fn assert_converted(dir: &Path) {
    let model = weights::load_dir(&dir.join("out")).unwrap();
    let logits = reference::forward(&model.network, &uniform_input("tiny")).logits;
    let err = max_abs_diff(&logits, &expected_logits("tiny", "uniform"));
    assert!(err < 1e-2, "f16 conversion of the download: logit error {err}");
}

#[test]
fn downloads_checks_the_hubs_sha256_and_converts() {
    let dir = scratch("fetch-hub");
    let url = hub(&dir.join("hub"), &tiny_sha256());
    let o = fetch(&url, "http://127.0.0.1:9", &dir);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{}", stdout, String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("sha256 matches the hub"), "{stdout}");
    assert_converted(&dir);
}

#[test]
fn a_download_with_the_wrong_sha256_is_deleted_and_refused() {
    let dir = scratch("fetch-badsha");
    let url = hub(&dir.join("hub"), &"0".repeat(64));
    let o = fetch(&url, "http://127.0.0.1:9", &dir);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("the hub lists 0000"), "{stderr}");
    assert!(!dir.join("weights/model.safetensors").exists(), "the bad download was kept");
    assert!(!dir.join("out").exists());
}

#[test]
fn falls_back_to_paddlenlps_copy() {
    let dir = scratch("fetch-paddle");
    let bucket = dir.join("bucket/google/bit-50");
    std::fs::create_dir_all(&bucket).unwrap();
    for f in ["config.json", "model_state.pdparams", "preprocessor_config.json"] {
        std::fs::copy(fixtures().join("sources/paddlenlp").join(f), bucket.join(f)).unwrap();
    }
    let url = serve(dir.join("bucket"));
    let o = fetch("http://127.0.0.1:9", &url, &dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_converted(&dir);
}
