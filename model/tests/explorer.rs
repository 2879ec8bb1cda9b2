//! A counterexample printed by `check` can be shared as an Explorer URL and re-opened: the
//! Explorer serves the same path and shows the broken invariant on its last state, with the
//! path's message sequence chart.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};
use zab_model::checker::{self, CheckOptions};
use zab_model::{Bug, Config};

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[test]
fn a_counterexample_link_reopens_in_the_explorer() {
    let cfg = Config {
        bug: Some(Bug::Zk2845),
        ..common::fresh_small()
    };
    let r = checker::check(&cfg, &CheckOptions::default());
    let d = &r.failures[0];
    assert_eq!(d.property, "ProcessConsistency");

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let serve_cfg = cfg.clone();
    let serve_addr = addr.clone();
    std::thread::spawn(move || checker::explore(&serve_cfg, &serve_addr));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "explorer did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The link printed by `check` is `http://<addr>/#/steps/<encoded>`; the page fetches
    // `/.states/<encoded>` to show the last state and its successors.
    let (status, body) = get(&addr, &format!("/.states/{}", d.encoded));
    assert_eq!(status, 200, "{body}");
    // The parent of the last step lists the step that breaks the invariant.
    let (prefix, last) = d.encoded.rsplit_once('/').unwrap();
    let (status, body) = get(&addr, &format!("/.states/{prefix}"));
    assert_eq!(status, 200);
    let step = d.path.clone().into_actions().last().unwrap().to_string();
    assert!(
        body.contains(&step),
        "step {step} (index {last}) not offered: {body}"
    );
    // Each successor comes with its path's chart (`Model::as_svg`); the one that breaks the
    // invariant is drawn with the breaking step highlighted.
    assert!(body.contains("\"svg\":\"<svg xmlns='http://www.w3.org/2000/svg' class='zc'"));
    assert!(
        body.contains("data-invariants='ProcessConsistency'"),
        "{body}"
    );
    // A path the model does not have is refused.
    let (status, _) = get(&addr, "/.states/0/99/99/99");
    assert_eq!(status, 404);
}
